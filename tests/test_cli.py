"""The command line: parser, help, version, label handling."""

from __future__ import annotations

import pytest

from bids_facedecode import __version__, errors
from bids_facedecode.cli import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for code in errors.EXIT_CODES:
        assert f"{code:>3}  " in out


def test_required_positionals_are_usage_errors(capsys):
    assert main([]) == errors.EXIT_USAGE
    assert main(["a", "b", "sideways"]) == errors.EXIT_USAGE


def test_defaults_and_options():
    args = build_parser().parse_args([
        "in", "out", "participant", "--participant-label", "sub-01", "02", "--latents",
        "pca=tab.tsv", "--latents", "vaegan=z.mat", "--device", "cpu", "--mem", "2.5",
        "--n-voxels", "500", "--TRIAL-TYPE-COLUMN".lower(), "condition"])
    assert args.participant_label == ["sub-01", "02"]
    assert args.latents[0][0] == "pca" and args.latents[1][1].name == "z.mat"
    assert args.mem == 2.5 and args.n_voxels == 500 and args.trial_type_column == "condition"
    assert args.task == "faces" and args.device == "cpu"


@pytest.mark.parametrize("bad", [["--latents", "pca"], ["--mem", "-1"], ["--device", "tpu"],
                                 ["--nprocs", "0"]])
def test_bad_values(bad, tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path / "o"), "participant", *bad]) == errors.EXIT_USAGE


def test_participant_label_prefix_is_accepted(app_run):
    """The end-to-end fixture ran with labels discovered; the prefix form selects the same."""
    from bids_facedecode.bidsio.layout import resolve_labels

    assert resolve_labels(["01", "02"], ("sub-02",), "sub", app_run) == ["02"]
    assert resolve_labels(["01", "02"], (), "sub", app_run) == ["01", "02"]
