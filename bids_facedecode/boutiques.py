"""The app's Boutiques descriptor (``boutiques.json``), built from the argument parser.

Every input is derived from :func:`bids_facedecode.cli.build_parser` by introspection, so the
descriptor follows the command line; only the metadata argparse cannot know (container image,
outputs, tags, resources) is kept here by hand. Regenerate after changing the parser::

    python -m bids_facedecode.boutiques boutiques.json

and check that the committed file is current with ``--check``. The descriptor follows the
BIDS-App conventions that ``bosh validate --bids`` enforces: the command line starts with
``mkdir -p [OUTPUT_DIR]; bids_facedecode [BIDS_DIR] [OUTPUT_DIR] [ANALYSIS_LEVEL]
[PARTICIPANT_LABEL] [SESSION_LABEL]``, the output directory is offered both as a name to create
(String) and as an existing folder (File), and the only ``output-files`` entry is the output
directory; the derivative files inside it are listed under ``custom``.

How argparse actions map to Boutiques inputs:

* positional -> required input without a flag; ``output_dir`` -> the String/File pair above;
* ``store_true`` / ``store_false`` / ``store_const`` -> Flag;
* ``count`` (``-v``) -> String choosing ``-v`` or ``-vv`` (Boutiques flags cannot repeat);
* ``nargs`` ``+``/``*``/N -> list; ``append`` -> list whose separator repeats the flag;
* ``type`` by its return annotation: ``int`` -> integer Number, ``float`` -> Number,
  :class:`pathlib.Path` -> File, ``str`` or a tuple (``SPACE=FILE``) -> String; a lower bound a
  custom type enforces (positive integers, positive numbers) becomes ``minimum``, an upper
  bound (probabilities, < 1) ``maximum``;
* ``choices`` -> ``value-choices``; a default -> ``default-value``, unless it depends on the
  machine (``--nprocs`` defaults to the number of cores) or means "not given" (None, [], False, 0);
* argument groups -> Boutiques groups; mutually exclusive groups -> mutually-exclusive groups.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from unittest import mock

from . import __version__
from .errors import EXIT_CODES, EXIT_SUCCESS

SCHEMA_VERSION = "0.5"
GENERATE_COMMAND = "python -m bids_facedecode.boutiques boutiques.json"
#: Positionals that the BIDS-App specification places right after the analysis level.
BIDS_LABEL_DESTS = ("participant_label", "session_label")
#: ``-v`` may be repeated this many times to any effect (``-vv`` is debug).
COUNT_LEVELS = 2

# ----------------------------------------------------------------------------------------------
# Hand-kept metadata: what the parser cannot tell.

DESCRIPTION = (
    "BIDS-App that decodes and reconstructs seen and imagined faces from fMRI after VanRullen & "
    "Reddy (2019, Communications Biology 2:193, doi:10.1038/s42003-019-0438-y): a GLM estimates "
    "the brain response to each dimension of a face model's latent space (VAE-GAN; PCA "
    "eigenfaces as baseline), the linear map is inverted on held-out faces and imagery trials, "
    "and the reconstructions are scored (pairwise identification, gender, imagery). The "
    "participant level writes BIDS derivatives and sub-<label>.html per participant; the group "
    "level reads only output_dir and writes group tables, statistics and group.html. "
    "Singularity/Apptainer: build a .sif from the Docker image and pass it with "
    "`bosh exec launch --imagepath`."
)

#: Files the app writes inside ``[OUTPUT_DIR]`` (``bosh validate --bids`` allows a single
#: ``output-files`` entry, the folder itself, so these go under ``custom``).
DERIVATIVES: tuple[dict[str, object], ...] = (
    {"id": "dataset_description", "name": "Derivative dataset description",
     "path-template": "[OUTPUT_DIR]/dataset_description.json", "analysis-level": ["participant", "group"],
     "description": "BIDS derivative dataset_description.json (GeneratedBy with version and container)"},
    {"id": "participant_metrics", "name": "Participant decoding metrics",
     "path-template": "[OUTPUT_DIR]/sub-*/sub-*_task-*_desc-*_metrics.json", "analysis-level": ["participant"],
     "description": "identification, gender and imagery metrics with p-values, one file per latent space"},
    {"id": "participant_report", "name": "Participant report",
     "path-template": "[OUTPUT_DIR]/sub-*.html", "analysis-level": ["participant"],
     "description": "self-contained HTML report of one participant"},
    {"id": "group_metrics", "name": "Group metrics table",
     "path-template": "[OUTPUT_DIR]/group/group_task-*_metrics.tsv", "analysis-level": ["group"],
     "description": "every participant's metrics in one tidy table"},
    {"id": "group_report", "name": "Group report",
     "path-template": "[OUTPUT_DIR]/group.html", "analysis-level": ["group"],
     "description": "self-contained HTML report of the group statistics"},
)

TAGS: dict[str, object] = {
    "domain": ["neuroimaging", "fmri", "bids", "decoding", "image-reconstruction"],
    "application-type": "bids-app",
    "method": ["glm", "linear-decoding", "vae-gan", "pca"],
    "gpu": "optional",
}


def container_image() -> dict[str, object]:
    """The Docker image the ``Dockerfile`` builds (``docker build -t bids_facedecode:<version>``)."""
    return {"type": "docker", "image": f"bids_facedecode:{__version__}"}


def suggested_resources() -> dict[str, object]:
    """One participant-level job, taken from the SLURM helper's defaults (``bids_facedecode-slurm``)."""
    from .hpc.cli import build_parser as build_slurm_parser

    d = build_slurm_parser().parse_args(["bids_dir", "output_dir", "--image", "x.sif"])
    h, m, s = (int(x) for x in d.time.split(":"))
    return {"cpu-cores": d.nprocs, "ram": d.mem, "walltime-estimate": 3600 * h + 60 * m + s}


def error_codes() -> list[dict[str, object]]:
    """The app's non-zero exit codes (:data:`bids_facedecode.errors.EXIT_CODES`)."""
    return [{"code": code, "description": meaning}
            for code, meaning in sorted(EXIT_CODES.items()) if code != EXIT_SUCCESS]


# ----------------------------------------------------------------------------------------------
# Parser introspection.

def value_key(dest: str) -> str:
    """The command-line placeholder of a parser destination: ``n_voxels`` -> ``[N_VOXELS]``."""
    return f"[{dest.upper()}]"


def run_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Parser actions that configure a run (``--help`` and ``--version`` only print and exit)."""
    return [a for a in parser._actions
            if not isinstance(a, argparse._HelpAction | argparse._VersionAction)]


def flag_of(action: argparse.Action) -> str:
    """The option string used in the descriptor: the first long one (``-w/--work-dir`` -> ``--work-dir``)."""
    longs = [s for s in action.option_strings if s.startswith("--")]
    return (longs or action.option_strings)[0]


def _return_type(conv: Callable) -> object:
    if isinstance(conv, type):
        return conv
    try:
        return typing.get_type_hints(conv).get("return")
    except (NameError, TypeError):  # unresolvable annotations: treated as unknown below
        return None


def value_type(action: argparse.Action) -> tuple[str, bool]:
    """Boutiques type of a value-taking action and whether it is an integer.

    Raises
    ------
    TypeError
        The action's ``type`` returns something this module does not know how to describe.
    """
    conv = action.type
    if conv is None:
        return "String", False
    ret = _return_type(conv)
    if ret is bool:
        raise TypeError(f"{flag_of(action) if action.option_strings else action.dest}: boolean "
                        "values are not supported; use action='store_true'")
    if ret is int:
        return "Number", True
    if ret is float:
        return "Number", False
    if isinstance(ret, type) and issubclass(ret, PurePath):
        return "File", False
    if ret is str or typing.get_origin(ret) is tuple:  # a compound value written as text
        return "String", False
    raise TypeError(f"{action.dest}: cannot describe argparse type {conv!r} (returns {ret!r}); "
                    "annotate its return type (int, float, Path, str) or extend "
                    "bids_facedecode.boutiques.value_type")


def _accepts(conv: Callable, text: str) -> bool:
    try:
        conv(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    return True


def lower_bound(conv: Callable, integer: bool) -> tuple[float, bool] | None:
    """``(minimum, exclusive)`` that a numeric argparse type enforces, found by probing it.

    Recognises the bounds command lines use: none, ``>= 0``, ``>= 1`` (integers) and ``> 0``.
    """
    if _accepts(conv, "-1"):
        return None
    if _accepts(conv, "0"):
        return 0, False
    if integer:
        return (1, False) if _accepts(conv, "1") else None
    return (0, True) if _accepts(conv, "1e-9") else None


def upper_bound(conv: Callable, integer: bool) -> tuple[float, bool] | None:
    """``(maximum, exclusive)`` that a numeric argparse type enforces: none or ``< 1``
    (probabilities), found by probing it."""
    if integer or _accepts(conv, "1.5"):
        return None
    if _accepts(conv, "1"):
        return 1, False
    return (1, True) if _accepts(conv, "0.999999") else None


def list_bounds(action: argparse.Action) -> tuple[bool, int | None, int | None]:
    """``(is_list, min_entries, max_entries)`` of an action."""
    if isinstance(action, argparse._AppendAction):
        if action.nargs is not None:
            raise TypeError(f"{flag_of(action)}: append with nargs cannot be described in Boutiques")
        return True, 1, None
    nargs = action.nargs
    if nargs is None:
        return False, None, None
    if nargs == argparse.ONE_OR_MORE:
        return True, 1, None
    if nargs == argparse.ZERO_OR_MORE:
        return True, None, None
    if isinstance(nargs, int) and not isinstance(nargs, bool):
        return True, nargs, nargs
    raise TypeError(f"{action.dest}: nargs={nargs!r} cannot be described in Boutiques")


def stable_defaults(parser_factory: Callable[[], argparse.ArgumentParser]) -> dict[str, object]:
    """Defaults that do not depend on the machine: the parser is built twice with different
    CPU counts; destinations whose default differs between the two are left out."""
    with mock.patch("os.cpu_count", return_value=1):
        one = {a.dest: a.default for a in parser_factory()._actions}
    with mock.patch("os.cpu_count", return_value=4096):
        many = {a.dest: a.default for a in parser_factory()._actions}
    return {dest: value for dest, value in one.items() if many.get(dest, object()) == value}


def _means_not_given(value: object) -> bool:
    """None, False or an empty list: the option is simply left out of the command line."""
    return value is None or value is False or (isinstance(value, list | tuple) and not value)


def _json_default(value: object) -> object:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_default(v) for v in value]
    return value


def _expanded_help(action: argparse.Action, prog: str, defaults: dict[str, object]) -> str:
    params = dict(vars(action), prog=prog)
    params["default"] = defaults.get(action.dest, "a machine-dependent value")
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return (action.help or "") % params


def _human_name(dest: str) -> str:
    words = ["BIDS" if w == "bids" else w for w in dest.split("_")]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def describe_action(action: argparse.Action, prog: str, defaults: dict[str, object]) -> dict:
    """The Boutiques input for one argparse action (``output_dir`` excepted, see module doc)."""
    inp: dict[str, object] = {
        "id": action.dest,
        "name": _human_name(action.dest),
        "description": _expanded_help(action, prog, defaults),
        "value-key": value_key(action.dest),
        "optional": not action.required,
    }
    if action.option_strings and isinstance(action, argparse._CountAction):
        short = [s for s in action.option_strings if len(s) == 2 and s[0] == "-" and s[1] != "-"]
        if short:
            letter = short[0][1]
            inp["value-choices"] = ["-" + letter * k for k in range(1, COUNT_LEVELS + 1)]
        else:
            inp["value-choices"] = [flag_of(action)]
        inp["type"] = "String"
        return _ordered(inp)
    if action.option_strings and action.nargs == 0:  # store_true/false/const
        inp["type"] = "Flag"
        inp["command-line-flag"] = flag_of(action)
        return _ordered(inp)
    btype, integer = value_type(action)
    inp["type"] = btype
    if action.option_strings:
        inp["command-line-flag"] = flag_of(action)
    if btype == "Number":
        inp["integer"] = integer
        bound = lower_bound(action.type, integer) if action.type is not None else None
        if bound is not None:
            inp["minimum"] = bound[0]
            if bound[1]:
                inp["exclusive-minimum"] = True
        top = upper_bound(action.type, integer) if action.type is not None else None
        if top is not None:
            inp["maximum"] = top[0]
            if top[1]:
                inp["exclusive-maximum"] = True
    is_list, lo, hi = list_bounds(action)
    if is_list:
        inp["list"] = True
        if lo is not None:
            inp["min-list-entries"] = lo
        if hi is not None:
            inp["max-list-entries"] = hi
        if isinstance(action, argparse._AppendAction):
            inp["list-separator"] = f" {flag_of(action)} "
    if action.choices is not None:
        inp["value-choices"] = list(action.choices)
    default = defaults.get(action.dest)
    if not _means_not_given(default):
        inp["default-value"] = _json_default(default)
    return _ordered(inp)


_KEY_ORDER = ("id", "name", "type", "description", "value-key", "command-line-flag", "optional",
              "list", "list-separator", "min-list-entries", "max-list-entries", "integer",
              "minimum", "exclusive-minimum", "maximum", "exclusive-maximum", "value-choices",
              "default-value")


def _ordered(inp: dict) -> dict:
    return {k: inp[k] for k in _KEY_ORDER if k in inp}


def _output_dir_inputs(action: argparse.Action, prog: str, defaults: dict[str, object]) -> list[dict]:
    """The BIDS-App pair for ``output_dir``: a folder name to create, or an existing folder."""
    base = describe_action(action, prog, defaults)
    if base["type"] not in ("String", "File"):
        raise TypeError("output_dir: expected a path argument")
    name = {**base, "id": "output_dir", "type": "String", "optional": True,
            "name": "Output directory",
            "description": base["description"] + " (created if missing)"}
    existing = {**base, "id": "output_dir_existing", "type": "File", "optional": True,
                "name": "Existing output directory",
                "description": base["description"] + "; an existing folder, e.g. the one holding "
                "the participant-level results for the group level (for platforms that stage "
                "folders, such as CBRAIN; with bosh exec give output_dir instead: boutiques "
                "0.5 substitutes only the first of two inputs that share a value-key)"}
    return [_ordered(name), _ordered(existing)]


def build_descriptor(
    parser_factory: Callable[[], argparse.ArgumentParser] | None = None,
) -> dict[str, object]:
    """The Boutiques descriptor of the app.

    Parameters
    ----------
    parser_factory : callable returning an ArgumentParser, optional
        Builds the parser to describe (default :func:`bids_facedecode.cli.build_parser`); it is
        called more than once, to tell machine-dependent defaults apart.

    Returns
    -------
    descriptor : dict
        JSON-serialisable Boutiques descriptor (schema 0.5, BIDS-App conventions).
    """
    if parser_factory is None:
        from .cli import build_parser as parser_factory
    parser = parser_factory()
    defaults = stable_defaults(parser_factory)
    actions = run_actions(parser)
    positionals = [a for a in actions if not a.option_strings]
    options = [a for a in actions if a.option_strings]
    ordered = positionals + [a for d in BIDS_LABEL_DESTS for a in options if a.dest == d] \
        + [a for a in options if a.dest not in BIDS_LABEL_DESTS]

    inputs: list[dict] = []
    for action in ordered:
        if action.dest == "output_dir" and not action.option_strings:
            inputs += _output_dir_inputs(action, parser.prog, defaults)
        else:
            inputs.append(describe_action(action, parser.prog, defaults))

    keys = list(dict.fromkeys(value_key(a.dest) for a in ordered))
    command = f"mkdir -p [OUTPUT_DIR]; {parser.prog} " + " ".join(keys)

    groups: list[dict] = []
    if any(i["id"] == "output_dir_existing" for i in inputs):
        groups.append({
            "id": "output_dir_choice", "name": "Output directory",
            "description": "Give the output directory either as a name (created if missing; "
                           "either level) or as an existing folder (group level, or a rerun).",
            "members": ["output_dir", "output_dir_existing"],
            "mutually-exclusive": True, "one-is-required": True,
        })
    run = set(map(id, actions))
    for group in parser._action_groups:
        if group in (parser._positionals, parser._optionals):
            continue
        members = [a.dest for a in group._group_actions if id(a) in run]
        if members:
            title = (group.title or "").split("(")[0].strip()
            groups.append({"id": _slug(title), "name": title[:1].upper() + title[1:],
                           "description": group.description or group.title or title,
                           "members": members})
    for k, group in enumerate(parser._mutually_exclusive_groups):
        members = [a.dest for a in group._group_actions if id(a) in run]
        groups.append({"id": f"exclusive_{k + 1}", "name": "Exclusive options",
                       "description": "At most one of " + ", ".join(
                           flag_of(a) for a in group._group_actions if id(a) in run),
                       "members": members, "mutually-exclusive": True,
                       **({"one-is-required": True} if group.required else {})})

    return {
        "name": parser.prog,
        "tool-version": __version__,
        "schema-version": SCHEMA_VERSION,
        "description": DESCRIPTION,
        "author": "bids_facedecode developers",
        "command-line": command,
        "container-image": container_image(),
        "inputs": inputs,
        "groups": groups,
        "output-files": [{
            "id": "derivatives", "name": "BIDS derivatives",
            "description": "The output directory: "
                           + "; ".join(f"{d['path-template']} ({d['description']})"
                                       for d in DERIVATIVES),
            "path-template": "[OUTPUT_DIR]", "optional": False,
        }],
        "error-codes": error_codes(),
        "suggested-resources": suggested_resources(),
        "tags": TAGS,
        "custom": {
            "bids_facedecode:generated-by": GENERATE_COMMAND,
            "bids_facedecode:output-files": [dict(d) for d in DERIVATIVES],
        },
    }


def descriptor_json(descriptor: dict[str, object]) -> str:
    """The descriptor as written to ``boutiques.json`` (2-space indent, final newline)."""
    return json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bids_facedecode.boutiques [PATH] [--check]``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m bids_facedecode.boutiques",
                                description="Write the app's Boutiques descriptor.")
    p.add_argument("path", nargs="?", type=Path, help="output file (default: standard output)")
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 if PATH differs from what would be written")
    args = p.parse_args(argv)
    text = descriptor_json(build_descriptor())
    if args.check:
        if args.path is None:
            p.error("--check needs PATH")
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else None
        if current != text:
            print(f"{args.path}: out of date with the parser; run: {GENERATE_COMMAND}",
                  file=sys.stderr)
            return 1
        return 0
    if args.path is None:
        sys.stdout.write(text)
    else:
        args.path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
