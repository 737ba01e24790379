"""``sub-<label>.html``, built from the participant's derivatives on disk.

Everything shown is read back from the output folder (metrics JSON, decoding TSV, NIfTI maps,
image tiles, the first run's design, ``logs/sub-<label>_config.json``), so ``--reports-only``
rebuilds the report without refitting and the report shows exactly what the files hold.
A figure that cannot be drawn becomes a note in the report's errors section.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .. import __version__
from ..bidsio.outputs import output_subjects, participant_report_path
from . import SafeFigures, render
from .design import (
    design_matrix_figure,
    group_correlation_figure,
    group_correlations,
    regressor_correlations,
)
from .encoding import participant_section
from .figures import (
    CHANCE_METRICS,
    DEFINITIONS,
    chance_metrics_figure,
    image_grid,
    metric_label,
    per_image_figure,
)
from .inputs import ParticipantRecord, read_participant_record, split_tiles
from .maps import choose_background, estimated, map_figure
from .methods import methods_text

LOG = logging.getLogger(__name__)
GRID_COLUMNS = 10  # faces per row block of the reconstruction grid


def _metric_rows(rec: ParticipantRecord) -> pd.DataFrame:
    rows = []
    for space, doc in rec.metrics.items():
        for metric, m in doc.metrics.items():
            rows.append({"space": space, "metric": metric, "value": m.get("value"),
                         "chance": m.get("chance"), "p_value": m.get("p_value"), "n": m.get("n"),
                         "test": m.get("test")})
    return pd.DataFrame(rows, columns=["space", "metric", "value", "chance", "p_value", "n", "test"])


def _ordered_metrics(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return [m for m in CHANCE_METRICS if m in names] + [m for m in names if m not in CHANCE_METRICS]


def _face_grids(rec: ParticipantRecord, figs: SafeFigures) -> tuple[list[str], list[str]]:
    """The paper's Fig. 2 (shown / each space) and the imagery grid, in blocks of 10 faces."""
    def blocks(kind: str, first_row: str) -> list[str]:
        sets = {d[: -len(kind)] if kind else d: split_tiles(*t) | {"_cols": t[1]["Columns"]}
                for d, t in rec.tiles.items() if (d.endswith(kind) if kind else not d.endswith("imagery"))}
        sets = {s: v for s, v in sets.items() if s in rec.metrics}
        if not sets:
            return []
        ref_space = max(sets, key=lambda s: sets[s][first_row].shape[1])
        cols = sets[ref_space]["_cols"]
        rows = [(first_row, sets[ref_space][first_row])]
        for space, v in sets.items():
            pos = {c: i for i, c in enumerate(v["_cols"])}
            rows.append((space, np.stack([v["reconstructed"][pos[c]] if c in pos else
                                          np.full_like(v["reconstructed"][0], 0.5) for c in cols])))
        out = []
        for start in range(0, len(cols), GRID_COLUMNS):
            part = [(label, imgs[start:start + GRID_COLUMNS]) for label, imgs in rows]
            labels = [Path(c).stem for c in cols[start:start + GRID_COLUMNS]]
            uri = figs.add(f"{first_row} faces {start + 1}-{start + len(labels)}",
                           lambda part=part, labels=labels: image_grid(part, labels, GRID_COLUMNS, size=1.2))
            if uri:
                out.append(uri)
        return out

    return blocks("", "shown"), blocks("imagery", "imagined")


def _maps(rec: ParticipantRecord, figs: SafeFigures) -> tuple[list[dict], str]:
    mask_img = nib.load(rec.brain_mask) if rec.brain_mask else None
    run_files = [r.get("bold", "") for r in rec.config.get("runs", [])]
    try:
        bg, bg_text = choose_background(mask_img, run_files)
    except Exception as exc:  # noqa: BLE001 - no background is better than no maps
        figs.problems.append(f"map background: {exc}")
        bg, bg_text = None, "none (the background could not be chosen)"
    out = []
    order = {"facevsfixation": 0, "F": 1, "selected": 2, "gender": 3}
    spaces = list(rec.metrics)
    for mf in sorted(rec.maps, key=lambda m: (spaces.index(m.space) if m.space in spaces else -1,
                                              order[m.kind])):
        img = nib.load(mf.path)
        data = np.asarray(img.dataobj, dtype=np.float32)
        if mf.kind == "facevsfixation":
            from scipy import stats

            dof = mf.sidecar.get("DegreesOfFreedom")
            thr = float(stats.t.isf(0.0005, dof)) if dof else 3.3
            title, kind = "face vs fixation (t)", "stat"
            noise = mf.sidecar.get("NoiseModelDescription", "noise model not recorded")
            caption = (f"t map of all training faces against the fixation baseline, |t| > {thr:.2f} "
                       f"(two-sided p < 0.001 uncorrected, {dof} degrees of freedom; {noise}).")
        elif mf.kind == "F":
            sel = next((m for m in rec.maps if m.kind == "selected" and m.space == mf.space), None)
            n_sel = int(np.asarray(nib.load(sel.path).dataobj).sum()) if sel else 0
            thr = float(np.min(data[np.asarray(nib.load(sel.path).dataobj) > 0])) if n_sel else None
            thr = thr if thr is not None and np.isfinite(thr) else None
            title, kind = f"{mf.space}: latent F", "stat"
            noise = mf.sidecar.get("NoiseModelDescription", "noise model not recorded")
            caption = (f"F test of the {mf.space} latent block ({mf.sidecar.get('DegreesOfFreedom')} "
                       f"degrees of freedom; {noise}), drawn above F = {thr:.2f}, the smallest F "
                       f"among the {n_sel} selected voxels." if thr is not None else
                       f"F test of the {mf.space} latent block ({noise}).")
        elif mf.kind == "selected":
            thr, kind = None, "roi"
            title = f"{mf.space}: selected voxels"
            caption = (str(mf.sidecar.get("Description", "")).rstrip(".") + ": used for decoding."
                       if mf.sidecar.get("Description") else
                       f"The {int(data.sum())} voxels used for decoding in the {mf.space} space.")
        else:
            thr, kind = None, "stat"
            title = f"{mf.space}: gender activation"
            caption = ("Latent weights of the selected voxels projected on the gender axis "
                       "(mean male minus mean female latent vector): positive = more active for male faces.")
        if not estimated(data):
            thr = None  # not estimated (data without training trials): the sidecar says why
            caption = str(mf.sidecar.get("Description", "Not estimated for these data."))
        uri = figs.add(title, lambda img=img, title=title, kind=kind, thr=thr:
                       map_figure(img, bg, title, kind=kind, threshold=thr))
        out.append({"title": title, "caption": caption, "uri": uri, "file": mf.path.name})
    return out, bg_text


def _design(rec: ParticipantRecord, figs: SafeFigures) -> dict | None:
    if rec.design is None:
        return None
    d = rec.design
    sc = rec.design_sidecar
    corr = group_correlations(d)
    return {
        "run": sc.get("Run", "first run"), "t_r": sc.get("RepetitionTime"), "shape": d.shape,
        "matrix": figs.add("design matrix", lambda: design_matrix_figure(d, sc.get("RepetitionTime"))),
        "correlation": figs.add("regressor correlations", lambda: group_correlation_figure(corr)),
        "top": regressor_correlations(d, top=8).to_dict("records"),
        "sidecar": sc,
    }


def _results(rec: ParticipantRecord, figs: SafeFigures) -> dict:
    rows = _metric_rows(rec)
    spaces = list(rec.metrics)
    metrics = _ordered_metrics(rows["metric"])
    table = []
    for metric in metrics:
        cells, test = [], None
        for space in spaces:
            m = rec.metrics[space].metrics.get(metric)
            if m is not None:  # the reference column: the mean-face baseline or the ceiling
                ref = m.get("baseline") if m.get("baseline") is not None else m.get("ceiling")
                m = {**m, "reference": ref,
                     "reference_kind": "baseline" if m.get("baseline") is not None else
                     "ceiling" if m.get("ceiling") is not None else ""}
                test = m.get("test") or test
            cells.append(m)
        base = next((m.get("metric") for m in cells if m and m.get("metric")), metric)
        table.append({"metric": metric, "label": metric_label(metric), "cells": cells, "test": test,
                      "definition": DEFINITIONS.get(base, "")})
    with_chance = rows[rows["chance"].notna() & rows["value"].notna()]
    chart = (figs.add("results against chance", lambda: chance_metrics_figure(with_chance))
             if len(with_chance) else None)
    per_image = None
    tables = {s: t for s, t in rec.decoding.items() if "pairwise_latent" in t}
    if tables:
        first = next(iter(tables.values()))
        labels = [Path(str(f)).stem for f in first["stim_file"]]
        values = {s: t["pairwise_latent"].to_numpy(float) for s, t in tables.items()}
        per_image = figs.add("identification per image", lambda: per_image_figure(values, labels))
    images = []
    for space, t in rec.decoding.items():
        for _, r in t.iterrows():
            images.append({"space": space, "file": r.get("stim_file"), "gender": r.get("gender"),
                           "pairwise_latent": r.get("pairwise_latent"),
                           "nway_latent": r.get("nway_latent"), "rank_latent": r.get("rank_latent"),
                           "pairwise_image": r.get("pairwise_image"),
                           "gender_correct": r.get("gender_correct"), "ssim": r.get("ssim"),
                           "mean_face_ssim": r.get("mean_face_ssim")})
    return {"spaces": spaces, "table": table, "chart": chart, "per_image": per_image, "images": images}


def _summary(rec: ParticipantRecord) -> dict:
    cfg = rec.config
    first = next(iter(rec.metrics.values()), None)

    def recorded(field: str):  # the metrics record's count, where the config has none
        return getattr(first, field, None)

    inputs = cfg.get("inputs", {})
    runs = cfg.get("runs", [])
    timings = cfg.get("timings_s", {})
    return {
        "dataset": cfg.get("dataset", {}).get("Name") or cfg.get("bids_dir", "n/a"),
        "bids_dir": cfg.get("bids_dir", "n/a"),
        "task": rec.task,
        "sessions": sorted({str(r["session"]) for r in runs if r.get("session")}),
        "n_runs": inputs.get("n_runs", recorded("n_runs")),
        "n_volumes": inputs.get("n_volumes", recorded("n_volumes")),
        "t_r": sorted({r["t_r"] for r in runs if r.get("t_r")}),
        "n_train": inputs.get("n_training_trials", recorded("n_training_trials")),
        "n_train_images": inputs.get("n_training_images"),
        "n_test": inputs.get("n_test_images", recorded("n_test_images")),
        "n_imagery": inputs.get("n_imagery_trials"),
        "n_imagined": inputs.get("n_imagined_faces"),
        "n_brain": inputs.get("n_brain_voxels"),
        "spaces": [{"name": s, "dim": d.latent_dim, "n_voxels": d.n_voxels}
                   for s, d in rec.metrics.items()],
        "device": cfg.get("device_used", recorded("device") or "n/a"),
        "timings": timings,
        "total_time": float(sum(timings.values())) if timings else None,
    }


def _provenance(rec: ParticipantRecord) -> dict:
    cfg = dict(rec.config)
    extra = {k: cfg.pop(k, None) for k in ("inputs", "runs", "dataset", "library_versions", "warnings",
                                           "timings_s")}
    generated = (rec.dataset_description.get("GeneratedBy") or [{}])[0]
    return {
        "version": cfg.get("version", "n/a"), "command_line": cfg.get("command_line", ""),
        "settings": {k: v for k, v in sorted(cfg.items()) if k != "command_line"},
        "libraries": extra["library_versions"] or {}, "dataset": extra["dataset"] or {},
        "runs": extra["runs"] or [], "container": (generated.get("Container") or {}).get("Tag"),
    }


def _final_dir(output_dir: Path) -> Path:
    """The output folder a staged report will live in (``out/.bids_facedecode/sub-X.stage/new`` -> ``out``)."""
    from ..bidsio.derivatives import STATE_DIR

    parts = Path(output_dir).parts
    return Path(*parts[: parts.index(STATE_DIR)]) if STATE_DIR in parts else Path(output_dir)


def build_participant_report(output_dir: Path, subject: str, task: str) -> str:
    """Render ``sub-<label>.html`` from the participant's outputs in ``output_dir``.

    Returns
    -------
    str
        A self-contained HTML document (CSS inline, figures as embedded PNG).
    """
    rec = read_participant_record(output_dir, subject, task)
    order = [s for s in rec.config.get("latent_spaces", []) if s in rec.metrics]
    rec.metrics = {s: rec.metrics[s] for s in order + [s for s in rec.metrics if s not in order]}
    figs = SafeFigures()
    results = _results(rec, figs)
    design = _design(rec, figs)
    maps, background = _maps(rec, figs)
    grid, imagery = _face_grids(rec, figs)
    methods, references = methods_text(rec)
    return render(
        "participant.html.j2",
        subject=subject, task=task, version=__version__,
        date=_dt.datetime.now().isoformat(timespec="seconds"), output_dir=str(_final_dir(output_dir)),
        summary=_summary(rec), results=results, design=design, maps=maps, background=background,
        grid=grid, imagery=imagery, roi_tables={k: v.to_dict("split") for k, v in rec.roi_tables.items()},
        methods=methods, references=references, provenance=_provenance(rec),
        encoding=participant_section(rec, figs),
        warnings=list(rec.config.get("warnings", [])), problems=rec.problems + figs.problems,
    )


def write_participant_report(output_dir: Path, subject: str, task: str, *,
                             verbose: bool = False) -> Path | None:
    """Build and atomically write ``output_dir/sub-<label>.html``; never raises.

    A failure is logged and returns None (an older report is left as it is: after a new
    analysis the driver removes it, :func:`bids_facedecode.workflow.rerun.remove_stale_report`).
    """
    from ..bidsio.derivatives import write_text

    path = participant_report_path(output_dir, subject)
    try:
        return write_text(path, build_participant_report(output_dir, subject, task))
    except Exception as exc:  # noqa: BLE001 - a report never fails or corrupts the analysis
        LOG.error("sub-%s: report failed: %s: %s", subject, type(exc).__name__, exc, exc_info=verbose)
        return None


def rebuild_participant_reports(settings) -> int:
    """``--reports-only`` at the participant level: rebuild each selected participant's report.

    Returns the exit code: 0 when every report was written.
    """
    from ..bidsio.layout import resolve_labels
    from ..errors import EXIT_FAILURE

    available = output_subjects(settings.output_dir)
    subjects = resolve_labels(available, settings.participant_label, "sub", settings.output_dir)
    failed = [s for s in subjects if write_participant_report(
        settings.output_dir, s, settings.task, verbose=settings.verbosity > 1) is None]
    for s in subjects:
        if s not in failed:
            print(f"sub-{s}: {participant_report_path(settings.output_dir, s)}")
    return EXIT_FAILURE if failed else 0
