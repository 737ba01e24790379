"""The 'analyses' options: parsing, Settings, help, bad values and missing files."""

from __future__ import annotations

import pytest

from bids_facedecode import errors
from bids_facedecode.cli import build_parser, main, settings_from_args

OPTIONS = ("--decoder", "--voxel-selection", "--roi-atlas", "--roi-labels", "--imagery-labels",
           "--decoder-from", "--n-permutations")


def test_options_reach_settings(tmp_path):
    argv = [str(tmp_path), str(tmp_path / "derivatives"), "participant", "--decoder", "wls", "ols", "wls",
            "--voxel-selection", "noiseceiling", "--roi-atlas", "a.nii.gz", "--roi-labels", "a.tsv",
            "--imagery-labels", "img.tsv", "--decoder-from", "d1.npz", "d2.npz", "--n-permutations", "50"]
    s = settings_from_args(build_parser().parse_args(argv), argv)
    assert s.decoders == ("wls", "ols") and s.voxel_selection == "noiseceiling"
    assert s.roi_atlas.name == "a.nii.gz" and s.roi_atlas.is_absolute() and s.roi_labels.name == "a.tsv"
    assert s.imagery_labels.name == "img.tsv" and [p.name for p in s.decoder_from] == ["d1.npz", "d2.npz"]
    assert s.n_permutations == 50
    d = s.to_dict()
    assert d["decoders"] == ["wls", "ols"] and d["decoder_from"][0].endswith("d1.npz")
    default = settings_from_args(build_parser().parse_args(argv[:3]), argv[:3])
    assert default.decoders == ("ols",) and default.voxel_selection == "ftest"
    assert default.n_permutations == 1000 and default.decoder_from == ()


def test_help_lists_the_analyses_group(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "analyses:" in out
    for opt in OPTIONS:
        assert opt in out


@pytest.mark.parametrize("bad", [["--decoder", "lasso"], ["--voxel-selection", "random"],
                                 ["--n-permutations", "0"]])
def test_bad_values(bad, tmp_path):
    assert main([str(tmp_path), str(tmp_path / "o"), "participant", *bad]) == errors.EXIT_USAGE


def test_missing_files_name_the_option(app_dataset, small_pca, tmp_path, capsys):
    from conftest import app_args

    for opt, code in (("--roi-atlas", errors.NoInputError), ("--decoder-from", errors.NoInputError),
                      ("--imagery-labels", errors.NoInputError)):
        rc = main(app_args(app_dataset, tmp_path / "o", small_pca, "participant", "--participant-label",
                           "01", opt, str(tmp_path / "missing.file")))
        assert rc == code("x").exit_code
        assert opt in capsys.readouterr().err
