"""Boutiques inputs described from argparse actions, for :mod:`bids_facedecode.boutiques`.

How argparse actions map to Boutiques inputs:

* positional -> required input without a flag; ``output_dir`` -> a String/File pair (a name to
  create, or an existing folder: :func:`output_dir_inputs`);
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
import re
import typing
from collections.abc import Callable
from pathlib import PurePath
from unittest import mock

#: ``-v`` may be repeated this many times to any effect (``-vv`` is debug).
COUNT_LEVELS = 2


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


def slug(text: str) -> str:
    """An identifier of lower-case letters, digits and underscores (Boutiques group ids)."""
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


def output_dir_inputs(action: argparse.Action, prog: str, defaults: dict[str, object]) -> list[dict]:
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
