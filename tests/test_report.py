"""Reports: rendered from the app run's outputs on disk; sections, numbers equal to the files,
every figure embedded and decodable, nothing fetched from elsewhere, --reports-only, and a
report failure that leaves the analysis intact."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import app_args
from PIL import Image

from bids_facedecode.bidsio.derivatives import parse_bids_name
from bids_facedecode.cli import main
from bids_facedecode.report import _fmt
from bids_facedecode.report.design import column_groups, group_correlations, regressor_correlations
from bids_facedecode.report.inputs import read_participant_record, split_tiles
from bids_facedecode.report.maps import choose_background

SUBJECT = "01"
PARTICIPANT_SECTIONS = {"summary", "results", "reconstructions", "maps", "design", "methods",
                        "provenance", "warnings"}
GROUP_SECTIONS = {"summary", "participants", "distributions", "paired", "reconstructions", "warnings"}
MAX_REPORT_BYTES = 3 * 2**20


class _Page(HTMLParser):
    """Sections, images, links, external references and data-value cells of a report."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.external: list[str] = []
        self.cells: list[dict] = []
        self._cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "id" in a:
            self.sections.append(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        for key in ("src", "href"):
            v = a.get(key)
            if v is not None and not (v.startswith("data:") or v.startswith("#")
                                      or (tag == "a" and v.endswith(".html") and "/" not in v)):
                self.external.append(f"<{tag} {key}={v[:80]}>")
        if tag in ("script", "iframe", "object", "embed") or (tag == "link" and a.get("rel") == "stylesheet"):
            self.external.append(f"<{tag}>")
        if tag == "td" and "data-value" in a:
            self._cell = {**a, "text": ""}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _decode_png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,"), uri[:40]
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)))
    im.load()
    return im


def _metrics(out: Path, subject: str) -> dict[str, dict]:
    docs = {}
    for p in sorted((out / f"sub-{subject}").glob("*_metrics.json")):
        doc = json.loads(p.read_text())
        docs[doc["space"]] = doc
    return docs


def _hashes(root: Path, skip: tuple[str, ...] = (".html",)) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(skip)}


# -- the participant report ------------------------------------------------------------------

def test_participant_report_sections_and_numbers(app_run):
    path = app_run / f"sub-{SUBJECT}.html"
    page = _parse(path)
    assert PARTICIPANT_SECTIONS <= set(page.sections)
    docs = _metrics(app_run, SUBJECT)
    assert docs
    cells = {(c["data-space"], c["data-metric"]): c for c in page.cells if "data-metric" in c}
    n = 0
    for space, doc in docs.items():
        for metric, m in doc["metrics"].items():
            cell = cells[(space, metric)]
            assert float(cell["data-value"]) == m["value"]          # exact: the file's number
            assert cell["text"].strip() == _fmt(m["value"])         # shown rounded to 3 decimals
            n += 1
    assert n >= 4
    html = path.read_text()
    doc = next(iter(docs.values()))
    for key, cell_id in (("n_runs", "n-runs"), ("n_test_images", "n-test")):
        assert f'<td id="{cell_id}">{doc[key]}' in html


def test_participant_report_images_embedded_and_decodable(app_run):
    path = app_run / f"sub-{SUBJECT}.html"
    page = _parse(path)
    assert page.external == []
    sizes = [_decode_png(uri).size for uri in page.images]
    assert all(w > 50 and h > 50 for w, h in sizes)
    docs = _metrics(app_run, SUBJECT)
    # maps: face vs fixation + (F, selected, gender) per space; reconstructions; design; charts
    assert len(page.images) >= 1 + 3 * len(docs) + 2 + 2
    assert path.stat().st_size < MAX_REPORT_BYTES
    text = path.read_text()
    assert "could not be drawn" not in text
    assert "MNI152 template" in text                       # the simulated data are in MNI space


def test_participant_report_methods_and_provenance(app_run):
    html = (app_run / f"sub-{SUBJECT}.html").read_text()
    cfg = json.loads((app_run / "logs" / f"sub-{SUBJECT}_config.json").read_text())
    doc = next(iter(_metrics(app_run, SUBJECT).values()))
    assert f"{1 / cfg['high_pass']:.0f} s cut-off" in html
    assert f"D = {doc['latent_dim']} dimensions" in html
    assert f"{doc['n_voxels']} voxels selected" in html
    assert f"seed {cfg['seed']}" in html
    assert "doi:10.1038/s42003-019-0438-y" in html
    assert cfg["command_line"].split()[0] in html and "--n-voxels" in html
    for lib in ("nilearn", "torch", "numpy"):
        assert f"<th class=\"l\">{lib}</th><td class=\"l\">{cfg['library_versions'][lib]}</td>" in html


def test_design_tsv_face_column_matches_nilearn(app_run, app_dataset):
    """The design the report draws is the model's: its face regressor equals nilearn's
    convolution of the first run's training-face events (one-back repeats are nuisance)."""
    from nilearn.glm.first_level import compute_regressor

    rec = read_participant_record(app_run, SUBJECT, "faces")
    d, sc = rec.design, rec.design_sidecar
    events = sorted(app_dataset.glob(f"sub-{SUBJECT}/**/func/*task-faces*_events.tsv"))[0]
    ev = pd.read_csv(events, sep="\t")
    train = ev[(ev["trial_type"].str.strip().str.lower() == "train_face") & (ev["oneback"] == 0)]
    frame_times = np.arange(len(d)) * sc["RepetitionTime"]
    ref, _ = compute_regressor(np.vstack([train["onset"], train["duration"], np.ones(len(train))]),
                               "spm", frame_times, oversampling=50)
    # the TSV keeps 6 significant digits
    np.testing.assert_allclose(d["face"].to_numpy(), ref[:, 0], rtol=1e-5, atol=1e-7)
    groups = [g for g, _, _ in column_groups(list(d.columns))]
    assert groups[0] == "pca latents" and "face" in groups and "drift + intercept" in groups


def test_tiles_hold_the_test_images_in_table_order(app_run, app_dataset):
    """Row 1 of the tile sheet is each test stimulus (as the model saw it), in the order of
    the decoding table, so the grid's columns are the right faces."""
    from bids_facedecode.images import load_images

    rec = read_participant_record(app_run, SUBJECT, "faces")
    sheet, sidecar = rec.tiles["pca"]
    rows = split_tiles(sheet, sidecar)
    table = rec.decoding["pca"]
    assert sidecar["Columns"] == list(table["stim_file"])
    stim = {p.name: p for p in (app_dataset / "stimuli").rglob("*.jpg")}
    ref = load_images([stim[f] for f in sidecar["Columns"]], sidecar["TileSize"])
    np.testing.assert_allclose(rows["shown"], ref, atol=1 / 255 + 1e-6)
    assert rows["reconstructed"].shape == ref.shape


# -- the group report ------------------------------------------------------------------------

def test_group_report_numbers_equal_the_tables(app_run):
    page = _parse(app_run / "group.html")
    assert GROUP_SECTIONS <= set(page.sections)
    assert page.external == []
    for uri in page.images:
        _decode_png(uri)
    stats = pd.read_csv(app_run / "group" / "group_task-faces_stats.tsv", sep="\t", na_values="n/a")
    cells = {(int(c["data-row"]), c["data-col"]): c for c in page.cells
             if c.get("data-table") == "stats-table"}
    n = 0
    for i, row in stats.iterrows():
        for col in stats.select_dtypes("number").columns:
            if np.isfinite(row[col]):
                assert float(cells[(i, col)]["data-value"]) == row[col]
                n += 1
    assert n >= len(stats) * 3
    subjects = sorted(p.name[4:] for p in app_run.glob("sub-*") if p.is_dir())
    for sub in subjects:
        for space, doc in _metrics(app_run, sub).items():
            for metric, m in doc["metrics"].items():
                cell = next(c for c in page.cells if c.get("data-subject") == sub
                            and c.get("data-metric") == metric and c.get("data-space") == space)
                assert float(cell["data-value"]) == m["value"]
        assert f"sub-{sub}.html" in page.links
    for link in page.links:
        if link.endswith(".html"):
            assert (app_run / link).is_file()


# -- --reports-only, and failures that must not hurt the analysis -----------------------------

@pytest.fixture
def run_copy(app_run, tmp_path) -> Path:
    out = tmp_path / "derivatives"
    shutil.copytree(app_run, out)
    return out


def test_reports_only_rebuilds_without_refitting(run_copy, app_dataset, monkeypatch):
    import bids_facedecode.group as group
    import bids_facedecode.participant as participant

    def refuse(*a, **k):
        raise AssertionError("--reports-only must not refit")

    monkeypatch.setattr(participant, "analyse_participant", refuse)
    monkeypatch.setattr(group, "group_statistics", refuse)
    before = _hashes(run_copy)
    for html in run_copy.glob("*.html"):
        html.unlink()
    assert main([str(app_dataset), str(run_copy), "participant", "--reports-only",
                 "--participant-label", SUBJECT]) == 0
    assert (run_copy / f"sub-{SUBJECT}.html").is_file()
    assert not (run_copy / "sub-02.html").exists()        # only the selected participant
    assert main([str(app_dataset), str(run_copy), "group", "--reports-only"]) == 0
    assert (run_copy / "group.html").is_file()
    assert _hashes(run_copy) == before                      # nothing else written or changed
    assert PARTICIPANT_SECTIONS <= set(_parse(run_copy / f"sub-{SUBJECT}.html").sections)


def test_reports_only_without_outputs_is_a_clear_error(tmp_path, app_dataset, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main([str(app_dataset), str(out), "group", "--reports-only"]) == 66
    assert "run the group level first" in capsys.readouterr().err


def test_failed_figure_is_reported_not_fatal(run_copy, monkeypatch):
    import bids_facedecode.report.participant_report as pr

    def broken(*a, **k):
        raise RuntimeError("no slices today")

    monkeypatch.setattr(pr, "map_figure", broken)
    html = pr.build_participant_report(run_copy, SUBJECT, "faces")
    assert "could not be drawn: RuntimeError: no slices today" in html
    assert 'id="results"' in html and 'id="reconstructions"' in html


def test_failed_participant_report_keeps_analysis(app_dataset, small_pca, tmp_path, monkeypatch, caplog):
    import bids_facedecode.report.participant_report as pr

    def broken(*a, **k):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(pr, "build_participant_report", broken)
    out = tmp_path / "derivatives"
    stale = out / f"sub-{SUBJECT}.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("<html>an older run</html>")
    with caplog.at_level(logging.ERROR):
        rc = main(app_args(app_dataset, out, small_pca, "participant", "--participant-label", SUBJECT))
    assert rc == 0
    assert "template exploded" in caplog.text
    assert list((out / f"sub-{SUBJECT}").glob("*_metrics.json"))
    assert (out / "logs" / f"sub-{SUBJECT}_config.json").is_file()
    assert not stale.exists()                               # no report that contradicts the files
    assert not list(out.rglob(".*.tmp*"))                   # no half-written file


def test_failed_group_report_keeps_group_tables(run_copy, app_dataset, monkeypatch, caplog):
    import bids_facedecode.report.group_report as gr

    def broken(*a, **k):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(gr, "build_group_report", broken)
    (run_copy / "group.html").unlink()
    shutil.rmtree(run_copy / "group")
    with caplog.at_level(logging.ERROR):
        assert main([str(app_dataset), str(run_copy), "group"]) == 0
    assert "plot failed" in caplog.text
    assert (run_copy / "group" / "group_task-faces_stats.tsv").is_file()
    assert not (run_copy / "group.html").exists()


def test_group_report_lists_incomplete_participants(run_copy):
    from bids_facedecode.report.group_report import build_group_report

    (run_copy / "sub-09" / "func").mkdir(parents=True)
    html = build_group_report(run_copy, "faces")
    assert "Participants without results" in html and "sub-09" in html


# -- pure pieces -------------------------------------------------------------------------------

def test_regressor_correlations_against_numpy(rng):
    t = 60
    x = rng.standard_normal((t, 4))
    x[:, 1] = 0.9 * x[:, 0] + 0.1 * x[:, 1]
    d = pd.DataFrame(np.c_[x, np.ones(t), np.cos(np.arange(t) / 9)],
                     columns=["pca_z1", "pca_z2", "face", "test_A", "constant", "drift_1"])
    r = np.corrcoef(x, rowvar=False)
    top = regressor_correlations(d, top=1).iloc[0]
    assert {top["a"], top["b"]} == {"pca_z1", "pca_z2"}
    assert top["r"] == pytest.approx(r[0, 1])
    g = group_correlations(d)
    assert list(g.index) == ["pca latents", "face", "test"]
    assert g.loc["pca latents", "pca latents"] == pytest.approx(abs(r[0, 1]))
    assert g.loc["face", "test"] == pytest.approx(abs(r[2, 3]))
    assert g.loc["pca latents", "test"] == pytest.approx(np.abs(r[:2, 3]).max())


def test_column_groups_and_names():
    cols = ["vaegan_z1", "vaegan_z2", "pca_z1", "face", "test_F1", "test_M2", "img_F1", "oneback",
            "drift_1", "constant"]
    assert column_groups(cols) == [("vaegan latents", 0, 2), ("pca latents", 2, 3), ("face", 3, 4),
                                   ("test", 4, 6), ("imagery", 6, 7), ("oneback", 7, 8),
                                   ("drift + intercept", 8, 10)]
    assert parse_bids_name("sub-01_task-faces_desc-pca_stat-F_statmap.nii.gz") == (
        {"sub": "01", "task": "faces", "desc": "pca", "stat": "F"}, "statmap", ".nii.gz")


def test_background_mni_or_not():
    from nilearn import datasets

    mni = datasets.load_mni152_brain_mask(resolution=2)
    bg, text = choose_background(mni, ["sub-01_task-faces_bold.nii.gz"])
    assert "MNI152 template" in text and bg is not None
    shifted = nib.Nifti1Image(np.asarray(mni.dataobj), mni.affine @ np.diag([1, 1, 1, 1]) + np.c_[
        np.zeros((4, 3)), [60, -80, 70, 0]])
    bg, text = choose_background(shifted, ["sub-01_task-faces_bold.nii.gz"])
    assert bg is shifted and "do not look like MNI" in text
    bg, text = choose_background(mni, ["sub-01_space-T1w_desc-preproc_bold.nii.gz"])
    assert bg is mni and "T1w" in text


def test_warnings_logged_during_analysis_reach_the_report(run_copy):
    from bids_facedecode.provenance import collect_warnings
    from bids_facedecode.report.participant_report import build_participant_report

    sink: list[str] = []
    with collect_warnings(sink):
        logging.getLogger("bids_facedecode.workflow.decoding").warning("--n-voxels %d exceeds", 9999)
        logging.getLogger("bids_facedecode.workflow.decoding").info("not a warning")
    logging.getLogger("bids_facedecode").warning("after the block")
    assert sink == ["WARNING: --n-voxels 9999 exceeds"]
    cfg_path = run_copy / "logs" / f"sub-{SUBJECT}_config.json"
    cfg = json.loads(cfg_path.read_text())
    # the app run logged one warning: raw BOLD, so no confound regressors
    assert [w for w in cfg["warnings"] if "raw BOLD without confounds" not in w] == []
    assert any("--derivatives" in w for w in cfg["warnings"])
    cfg["warnings"] = sink
    cfg_path.write_text(json.dumps(cfg))
    html = build_participant_report(run_copy, SUBJECT, "faces")
    assert "Warnings logged during the analysis" in html and "--n-voxels 9999 exceeds" in html


def test_chance_chart_draws_each_spaces_chance_and_leaves_out_the_mean_rank():
    from bids_facedecode.report.figures import chance_metrics_figure

    rows = pd.DataFrame([{"metric": m, "space": s, "value": v, "chance": c, "p_value": 0.01}
                         for m, v, c in (("pairwise_latent", 0.8, 0.5), ("mean_rank_latent", 4.0, 10.5),
                                         ("mean_rank_latent_wls", 4.0, 10.5))
                         for s in ("pca", "vaegan")]
                        + [{"metric": "imagery_pairwise", "space": "pca", "value": 0.6, "chance": 0.53,
                            "p_value": 0.2},
                           {"metric": "imagery_pairwise", "space": "vaegan", "value": 0.5,
                            "chance": 0.47, "p_value": 0.4}])
    fig = chance_metrics_figure(rows)
    assert [ax.get_title() for ax in fig.axes] == ["pairwise identification (latent space)",
                                                   "imagery identification"]
    segments = fig.axes[1].collections[0].get_segments()  # one dashed chance segment per space
    assert [round(float(seg[0][1]), 2) for seg in segments] == [0.53, 0.47]
