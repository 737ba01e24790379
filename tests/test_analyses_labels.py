"""Label tables: stimulus gender from stimuli.tsv, imagined faces from a user table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bids_facedecode.bidsio.labels import (
    imagined_files_for_run,
    read_gender_table,
    read_imagery_labels,
    stimulus_genders,
)
from bids_facedecode.errors import DataError, NoInputError


class _Index:
    """The two StimulusIndex members the gender lookup uses."""

    def __init__(self, root, names):
        self.root, self._names = root, names

    def name(self, sha):
        return self._names[sha]


def test_gender_table_overrides_file_names(tmp_path):
    idx = _Index(tmp_path, {"aa": "img1.png", "bb": "M0002.jpg", "cc": "F0003.jpg", "dd": "x.png"})
    # no table: the file-name prefix, n/a without one
    assert list(stimulus_genders(idx, ["aa", "bb", "cc", "dd"])) == ["n/a", "M", "F", "n/a"]
    pd.DataFrame({"stim_file": ["sub01/img1.png", "x/M0002.jpg"], "gender": ["female", "0"]}).to_csv(
        tmp_path / "stimuli.tsv", sep="\t", index=False)
    assert list(stimulus_genders(idx, ["aa", "bb", "cc", "dd"])) == ["F", "F", "F", "n/a"]
    pd.DataFrame({"sha1": ["DD"], "gender": ["M"]}).to_csv(tmp_path / "g.tsv", sep="\t", index=False)
    assert list(stimulus_genders(idx, ["dd"], tmp_path / "g.tsv")) == ["M"]
    pd.DataFrame({"gender": ["M"]}).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match="stim_file"):
        read_gender_table(tmp_path / "bad.tsv")


def test_imagery_labels_by_entities_and_by_file(tmp_path):
    path = tmp_path / "img.tsv"
    pd.DataFrame({"subject": ["sub-01", "01", "02"], "session": ["", "ses-02", ""], "run": ["2", "02", "2"],
                  "onset": [384.0, 100.0, 384.0],
                  "imagined_stim_file": ["a/F1.jpg", "b/M2.jpg", "c/F3.jpg"]}).to_csv(path, sep="\t", index=False)
    table = read_imagery_labels(path)
    run = SimpleNamespace(subject="01", session="02", run="02", events=tmp_path / "e_events.tsv")
    assert imagined_files_for_run(table, run, np.array([384.2, 100.0, 50.0])) == ["a/F1.jpg", "b/M2.jpg", ""]
    pd.DataFrame({"events_file": ["x/e_events.tsv"], "onset": [7], "imagined_stim_file": ["d.jpg"]}).to_csv(
        path, sep="\t", index=False)
    assert imagined_files_for_run(read_imagery_labels(path), run, np.array([7.0])) == ["d.jpg"]
    pd.DataFrame({"onset": [7], "imagined_stim_file": ["d.jpg"]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(DataError, match="events_file"):
        read_imagery_labels(path)
    with pytest.raises(NoInputError, match="--imagery-labels"):
        read_imagery_labels(tmp_path / "missing.tsv")
