"""Running bids_facedecode on HPC clusters (SLURM job arrays of the container)."""

from bids_facedecode.hpc.slurm import discover_labels, make_slurm_script

__all__ = ["discover_labels", "make_slurm_script"]
