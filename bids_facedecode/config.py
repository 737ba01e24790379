"""One frozen settings object for a run, built by the CLI and saved with the outputs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_TASK = "faces"
# The values each setting accepts, defined here (a module without heavy imports, so that
# ``--help`` and usage errors need no torch) and re-exported by the modules that implement them.
#: The BIDS-App analysis levels this app runs.
ANALYSIS_LEVELS = ("participant", "group")
#: The latent spaces of the model kinds, in the order the app decodes them by default.
LATENT_SPACES = ("vaegan", "pca")
#: Decoders of the inverse map (``workflow.decoding``).
DECODERS = ("ols", "wls", "ridge")
#: Voxel selections (``workflow.decoding``, ``selection``).
SELECTIONS = ("ftest", "noiseceiling", "paper")
#: Multiple-comparison corrections of the paper's selection (``selection``).
CORRECTIONS = ("uncorrected", "fdr")
#: Arithmetic of the GLM's per-run products (``glm``).
PRECISIONS = ("double", "mixed")
#: Noise models of the GLM (``glm.noise``).
NOISE_MODELS = ("ar1", "ols")
#: Device requests (``device.select_device``).
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class EventSpec:
    """How to read a lab's events files (matched case- and whitespace-insensitively)."""

    trial_type_column: str = "trial_type"
    stim_column: str = "stim_file"
    oneback_column: str = "oneback"
    imagined_column: str = "imagined_stim_file"
    train_type: str = "train_face"
    test_type: str = "test_face"
    null_type: str = "Fix"
    imagery_type: str = "Img"


#: Settings fields behind a participant's results (see :meth:`Settings.result_settings`).
RESULT_FIELDS = (
    "session_label", "task", "latents", "latent_models", "stimuli_dir", "seed", "n_voxels",
    "high_pass", "events", "derivatives", "space", "confounds", "decoders", "voxel_selection",
    "roi_atlas", "roi_labels", "imagery_labels", "decoder_from", "n_permutations",
    "glm_precision", "bids_filter_file", "noise_model", "selection_p_face", "selection_p_latent",
    "selection_correction", "encoding",
)


@dataclass(frozen=True)
class Settings:
    """Everything that determines a run's results. Paths are absolute."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: tuple[str, ...] = ()
    session_label: tuple[str, ...] = ()
    task: str = DEFAULT_TASK
    latent_spaces: tuple[str, ...] = ("pca",)
    latents: dict[str, Path] = field(default_factory=dict)
    latent_models: dict[str, Path] = field(default_factory=dict)
    stimuli_dir: Path | None = None
    device: str = "auto"
    work_dir: Path | None = None
    nprocs: int = 1
    mem_gb: float = 4.0
    seed: int = 42
    skip_bids_validation: bool = False
    bids_filter_file: Path | None = None
    bids_database_dir: Path | None = None
    n_voxels: int = 2000
    high_pass: float = 1.0 / 128.0
    events: EventSpec = field(default_factory=EventSpec)
    verbosity: int = 0
    command_line: str = ""
    derivatives: Path | None = None          # fMRIPrep derivatives folder (None: raw BOLD)
    space: str | None = None                 # output space of the derivatives used
    confounds: tuple[str, ...] = ()          # nilearn load_confounds strategy (preset or components)
    overwrite: bool = False                  # recompute participants whose outputs are complete
    # analyses: decoders, voxel selection, regions, imagery labels, decoder re-use
    decoders: tuple[str, ...] = ("ols",)
    voxel_selection: str = "ftest"
    roi_atlas: Path | None = None
    roi_labels: Path | None = None
    imagery_labels: Path | None = None
    decoder_from: tuple[Path, ...] = ()
    n_permutations: int = 1000
    encoding: bool = True         # the encoding analysis of every space (--no-encoding: off)
    reports_only: bool = False
    glm_precision: str = "mixed"  # float32 products into float64 sums, or "double" throughout
    noise_model: str = "ar1"      # AR(1) prewhitening per run, or "ols" (white noise)
    # --voxel-selection paper: one-sided p of face > fixation and p of the latent-block F
    selection_p_face: float = 0.05
    selection_p_latent: float = 0.05
    selection_correction: str = "uncorrected"  # or "fdr" (Benjamini-Hochberg, per map)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (paths as strings)."""
        return _jsonable(asdict(self))

    def result_settings(self, space: str) -> dict[str, Any]:
        """The settings that determine one latent space's results for a participant.

        Written into each metrics JSON, so a rerun can tell complete outputs made with the same
        analysis (skipped) from outputs made with another one (refused without ``--overwrite``).
        Paths of this run, resources (``--nprocs``, ``--mem``, ``--device``), verbosity and the
        other latent spaces (each space is its own model) are left out.
        """
        d = self.to_dict()
        out = {k: d[k] for k in RESULT_FIELDS}
        out["latents"] = d["latents"].get(space)
        out["latent_models"] = d["latent_models"].get(space)
        return out

    def save(self, path: str | Path) -> None:
        """Write the settings as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
