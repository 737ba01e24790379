"""Write one participant's derivatives: maps, tables, metrics, decoder, the run's log.

Names come from :mod:`bids_facedecode.bidsio.outputs`; the report's own files (figures, image
tiles, the design table, the citation text, the HTML) are written by :mod:`bids_facedecode.report`.
Files are written atomically one by one into the participant's staging folder, which is then
committed as one set (:mod:`bids_facedecode.bidsio.derivatives`).
"""

from __future__ import annotations

import io
import logging
import platform
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .. import __version__
from ..provenance import dataset_info, library_versions
from .derivatives import write_bytes, write_json, write_nifti, write_tsv
from .outputs import ParticipantMetrics, ParticipantPaths, SavedDecoder, save_decoder, write_metrics

LOG = logging.getLogger(__name__)


def _unmask(values: np.ndarray, mask_img, dtype=np.float32) -> nib.Nifti1Image:
    mask = np.asarray(mask_img.dataobj).astype(bool)
    vol = np.zeros(mask.shape, dtype=dtype)
    vol[mask] = values
    img = nib.Nifti1Image(vol, mask_img.affine)
    img.header.set_xyzt_units("mm")
    return img


def write_participant_outputs(result, settings, root: Path | None = None) -> list[Path]:
    """Write every analysis output of one participant; returns the paths written.

    ``root`` replaces ``settings.output_dir`` as the folder written into (a staging folder
    that :func:`~bids_facedecode.bidsio.derivatives.commit_stage` swaps into place).
    """
    out = Path(root) if root is not None else settings.output_dir
    space = getattr(result.inputs.runs[0], "space", None)  # maps carry the input's space-<S>
    p = ParticipantPaths(out, result.subject, settings.task, space)
    written: list[Path] = []
    sources = [str(r.bold.relative_to(settings.bids_dir)) for r in result.inputs.runs
               if settings.bids_dir in r.bold.parents]

    def nii(values, name_ents, suffix, sidecar, dtype=np.float32):
        written.append(write_nifti(p.map(suffix, **name_ents), _unmask(values, result.mask_img, dtype),
                                   {**sidecar, "Sources": sources}))

    mask = np.asarray(result.mask_img.dataobj).astype(bool)
    nii(np.ones(int(mask.sum()), np.uint8), {"desc": "brain"}, "mask",
        {"Description": "Brain mask (nilearn compute_epi_mask on the first run's mean)", "Type": "Brain"},
        np.uint8)
    first = next(iter(result.spaces.values()))
    # data decoded with --decoder-from may have no latent block (too few training trials) or no
    # training trials at all: those maps are NaN, and their sidecars say why
    no_faces = " Not estimated (NaN): these data have no training trials." \
        if np.isnan(first.face_t).all() else ""
    noise = noise_sidecar(getattr(first, "noise", {}) or {})
    nii(first.face_t, {"desc": "facevsfixation", "stat": "t"}, "statmap",
        {"Description": "t map of the face regressor (all training faces vs. the fixation "
                        f"baseline), {noise['NoiseModelDescription']}." + no_faces,
         "DegreesOfFreedom": first.dof, **noise})
    for name, res in result.spaces.items():
        D = res.W.shape[0] - 1
        no_block = (" Not estimated (NaN): the model of these data has no latent block (too few "
                    "training trials, or none; decoded with a saved decoder)."
                    if np.isnan(res.f_map).all() else "")
        nii(res.f_map, {"desc": name, "stat": "F"}, "statmap",
            {"Description": f"F test of the {D} latent regressors of the {name} space, "
                            f"{noise['NoiseModelDescription']}." + no_block,
             "DegreesOfFreedom": [D, res.dof], **noise})
        sel = np.zeros(res.f_map.size, np.uint8)
        sel[res.selected] = 1
        info = getattr(res, "selection_info", {}) or {}
        nii(sel, {"desc": f"{name}selected"}, "mask",
            {"Description": selection_description(res.selected.size, info, name,
                                                  getattr(res, "decoder_from", None)),
             "VoxelSelection": info})
        if res.gender_axis is not None:
            gmap = np.zeros(res.f_map.size, np.float32)
            gmap[res.selected] = res.gender_axis @ res.W[:D]
            nii(gmap, {"desc": f"{name}gender"}, "statmap",
                {"Description": "Gender activation map: latent weights W projected on the gender axis "
                                "(male minus female), selected voxels"})
        decoded = pd.DataFrame(res.test_decoded, columns=[f"decoded_z{k + 1}" for k in range(D)])
        table = pd.concat([res.per_image.reset_index(drop=True), decoded], axis=1)
        written.append(write_tsv(p.decoding_table(name), table))
        written.append(write_bytes(p.decoding_mat(name),
                                   decoded_mat_bytes(res.test_decoded, res.per_image["stim_file"])))
        written.append(save_decoder(p.decoder(name), SavedDecoder(
            None, name, res.W, res.selected, res.z_mean, mask, result.mask_img.affine,
            getattr(res, "decoder", "ols"), getattr(res, "ridge", 0.0), res.gender_axis,
            res.gender_midpoint)))
        written += _write_analyses(p, name, res, nii)
    if getattr(result, "encoding", None) is not None:  # before the metrics: a complete set
        from .encoding_outputs import write_encoding_outputs

        written += write_encoding_outputs(result.encoding, p.func, {**p.ents, "space": space},
                                          result.mask_img, {"Sources": sources, **noise})
    for name, res in result.spaces.items():
        written.append(write_metrics(p.metrics(name), metrics_record(result, settings, name, res)))
    written.append(write_json(p.config_log, {
        **settings.to_dict(), "version": __version__, "python": platform.python_version(),
        "timings_s": result.timings, "device_used": result.device, **_provenance(result, settings)}))
    return written


def metrics_record(result, settings, name: str, res) -> ParticipantMetrics:
    """The metrics record of one space of a participant's result."""
    inputs = result.inputs
    return ParticipantMetrics(
        subject=result.subject, task=settings.task, space=name, version=__version__,
        latent_dim=int(res.W.shape[0] - 1), n_voxels=int(res.selected.size),
        n_runs=len(inputs.runs), n_volumes=inputs.n_scans,
        n_training_trials=len(inputs.train_trial_ids), n_test_images=len(inputs.test_ids),
        device=result.device, seed=settings.seed, metrics=res.metrics,
        decoder=getattr(res, "decoder", "ols"), decoders=list(settings.decoders),
        voxel_selection=getattr(res, "selection", "ftest"),
        selection_detail=getattr(res, "selection_info", {}) or {},
        noise_model=(getattr(res, "noise", {}) or {}).get("model"),
        decoder_from=getattr(res, "decoder_from", None),
        settings=settings.result_settings(name),
    )


def noise_sidecar(noise: dict) -> dict:
    """Sidecar fields naming the GLM's noise model (``NormalEquations.noise``)."""
    rho = noise.get("ar1") or {}
    if noise.get("model") == "ar1":
        vals = list(rho.values())
        text = ("AR(1) noise model: each run prewhitened with its own AR(1) coefficient, pooled "
                f"over voxels ({min(vals):.2f} to {max(vals):.2f})" if vals else "AR(1) noise model")
        return {"NoiseModel": "ar1", "NoiseModelDescription": text, "AR1CoefficientPerRun": rho}
    if noise.get("model") == "ols":
        return {"NoiseModel": "ols", "NoiseModelDescription": "white-noise (OLS) model: on "
                "autocorrelated fMRI noise its t, F and p-values are not calibrated"}
    return {"NoiseModel": "n/a", "NoiseModelDescription": "noise model not recorded"}


def selection_description(n: int, info: dict, space: str, reused: str | None) -> str:
    """What the selected-voxel mask holds, from the selection that ran."""
    if reused:
        return f"The {n} voxels of the saved decoder {Path(reused).name} ({space})"
    method = info.get("method", "ftest")
    if method == "paper":
        corr = "FDR" if info.get("correction") == "fdr" else "p"
        return (f"The {n} voxels significant both for face > fixation (one-sided t, "
                f"{corr} <= {info.get('face_alpha')}{' uncorrected' if corr == 'p' else ''}: "
                f"t >= {_num(info.get('face_t_threshold'))}, {info.get('n_face')} voxels) and for "
                f"the latent block (F test, {corr} <= {info.get('latent_alpha')}"
                f"{' uncorrected' if corr == 'p' else ''}: F >= "
                f"{_num(info.get('latent_f_threshold'))}, {info.get('n_latent')} voxels) ({space})")
    if method == "noiseceiling":
        return f"The {n} voxels with the largest split-half noise ceiling ({space})"
    return f"The {n} voxels with the largest latent F ({space})"


def _num(x) -> str:
    return "n/a (none passes)" if x is None else f"{float(x):.3f}"


def decoded_mat_bytes(latents: np.ndarray, stim_files) -> bytes:
    """The decoded latents as a MATLAB file: ``latent`` (N x D), the variable the authors'
    ``VAEGAN_latent2image.py`` turns into images, and ``stim_file`` (N names, row order).

    Parameters
    ----------
    latents : ndarray of shape (N, D)
    stim_files : sequence of str, length N
    """
    from scipy.io import savemat

    buf = io.BytesIO()
    names = np.empty(len(stim_files), dtype=object)
    names[:] = [str(f) for f in stim_files]
    savemat(buf, {"latent": np.asarray(latents, dtype=np.float32), "stim_file": names},
            do_compression=True)
    return buf.getvalue()


def _write_analyses(p: ParticipantPaths, name: str, res, nii) -> list[Path]:
    """Reliability and noise-ceiling maps, the tidy table of every decoder/region, the ridge CV."""
    written: list[Path] = []
    if getattr(res, "reliability", None) is not None:
        nii(np.nan_to_num(res.reliability, nan=0.0), {"desc": f"{name}splithalf", "stat": "r"}, "statmap",
            {"Description": "Split-half reliability of the test-image betas per voxel: correlation "
                            "across test images between the GLMs of odd and even runs, "
                            "Spearman-Brown corrected to the full data (NaN written as 0)"})
        nii(np.nan_to_num(res.noise_ceiling, nan=0.0), {"desc": f"{name}noiseceiling"}, "statmap",
            {"Description": "Noise ceiling per voxel: fraction of the variance of the test-image "
                            "betas across images that is signal, cov(half1, half2) / (cov + noise/2)"})
    if getattr(res, "analyses", None) is not None and len(res.analyses):
        written.append(write_tsv(p.analyses_table(name), res.analyses))
    if getattr(res, "ridge_cv", None) is not None:
        written.append(write_tsv(p.analyses_table(f"{name}ridgecv"), res.ridge_cv))
    return written


def _provenance(result, settings) -> dict:
    """What the report shows beside the settings: inputs, runs, dataset, libraries, warnings."""
    inputs = result.inputs
    return {
        "inputs": {
            "n_runs": len(inputs.runs), "n_volumes": inputs.n_scans,
            "n_training_trials": len(inputs.train_trial_ids),
            "n_training_images": len(inputs.train_ids), "n_test_images": len(inputs.test_ids),
            "n_imagery_trials": inputs.n_imagery_trials, "n_imagined_faces": len(inputs.imagery_ids),
            "n_brain_voxels": int(np.asarray(result.mask_img.dataobj).astype(bool).sum()),
            "nuisance_trial_types": list(inputs.nuisance_kinds),
        },
        "runs": [{"session": r.session, "run": r.run, "t_r": r.t_r, "n_scans": r.n_scans,
                  "bold": str(r.bold.relative_to(settings.bids_dir)) if settings.bids_dir in r.bold.parents
                  else str(r.bold)} for r in inputs.runs],
        "dataset": dataset_info(settings.bids_dir),
        "library_versions": library_versions(),
        "warnings": list(result.warnings),
    }
