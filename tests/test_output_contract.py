"""The output contract (bidsio/outputs.py) and the participant level's order of work."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import app_args

from bids_facedecode.bidsio.outputs import (
    ParticipantMetrics,
    ParticipantPaths,
    SavedDecoder,
    citation_path,
    find_metrics_files,
    load_decoder,
    metric_rows,
    read_metrics,
    save_decoder,
    write_metrics,
)
from bids_facedecode.cli import main
from bids_facedecode.errors import DataError


def test_metrics_record_round_trips_byte_for_byte(app_run, tmp_path):
    """Read and written again through ParticipantMetrics, a metrics JSON keeps its bytes."""
    files = find_metrics_files(app_run)
    assert files
    for path in files:
        record = read_metrics(path)
        assert isinstance(record, ParticipantMetrics) and record.space == "pca"
        again = write_metrics(tmp_path / path.name, record)
        assert again.read_bytes() == path.read_bytes()


def test_metrics_reader_defaults_and_errors(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"subject": "01", "space": "pca", "metrics": {"pairwise_latent": {"value": 0.7}}}')
    record = read_metrics(path)
    assert record.settings is None and record.decoder == "ols"
    (row,) = metric_rows(record)
    assert row["alternative"] == "greater" and row["roi"] == "all" and row["base_metric"] == "pairwise_latent"
    for bad in ('{"subject": "01", "space": "pca"}', '[1, 2]', "{not json"):
        path.write_text(bad)
        with pytest.raises(DataError, match=r"m.json: unreadable participant metrics"):
            read_metrics(path)


def test_decoder_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    dec = SavedDecoder(None, "pca", rng.normal(size=(4, 5)), np.array([0, 2, 3, 5, 7]),
                       rng.normal(size=3), mask, np.eye(4), "ridge", 0.1, np.ones(3), np.zeros(3))
    path = save_decoder(ParticipantPaths(tmp_path, "01", "faces").decoder("pca"), dec)
    assert path.name == "sub-01_task-faces_desc-pca_decoder.npz"
    back = load_decoder(path)
    np.testing.assert_allclose(back.W, dec.W.astype(np.float32))
    np.testing.assert_array_equal(back.selected, dec.selected)
    np.testing.assert_array_equal(back.mask, mask)
    assert (back.space, back.decoder, back.ridge, back.latent_dim) == ("pca", "ridge", pytest.approx(0.1), 3)
    np.testing.assert_array_equal(back.gender_axis, np.ones(3))


def _with_fewer_runs(bids, tmp_path, subject: str, keep: int):
    """A copy of ``bids`` in which ``sub-<subject>`` keeps its first ``keep`` runs."""
    copy = tmp_path / "bids"
    shutil.copytree(bids, copy)
    for path in sorted((copy / f"sub-{subject}").rglob("*_run-*")):
        run = int(path.name.split("_run-")[1].split("_")[0])
        if run > keep:
            path.unlink()
    return copy


def test_citation_is_the_same_whichever_participant_finishes_last(app_dataset, small_pca, tmp_path):
    """logs/CITATION.md is shared by the participants of one output folder: its bytes must not
    depend on which participant committed last (here sub-02 has 3 runs, sub-01 4)."""
    bids = _with_fewer_runs(app_dataset, tmp_path, "02", keep=3)
    texts = []
    for order in (("01", "02"), ("02", "01")):
        out = tmp_path / f"out_{'_'.join(order)}"
        for sub in order:
            assert main(app_args(bids, out, small_pca, "participant", "--participant-label", sub,
                                 "--skip-bids-validation")) == 0
        texts.append(citation_path(out).read_bytes())
        # the participant-specific facts are in each participant's report
        assert "3 runs" in (out / "sub-02.html").read_text() and "4 runs" in (out / "sub-01.html").read_text()
    assert texts[0] == texts[1]
    assert b"D = 16 dimensions" in texts[0] and b"300 voxels" in texts[0]


def test_a_plan_error_of_the_last_participant_stops_before_any_bold_is_read(
        app_dataset, small_pca, tmp_path, monkeypatch, capsys):
    """--voxel-selection noiseceiling needs two runs: sub-02 has one. Every participant's plan is
    made before any data pass, so the run stops with the data error's exit code before sub-01's
    BOLD is read or any output is written."""
    from bids_facedecode.workflow import analysis, streaming

    def no_bold(*args, **kwargs):
        raise AssertionError("BOLD data read before every participant was checked")

    monkeypatch.setattr(analysis, "participant_mask", no_bold)
    monkeypatch.setattr(streaming, "load_masked_run_cached", no_bold)
    bids = _with_fewer_runs(app_dataset, tmp_path, "02", keep=1)
    out = tmp_path / "out"
    code = main(app_args(bids, out, small_pca, "participant", "--voxel-selection", "noiseceiling",
                         "--skip-bids-validation"))
    assert code == DataError.exit_code
    assert "sub-02: --voxel-selection noiseceiling needs at least 2 runs" in capsys.readouterr().err
    assert not list(out.glob("sub-*")) and not (out / "logs").exists()
