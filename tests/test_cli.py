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
    assert main(["a", "b"]) == errors.EXIT_USAGE


@pytest.mark.parametrize("level", ["sideways", "session", "Participant", ""])
def test_unknown_analysis_level_exits_17(level, tmp_path, capsys):
    """BIDS-App execution specification: an unknown analysis level exits 17, on one line."""
    assert errors.EXIT_ANALYSIS_LEVEL == 17 and 17 in errors.EXIT_CODES
    assert main([str(tmp_path), str(tmp_path / "out"), level, "--participant-label", "01"]) == 17
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "analysis_level" in err and repr(level) in err
    assert "participant or group" in err
    assert not (tmp_path / "out").exists()


def test_unknown_analysis_level_exit_status_of_the_command(tmp_path):
    """The installed entry point's exit status, not only main()'s return value."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", "from bids_facedecode.cli import run; run()",
                          str(tmp_path), str(tmp_path / "out"), "subject"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 17, res.stderr
    assert res.stderr.strip().splitlines() == [
        "bids_facedecode: error: analysis_level 'subject': unknown analysis level; expected "
        "participant or group"]


def test_known_levels_still_parse():
    for level in ("participant", "group"):
        assert build_parser().parse_args(["in", "out", level]).analysis_level == level


@pytest.mark.parametrize("spelling", ["--participant-label", "--participant_label"])
def test_participant_label_alias(spelling):
    """fMRIPrep accepts both spellings; so does the app (one destination, one option)."""
    args = build_parser().parse_args(["in", "out", "participant", spelling, "01", "sub-02"])
    assert args.participant_label == ["01", "sub-02"]


def test_underscore_aliases_of_fmriprep():
    hyphen = build_parser().parse_args(["i", "o", "participant", "--skip-bids-validation",
                                        "--n-cpus", "3"])
    under = build_parser().parse_args(["i", "o", "participant", "--skip_bids_validation",
                                       "--n_cpus", "3"])
    assert vars(hyphen) == vars(under)
    assert under.skip_bids_validation is True and under.nprocs == 3


def test_choices_come_from_the_modules():
    """One definition of each setting's values (config), the parser's choices and the modules'."""
    from bids_facedecode import config, selection
    from bids_facedecode.glm import NOISE_MODELS, PRECISIONS, normal_equations
    from bids_facedecode.workflow.decoding import DECODERS, SELECTIONS

    choices = {a.dest: tuple(a.choices) for a in build_parser()._actions if a.choices}
    assert choices == {"analysis_level": config.ANALYSIS_LEVELS, "decoders": config.DECODERS,
                       "voxel_selection": config.SELECTIONS,
                       "selection_correction": config.CORRECTIONS,
                       "device": config.DEVICE_CHOICES, "noise_model": config.NOISE_MODELS,
                       "glm_precision": config.PRECISIONS}
    # the modules that implement them use the same objects
    assert (DECODERS, SELECTIONS, NOISE_MODELS, PRECISIONS, selection.CORRECTIONS) == (
        config.DECODERS, config.SELECTIONS, config.NOISE_MODELS, normal_equations.PRECISIONS,
        config.CORRECTIONS)


def test_the_parser_needs_no_torch():
    """--help and usage errors answer without importing torch (seconds on a loaded machine)."""
    import subprocess
    import sys

    code = "import sys, bids_facedecode.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
