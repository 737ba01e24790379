"""Reading events and stimuli, naming and atomically writing derivatives."""

from __future__ import annotations

import pytest

from bids_facedecode.bidsio.derivatives import atomic_write, bids_name
from bids_facedecode.bidsio.events import read_events
from bids_facedecode.bidsio.stimuli import StimulusIndex, gender_from_name
from bids_facedecode.config import EventSpec
from bids_facedecode.errors import DataError


def _events(tmp_path, text):
    path = tmp_path / "x_events.tsv"
    path.write_text(text)
    return path


def test_events_normalised(tmp_path):
    path = _events(tmp_path, "onset\tduration\t Trial_Type \tstim_file\toneback\n"
                             "6\t1\tTRAIN_face\ta/M1.jpg\t0\n"
                             "9\t1\t train_face\ta/M1.jpg\t1\n"
                             "3\t1\ttest_face\ta/F2.jpg\t0\n"
                             "12\t3\tFix\tplaceholders/fixation.png\tn/a\n"
                             "15\t12\tImg\tplaceholders/fixation.png\t0\n"
                             "30\t1\tbutton press\tn/a\t0\n")
    t = read_events(path, EventSpec())
    assert list(t["onset"]) == [3, 6, 9, 15, 30]  # sorted, Fix dropped
    assert list(t["kind"]) == ["test", "train", "oneback", "imagery", "buttonpress"]
    assert list(t["imagined_file"]) == [""] * 5


def test_custom_names(tmp_path):
    path = _events(tmp_path, "onset\tduration\tcondition\timage\n1\t1\tseen\tM1.png\n4\t1\tnull\tn/a\n")
    spec = EventSpec(trial_type_column="Condition", stim_column="IMAGE", train_type="Seen",
                     null_type="NULL")
    t = read_events(path, spec)
    assert list(t["kind"]) == ["train"] and list(t["stim_file"]) == ["M1.png"]


def test_missing_column_names_file(tmp_path):
    path = _events(tmp_path, "onset\tduration\tstim_file\n1\t1\tM1.png\n")
    with pytest.raises(DataError, match="x_events.tsv.*trial_type"):
        read_events(path)


def test_stimuli_identified_by_content(tmp_path):
    root = tmp_path / "stimuli"
    (root / "run1").mkdir(parents=True)
    (root / "run2").mkdir()
    (root / "run1" / "F0001.jpg").write_bytes(b"same")
    (root / "run2" / "F0001.jpg").write_bytes(b"same")
    (root / "run2" / "M0002.jpg").write_bytes(b"other")
    idx = StimulusIndex(root)
    a = idx.identify("run1/F0001.jpg", tmp_path / "e.tsv")
    assert idx.identify("stimuli/run2/F0001.jpg", tmp_path / "e.tsv") == a
    assert idx.identify("run2/M0002.jpg", tmp_path / "e.tsv") != a
    with pytest.raises(DataError, match="e.tsv.*nothere.jpg"):
        idx.identify("nothere.jpg", tmp_path / "e.tsv")


def test_gender_prefix():
    assert gender_from_name("sub01/run13/F0559.jpg") == "F"
    assert gender_from_name("m0001.png") == "M"
    assert gender_from_name("X0001.png") is None
    assert gender_from_name("face1.png") is None and gender_from_name("Mask.png") is None
    assert gender_from_name("M_0001.png") == "M"


def test_bids_name_order():
    name = bids_name({"stat": "F", "desc": "pca", "task": "faces", "sub": "01", "space": "MNI"},
                     "statmap", ".nii.gz")
    assert name == "sub-01_task-faces_space-MNI_desc-pca_stat-F_statmap.nii.gz"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.json"

    def boom(p):
        p.write_text("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, lambda p: p.write_text("ok"))
    assert target.read_text() == "ok" and len(list(tmp_path.iterdir())) == 1
