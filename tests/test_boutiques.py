"""The Boutiques descriptor (boutiques.json) against the argument parser it is generated from."""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import re
import shlex
from collections import defaultdict
from pathlib import Path, PurePath
from unittest import mock

import pytest

from bids_facedecode import __version__
from bids_facedecode.boutiques import (
    GENERATE_COMMAND,
    build_descriptor,
    descriptor_json,
    main,
)
from bids_facedecode.cli import build_parser
from bids_facedecode.errors import EXIT_CODES, FaceDecodeError

REPO = Path(__file__).resolve().parents[1]
DESCRIPTOR = REPO / "boutiques.json"
INVOCATION = Path(__file__).parent / "data" / "boutiques_invocation.json"
OUT_KEY = "[OUTPUT_DIR]"


@pytest.fixture(scope="module")
def desc() -> dict:
    return json.loads(DESCRIPTOR.read_text())


def _run_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, argparse._HelpAction | argparse._VersionAction)]


def _inputs_by_dest(desc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for inp in desc["inputs"]:
        key = inp["value-key"]
        assert re.fullmatch(r"\[[A-Z0-9_]+\]", key), key
        out[key[1:-1].lower()].append(inp)
    return out


def _probe_type(action: argparse.Action) -> tuple[str, bool | None]:
    """What the action's value is, found by converting a sample (independent of the generator)."""
    if isinstance(action, argparse._CountAction):
        return "String", None
    if action.nargs == 0:
        return "Flag", None
    if action.type is None:
        return "String", None
    value = None
    for sample in ("7", "0.5", *(action.choices or ())):  # a count, a size, a probability, a choice
        try:
            value = action.type(sample)
            break
        except (argparse.ArgumentTypeError, ValueError, TypeError, FaceDecodeError):
            continue
    if value is None:
        return "String", None
    if isinstance(value, bool):
        return "String", None
    if isinstance(value, int):
        return "Number", True
    if isinstance(value, float):
        return "Number", False
    if isinstance(value, PurePath):
        return "File", None
    return "String", None


def _accepts(conv, text: str) -> bool:
    try:
        conv(text)
    except (argparse.ArgumentTypeError, ValueError):
        return False
    return True


# -- (1) the committed file is current ------------------------------------------------------

def test_committed_descriptor_is_current() -> None:
    expected = descriptor_json(build_descriptor())
    assert DESCRIPTOR.is_file(), f"boutiques.json missing; run: {GENERATE_COMMAND}"
    assert DESCRIPTOR.read_text() == expected, (
        f"boutiques.json is out of date with bids_facedecode.cli.build_parser(); run: {GENERATE_COMMAND}")


def test_check_mode_flags_a_stale_file(tmp_path, capsys) -> None:
    fresh = tmp_path / "boutiques.json"
    assert main([str(fresh)]) == 0
    assert main([str(fresh), "--check"]) == 0
    stale = json.loads(fresh.read_text())
    stale["inputs"] = [i for i in stale["inputs"] if i["id"] != "seed"]
    fresh.write_text(json.dumps(stale, indent=2) + "\n")
    assert main([str(fresh), "--check"]) == 1
    assert GENERATE_COMMAND in capsys.readouterr().err


def test_generation_does_not_depend_on_the_machine() -> None:
    with mock.patch("os.cpu_count", return_value=3):
        a = descriptor_json(build_descriptor())
    with mock.patch("os.cpu_count", return_value=96):
        b = descriptor_json(build_descriptor())
    assert a == b


# -- (2) parser <-> descriptor, both ways -----------------------------------------------------

def test_every_parser_option_is_described_and_nothing_else(desc) -> None:
    parser = build_parser()
    dests = {a.dest for a in _run_actions(parser)}
    described = set(_inputs_by_dest(desc))
    assert dests - described == set(), "parser options missing from boutiques.json"
    assert described - dests == set(), "boutiques.json inputs with no parser option"
    # --help/--version print and exit: not run parameters
    assert not {"help", "version"} & described
    assert len({i["id"] for i in desc["inputs"]}) == len(desc["inputs"])


def test_inputs_match_their_parser_actions(desc) -> None:
    parser = build_parser()
    by_dest = _inputs_by_dest(desc)
    for action in _run_actions(parser):
        inputs = by_dest[action.dest]
        if action.dest == "output_dir":
            continue  # the BIDS-App String/File pair, checked below
        assert len(inputs) == 1, action.dest
        inp = inputs[0]
        what = f"{action.dest}: {inp}"
        if isinstance(action, argparse._CountAction):  # "-v" or "-vv" as the value itself
            assert "command-line-flag" not in inp, what
        elif action.option_strings:
            assert inp["command-line-flag"] in action.option_strings, what
        else:
            assert "command-line-flag" not in inp and inp["optional"] is False, what
        assert inp["optional"] is (not action.required), what

        btype, integer = _probe_type(action)
        assert inp["type"] == btype, what
        if btype == "Number":
            assert inp["integer"] is integer, what

        is_list = isinstance(action, argparse._AppendAction) or \
            action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs >= 1)
        assert inp.get("list", False) is is_list, what
        if isinstance(action, argparse._AppendAction):  # flag repeated before every value
            assert inp["list-separator"] == f" {inp['command-line-flag']} ", what
        else:
            assert "list-separator" not in inp, what

        if isinstance(action, argparse._CountAction):
            for level, choice in enumerate(inp["value-choices"], start=1):
                ns = parser.parse_args(["b", "o", "group", choice])
                assert getattr(ns, action.dest) == level, what
        elif action.choices is not None:
            assert inp["value-choices"] == list(action.choices), what
        else:
            assert "value-choices" not in inp, what


def test_number_bounds_are_the_parser_bounds(desc) -> None:
    actions = {a.dest: a for a in _run_actions(build_parser())}
    numbers = [i for i in desc["inputs"] if i["type"] == "Number"]
    assert {i["id"] for i in numbers} >= {"n_voxels", "high_pass", "nprocs", "mem", "seed"}
    for inp in numbers:
        conv = actions[inp["id"]].type
        if "minimum" not in inp:
            assert _accepts(conv, "-1"), inp["id"]
            continue
        m = inp["minimum"]
        if inp.get("exclusive-minimum"):
            assert not _accepts(conv, str(m)) and _accepts(conv, str(m + 1e-6)), inp["id"]
        else:
            assert _accepts(conv, str(m)), inp["id"]
            assert not _accepts(conv, str(m - (1 if inp["integer"] else 1e-6))), inp["id"]
        if "maximum" in inp:
            top = inp["maximum"]
            assert not _accepts(conv, str(top + 1e-6)), inp["id"]
            assert _accepts(conv, str(top - 1e-6)), inp["id"]
            assert _accepts(conv, str(top)) is not inp.get("exclusive-maximum", False), inp["id"]
        else:
            assert _accepts(conv, "1000000000"), inp["id"]


def test_defaults_are_the_parser_defaults(desc) -> None:
    with mock.patch("os.cpu_count", return_value=1):
        one = {a.dest: a.default for a in _run_actions(build_parser())}
    with mock.patch("os.cpu_count", return_value=512):
        many = {a.dest: a.default for a in _run_actions(build_parser())}
    for dest, inputs in _inputs_by_dest(desc).items():
        for inp in inputs:
            if "default-value" in inp:
                default = one[dest]
                assert default == many[dest], f"{dest}: machine-dependent default in boutiques.json"
                assert inp["default-value"] == (str(default) if isinstance(default, PurePath)
                                                else default), dest
            else:
                unset = one[dest] in (None, [], False) or \
                    (inp["type"] == "String" and one[dest] == 0 and "value-choices" in inp)
                assert unset or one[dest] != many[dest], f"{dest}: default {one[dest]!r} not described"
    assert "default-value" not in next(i for i in desc["inputs"] if i["id"] == "nprocs")


def test_bids_app_shape(desc) -> None:
    outs = _inputs_by_dest(desc)["output_dir"]
    assert sorted(i["type"] for i in outs) == ["File", "String"]
    assert all(i["optional"] and "command-line-flag" not in i for i in outs)
    group = next(g for g in desc["groups"] if set(g["members"]) == {i["id"] for i in outs})
    assert group["mutually-exclusive"] and group["one-is-required"]
    level = _inputs_by_dest(desc)["analysis_level"][0]
    assert level["value-choices"] == ["participant", "group"]
    assert desc["command-line"].startswith(
        "mkdir -p [OUTPUT_DIR]; bids_facedecode [BIDS_DIR] [OUTPUT_DIR] [ANALYSIS_LEVEL] "
        "[PARTICIPANT_LABEL] [SESSION_LABEL] ")
    # every key once on the command line
    keys = re.findall(r"\[[A-Z0-9_]+\]", desc["command-line"])
    assert sorted(set(keys)) == sorted({i["value-key"] for i in desc["inputs"]})
    assert keys.count(OUT_KEY) == 2 and len(keys) == len(set(keys)) + 1


def test_metadata(desc) -> None:
    assert desc["schema-version"] == "0.5"
    assert desc["tool-version"] == __version__
    # the Dockerfile's default VERSION tags the image bosh runs
    version_arg = re.search(r"^ARG VERSION=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert version_arg and version_arg.group(1) == __version__
    assert desc["container-image"] == {"type": "docker", "image": f"bids_facedecode:{__version__}"}
    assert {e["code"]: e["description"] for e in desc["error-codes"]} == \
        {c: m for c, m in EXIT_CODES.items() if c != 0}
    res = desc["suggested-resources"]
    assert res["cpu-cores"] >= 1 and res["ram"] > 0 and res["walltime-estimate"] > 0
    assert desc["tags"]["application-type"] == "bids-app"
    assert [o["path-template"] for o in desc["output-files"]] == [OUT_KEY]


def test_bids_app_spec_version(desc, tmp_path) -> None:
    """The BIDS Apps execution specification requires custom.BIDSAppSpecVersion (a string)."""
    from bids_facedecode.boutiques import BIDS_APP_SPEC_VERSION

    version = desc["custom"]["BIDSAppSpecVersion"]
    assert isinstance(version, str) and version == BIDS_APP_SPEC_VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d*)?", version), version
    # the committed-file check fails when the field is dropped
    stale = json.loads(DESCRIPTOR.read_text())
    del stale["custom"]["BIDSAppSpecVersion"]
    path = tmp_path / "boutiques.json"
    path.write_text(descriptor_json(stale))
    assert main([str(path), "--check"]) == 1


def test_declared_outputs_match_the_writers(desc) -> None:
    from bids_facedecode.bidsio.outputs import metrics_path

    patterns = {o["id"]: o["path-template"]
                for o in desc["custom"]["bids_facedecode:output-files"]}
    assert set(patterns) == {"dataset_description", "participant_metrics", "participant_report",
                             "group_metrics", "group_report"}
    out = Path("/o")
    written = metrics_path(out, "07", "faces", "vaegan")
    assert fnmatch.fnmatch(str(written), patterns["participant_metrics"].replace(OUT_KEY, str(out)))
    assert not fnmatch.fnmatch("/o/sub-07/sub-07_task-faces_desc-vaegan_metrics.tsv",
                               patterns["participant_metrics"].replace(OUT_KEY, "/o"))


@pytest.mark.slow
def test_declared_outputs_exist_after_a_run(desc, app_run) -> None:
    """Each declared derivative pattern matches a file of a real two-level run."""
    for out in desc["custom"]["bids_facedecode:output-files"]:
        rel = out["path-template"].replace(OUT_KEY + "/", "")
        assert list(app_run.glob(rel)), f"{rel}: declared but not written"


# -- generator behaviour on other parsers -----------------------------------------------------

def _bids_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy")
    p.add_argument("bids_dir", type=Path)
    p.add_argument("output_dir", type=Path)
    p.add_argument("analysis_level", choices=["participant", "group"])
    p.add_argument("--participant-label", nargs="+")
    p.add_argument("--session-label", nargs="+")
    return p


def test_unknown_argument_types_fail_loudly() -> None:
    def factory():
        p = _bids_parser()
        p.add_argument("--odd", type=lambda s: s)
        return p

    with pytest.raises(TypeError, match="odd"):
        build_descriptor(factory)


def test_mutually_exclusive_groups_and_fixed_nargs() -> None:
    def factory():
        p = _bids_parser()
        g = p.add_mutually_exclusive_group()
        g.add_argument("--fast", action="store_true")
        g.add_argument("--accurate", action="store_true")
        p.add_argument("--box", nargs=3, type=float)
        return p

    d = build_descriptor(factory)
    group = next(g for g in d["groups"] if set(g["members"]) == {"fast", "accurate"})
    assert group["mutually-exclusive"] is True and "one-is-required" not in group
    box = next(i for i in d["inputs"] if i["id"] == "box")
    assert (box["list"], box["min-list-entries"], box["max-list-entries"]) == (True, 3, 3)
    assert box["type"] == "Number" and box["integer"] is False


# -- (3) bosh validate --bids -------------------------------------------------------------------

def test_bosh_validate_bids() -> None:
    bosh = pytest.importorskip("boutiques.bosh").bosh
    bosh(["validate", "--bids", str(DESCRIPTOR)])


def test_bosh_validate_bids_rejects_a_broken_descriptor(desc, tmp_path) -> None:
    """Control: the validator call above can fail."""
    bosh = pytest.importorskip("boutiques.bosh").bosh
    from boutiques.validator import DescriptorValidationError

    bad = copy.deepcopy(desc)
    bad["command-line"] = bad["command-line"].replace(" [SESSION_LABEL]", "")
    bad["inputs"] = [i for i in bad["inputs"] if i["id"] != "session_label"]
    for g in bad["groups"]:
        g["members"] = [m for m in g["members"] if m != "session_label"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    bosh(["validate", str(path)])  # still a valid descriptor ...
    with pytest.raises(DescriptorValidationError):
        bosh(["validate", "--bids", str(path)])  # ... but not a BIDS-App one


# -- (4) bosh exec simulate -> a command line the parser accepts --------------------------------

def _simulate(invocation: Path) -> list[str]:
    """The app's argv from ``bosh exec simulate`` (the ``mkdir -p OUT;`` prefix checked, dropped)."""
    bosh = pytest.importorskip("boutiques.bosh").bosh
    cmd = bosh(["exec", "simulate", str(DESCRIPTOR), "-i", str(invocation)]).shell_command
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=";")
    lex.whitespace_split = True
    tokens = list(lex)
    semi = tokens.index(";")
    mkdir, app = tokens[:semi], tokens[semi + 1:]
    assert mkdir[:2] == ["mkdir", "-p"] and len(mkdir) == 3
    assert app[0] == "bids_facedecode" and app[2] == mkdir[2]
    return app[1:]


def _parse(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"build_parser() rejects the simulated command line: {shlex.join(argv)}")


def test_simulated_command_line_parses_to_the_invocation() -> None:
    inv = json.loads(INVOCATION.read_text())
    ns = _parse(_simulate(INVOCATION))
    # what a user would type by hand for the same run; omitted options keep parser defaults
    by_hand = [
        inv["bids_dir"], inv["output_dir"], "participant", "--participant-label", "01", "sub-02",
        "--session-label", "1", "-vv", "--task", "facesimagery",
        "--bids-filter-file", "/data/filters.json", "--skip-bids-validation",
        "--latent-space", "vaegan", "pca", "--latents", "pca=/data/latents/pca.tsv",
        "--latents", "vaegan=/data/latents/vaegan.npz", "--latent-model", "pca=/models/pca",
        "--stim-column", "Stimulus File", "--n-voxels", "500", "--high-pass", "0.01",
        "--device", "cuda", "--nprocs", "3", "--mem", "12.5", "-w", "/scratch/work", "--seed", "7",
    ]
    assert vars(ns) == vars(build_parser().parse_args(by_hand))
    assert ns.latents == [("pca", Path("/data/latents/pca.tsv")),
                          ("vaegan", Path("/data/latents/vaegan.npz"))]
    assert ns.verbosity == 2 and ns.output_dir == Path("/data/derivatives/face decode")


def _simulate_dict(invocation: dict, tmp_path: Path) -> list[str]:
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(invocation))
    return _simulate(path)


def test_simulated_group_level(tmp_path) -> None:
    argv = _simulate_dict({"bids_dir": "/data/bids", "output_dir": "/data/derivatives",
                           "analysis_level": "group", "verbosity": "-v"}, tmp_path)
    assert vars(_parse(argv)) == \
        vars(build_parser().parse_args(["/data/bids", "/data/derivatives", "group", "-v"]))


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="boutiques 0.5.33 substitutes only the first of two inputs "
                   "sharing a value-key ([OUTPUT_DIR]); XPASS means it was fixed upstream")
def test_simulated_existing_output_dir(tmp_path) -> None:
    argv = _simulate_dict({"bids_dir": "/data/bids", "output_dir_existing": "/data/derivatives",
                           "analysis_level": "group"}, tmp_path)
    assert argv[:3] == ["/data/bids", "/data/derivatives", "group"]
