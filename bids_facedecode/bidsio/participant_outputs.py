"""Write one participant's derivatives: maps, tables, metrics, decoder, figures, report, logs.

Files are written atomically one by one; the metrics JSON files, which the group level and
``--overwrite`` checks read as "this participant is complete", are written last.
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
from ..images import to_uint8
from .derivatives import bids_name, write_bytes, write_json, write_nifti, write_text, write_tsv

LOG = logging.getLogger(__name__)


def _unmask(values: np.ndarray, mask_img, dtype=np.float32) -> nib.Nifti1Image:
    mask = np.asarray(mask_img.dataobj).astype(bool)
    vol = np.zeros(mask.shape, dtype=dtype)
    vol[mask] = values
    img = nib.Nifti1Image(vol, mask_img.affine)
    img.header.set_xyzt_units("mm")
    return img


def participant_paths(output_dir: Path, subject: str, task: str) -> dict:
    """Folders and name entities of a participant's outputs."""
    root = Path(output_dir) / f"sub-{subject}"
    return {"root": root, "func": root / "func", "figures": root / "figures",
            "ents": {"sub": subject, "task": task}}


def metrics_path(output_dir: Path, subject: str, task: str, space: str) -> Path:
    """``sub-<label>/sub-<label>_task-<task>_desc-<space>_metrics.json``."""
    return Path(output_dir) / f"sub-{subject}" / bids_name(
        {"sub": subject, "task": task, "desc": space}, "metrics", ".json")


def write_participant_outputs(result, settings, root: Path | None = None) -> list[Path]:
    """Write every output of one participant; returns the paths written.

    ``root`` replaces ``settings.output_dir`` as the folder written into (a staging folder
    that :func:`~bids_facedecode.bidsio.derivatives.commit_stage` swaps into place).
    """
    out = Path(root) if root is not None else settings.output_dir
    sub = result.subject
    p = participant_paths(out, sub, settings.task)
    ents = p["ents"]
    written: list[Path] = []
    sources = [str(r.bold.relative_to(settings.bids_dir)) for r in result.inputs.runs
               if settings.bids_dir in r.bold.parents]

    space = getattr(result.inputs.runs[0], "space", None)  # maps carry the input's space-<S>

    def nii(values, name_ents, suffix, sidecar, dtype=np.float32):
        path = p["func"] / bids_name({**ents, "space": space, **name_ents}, suffix, ".nii.gz")
        written.append(write_nifti(path, _unmask(values, result.mask_img, dtype),
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
        written.append(write_tsv(p["func"] / bids_name({**ents, "desc": name}, "decoding", ".tsv"), table))
        written.append(write_bytes(p["func"] / bids_name({**ents, "desc": name}, "decoding", ".mat"),
                                   decoded_mat_bytes(res.test_decoded, res.per_image["stim_file"])))
        buf = io.BytesIO()
        np.savez_compressed(
            buf, W=res.W.astype(np.float32), selected=res.selected.astype(np.int64),
            z_mean=res.z_mean.astype(np.float32), mask=mask, affine=result.mask_img.affine,
            gender_axis=res.gender_axis if res.gender_axis is not None else np.zeros(0),
            gender_midpoint=res.gender_midpoint if res.gender_midpoint is not None else np.zeros(0),
            space=np.array(name), version=np.array(__version__),
            decoder=np.array(getattr(res, "decoder", "ols")), ridge=np.array(getattr(res, "ridge", 0.0)),
        )
        written.append(write_bytes(p["func"] / bids_name({**ents, "desc": name}, "decoder", ".npz"),
                                   buf.getvalue()))
        if res.reconstructions is not None:
            written.append(_write_recon_figure(p, ents, name, res))
        written += _write_analyses(p, ents, name, res, nii)
    recon = [(n, r) for n, r in result.spaces.items() if r.reconstructions is not None]
    if len(recon) > 1:  # the paper's Fig. 2: shown, then each space's reconstruction
        written.append(_write_grid(p, ents, "allspaces",
                                   [("shown", recon[0][1].shown)] + [(n, r.reconstructions) for n, r in recon]))
    written += _write_report_inputs(result, settings, p)
    if getattr(result, "encoding", None) is not None:  # before the metrics: a complete set
        from .encoding_outputs import write_encoding_outputs
        written += write_encoding_outputs(result.encoding, p["func"], {**ents, "space": space},
                                          result.mask_img, {"Sources": sources, **noise})
    for name, res in result.spaces.items():
        doc = {
            "subject": sub, "task": settings.task, "space": name, "version": __version__,
            "latent_dim": int(res.W.shape[0] - 1), "n_voxels": int(res.selected.size),
            "n_runs": len(result.inputs.runs), "n_volumes": result.inputs.n_scans,
            "n_training_trials": len(result.inputs.train_trial_ids),
            "n_test_images": len(result.inputs.test_ids), "device": result.device,
            "seed": settings.seed,
            "metrics": res.metrics,
            "decoder": getattr(res, "decoder", "ols"), "decoders": list(settings.decoders),
            "voxel_selection": getattr(res, "selection", "ftest"),
            "selection_detail": getattr(res, "selection_info", {}) or {},
            "noise_model": (getattr(res, "noise", {}) or {}).get("model"),
            "decoder_from": getattr(res, "decoder_from", None),
            "settings": settings.result_settings(name),
        }
        written.append(write_json(metrics_path(out, sub, settings.task, name), doc))
    logs = out / "logs"
    written.append(write_json(logs / f"sub-{sub}_config.json", {
        **settings.to_dict(), "version": __version__, "python": platform.python_version(),
        "timings_s": result.timings, "device_used": result.device,
        "software_versions": software_versions(), **_provenance(result, settings)}))
    written.append(write_text(logs / "CITATION.md", citation_text(settings, result)))
    # last: the report is built from the files above (and is not a result the group level reads)
    written += _write_report(result, settings, out)
    return written


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


def _write_analyses(p, ents, name, res, nii) -> list[Path]:
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
        written.append(write_tsv(p["func"] / bids_name({**ents, "desc": name}, "analyses", ".tsv"),
                                 res.analyses))
    if getattr(res, "ridge_cv", None) is not None:
        written.append(write_tsv(p["func"] / bids_name({**ents, "desc": f"{name}ridgecv"}, "analyses",
                                                       ".tsv"), res.ridge_cv))
    return written


def _write_recon_figure(p, ents, name, res) -> Path:
    return _write_grid(p, ents, name, [("shown", res.shown), (name, res.reconstructions)])


def _write_grid(p, ents, desc, rows) -> Path:
    from ..report.figures import image_grid

    fig = image_grid(rows)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    path = p["figures"] / bids_name({**ents, "desc": desc}, "reconstructions", ".png")
    return write_bytes(path, buf.getvalue())


def _write_report(result, settings, out: Path) -> list[Path]:
    """The participant report, built from the files just written under ``out``."""
    # a failed report is logged, never fatal for the analysis; a stale report is removed
    try:
        from ..report.participant_report import write_participant_report

        path = write_participant_report(out, result.subject, settings.task,
                                        keep_stale=False, verbose=settings.verbosity > 1)
    except Exception as exc:  # noqa: BLE001 - even a broken report package must not fail the run
        LOG.error("sub-%s: report failed: %s", result.subject, exc, exc_info=settings.verbosity > 1)
        return []
    return [path] if path is not None else []


def software_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape the numbers (recorded with the outputs)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "bids_facedecode": __version__}
    for dist in ("numpy", "scipy", "pandas", "torch", "nilearn", "nibabel", "pybids", "scikit-image"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def _provenance(result, settings) -> dict:
    """What the report shows beside the settings: inputs, runs, dataset, libraries, warnings."""
    from ..provenance import dataset_info, library_versions

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


def _write_report_inputs(result, settings, p) -> list[Path]:
    """Files only the report needs: the first run's design matrix and the face images as tiles.

    * ``func/sub-<l>[_ses-<s>]_task-<t>[_run-<r>]_design.tsv`` (+ JSON): the first run's design;
    * ``figures/sub-<l>_task-<t>_desc-<space>_tiles.png`` (+ JSON): row 1 the test images as the
      model saw them, row 2 their reconstructions, one column per test image in the order of
      the decoding table; ``desc-<space>imagery_tiles.png``: row 1 the imagined face, row 2 the
      reconstruction decoded from the imagery trials.
    """
    written: list[Path] = []
    ents = p["ents"]
    rec = result.design
    if rec is not None:
        name = bids_name({**ents, "ses": rec.session, "run": rec.run}, "design", ".tsv")
        sidecar = {
            "Description": "Design matrix of the participant's first run (all runs are fitted "
                           "jointly with the same columns; drift and intercept are per run)",
            "RepetitionTime": rec.t_r, "Run": rec.run_label, "Source": str(rec.bold.name),
            "HRFModel": "spm (nilearn)", "DriftModel": "cosine", "HighPass": rec.high_pass,
            "FrameTimes": "rows are volumes at t = k * RepetitionTime",
        }
        written.append(write_json(p["func"] / name.replace(".tsv", ".json"), sidecar))
        written.append(write_tsv(p["func"] / name, rec.matrix.reset_index(drop=True)))
    names = {s: result.inputs.index.name(s) for s in {*result.inputs.test_ids, *result.inputs.imagery_ids}}
    for space, res in result.spaces.items():
        if res.reconstructions is None or res.shown is None:
            continue
        test_files = [names[s] for s in result.inputs.test_ids]
        written += _write_tiles(p, ents, space, [res.shown, res.reconstructions], test_files,
                                ["shown", "reconstructed"])
        if res.imagery_reconstructions is not None and len(res.imagery_reconstructions):
            pos = {s: i for i, s in enumerate(result.inputs.test_ids)}
            blank = np.full(res.shown.shape[1:], 0.5, np.float32)
            imagined = np.stack([res.shown[pos[s]] if s in pos else blank for s in result.inputs.imagery_ids])
            written += _write_tiles(p, ents, f"{space}imagery", [imagined, res.imagery_reconstructions],
                                    [names[s] for s in result.inputs.imagery_ids],
                                    ["imagined", "reconstructed"])
    return written


def _write_tiles(p, ents, desc, rows, files, row_names) -> list[Path]:
    sheet = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    path = p["figures"] / bids_name({**ents, "desc": desc}, "tiles", ".png")
    sidecar = {"Description": "Image tiles, one column per face, no resampling",
               "TileSize": int(rows[0].shape[1]), "Rows": row_names, "Columns": files}
    return [write_json(path.with_suffix(".json"), sidecar), write_bytes(path, png_bytes(sheet))]


def citation_text(settings, result) -> str:
    """A methods boilerplate with the parameters of this run."""
    spaces = ", ".join(f"{n} (D={r.W.shape[0] - 1})" for n, r in result.spaces.items())
    return f"""# Methods (generated by bids_facedecode {__version__})

Faces were decoded from fMRI with bids_facedecode {__version__}, an implementation of the method of
VanRullen & Reddy (2019). For each participant, all {len(result.inputs.runs)} runs of task
'{settings.task}' were fitted jointly with a general linear model (nilearn SPM canonical HRF, cosine
drift with a {1 / settings.high_pass:.0f} s cut-off and an intercept per run): one regressor for all
training faces, one amplitude-modulated regressor per latent dimension, one regressor per test image and
per imagined face, and one-back repeats as nuisance. Latent spaces: {spaces}. The {settings.n_voxels}
voxels with the largest F statistic of the latent block were selected, and the latent vectors of the test
images were decoded as z = b Wᵀ(WWᵀ)⁻¹ and reconstructed with each latent model's decoder.

References
- VanRullen R, Reddy L (2019). Reconstructing faces from fMRI patterns using deep generative neural
  networks. Communications Biology 2:193. doi:10.1038/s42003-019-0438-y
- Abraham A et al. (2014). Machine learning for neuroimaging with scikit-learn (nilearn).
  Front Neuroinform 8:14.
- Larsen ABL et al. (2016). Autoencoding beyond pixels using a learned similarity metric. ICML.
"""


def png_bytes(image: np.ndarray) -> bytes:
    """One float image as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()
