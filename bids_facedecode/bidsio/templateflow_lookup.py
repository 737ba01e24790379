"""TemplateFlow names for atlases and templates, resolved offline from ``TEMPLATEFLOW_HOME``.

NiPreps apps name templates the TemplateFlow way; so does ``--roi-atlas``, in either of two
spellings of one query:

* a spec ``TEMPLATE:atlas-ATLAS[:desc-DESC][:res-RES][:cohort-N]``, the form of fMRIPrep's
  ``--output-spaces`` (``MNI152NLin2009cAsym:res-2``), e.g.
  ``MNI152NLin2009cAsym:atlas-Schaefer2018:desc-100Parcels7Networks:res-2``;
* a TemplateFlow file name, e.g.
  ``tpl-MNI152NLin2009cAsym_res-02_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.nii.gz``.

Files are looked up in the TemplateFlow home (``$TEMPLATEFLOW_HOME``, else TemplateFlow's default
``~/.cache/templateflow``) with ``templateflow``'s client and nothing is ever downloaded: the home
must already hold the files (pre-fetched, or baked into a container). TemplateFlow fills a new
home with a skeleton of empty placeholder files that it downloads on first use; an empty
placeholder therefore counts as missing here, and an empty or missing home is never populated, so
a lookup writes nothing and opens no connection.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import NoInputError, UsageError

LOG = logging.getLogger(__name__)

#: Spec keys (``key-value``) and the TemplateFlow query entity each one sets.
ATLAS_ENTITIES = {"atlas": "atlas", "desc": "desc", "res": "resolution", "cohort": "cohort"}
#: Entities whose values are integers (``res-02`` is resolution 2).
INTEGER_ENTITIES = ("resolution", "cohort")
#: The resolution (TemplateFlow index, 2 mm for the MNI templates) preferred for report backgrounds.
REPORT_RESOLUTION = 2
SPEC_FORM = "TEMPLATE:atlas-ATLAS[:desc-DESC][:res-RES]"
FILE_FORM = "tpl-TEMPLATE[_res-RES]_atlas-ATLAS[_desc-DESC]_dseg.nii.gz"

_LABEL = r"[A-Za-z0-9]+"
_FILE_NAME = re.compile(rf"tpl-(?P<template>{_LABEL})(?P<entities>(?:_[a-z]+-{_LABEL})*)"
                        r"_dseg(?:\.nii(?:\.gz)?)?")


@dataclass(frozen=True)
class TemplateQuery:
    """One TemplateFlow query: a template and entity filters (``atlas``, ``desc``, ...)."""

    template: str
    entities: tuple[tuple[str, str | int], ...]

    def describe(self) -> str:
        """The query as TemplateFlow file-name entities, e.g. ``tpl-X atlas-Y res-2``."""
        keys = {v: k for k, v in ATLAS_ENTITIES.items()}
        return " ".join([f"tpl-{self.template}",
                         *(f"{keys.get(k, k)}-{v}" for k, v in self.entities if v is not None)])


def looks_like_templateflow(text: str) -> bool:
    """Whether a ``--roi-atlas`` value is meant as a TemplateFlow name rather than a path."""
    return "/" not in text and (text.startswith("tpl-") or ":" in text)


def _entity(key: str, value: str, text: str) -> tuple[str, str | int]:
    if key not in ATLAS_ENTITIES:
        raise UsageError(f"--roi-atlas {text}: unknown TemplateFlow entity '{key}-' (use "
                         f"{', '.join(k + '-' for k in ATLAS_ENTITIES)})")
    name = ATLAS_ENTITIES[key]
    if name in INTEGER_ENTITIES:
        if not value.isdigit():
            raise UsageError(f"--roi-atlas {text}: {key}-{value} must be a number")
        return name, int(value)
    return name, value


def parse_atlas_name(text: str) -> TemplateQuery:
    """The TemplateFlow query of a ``--roi-atlas`` spec or file name.

    Raises
    ------
    UsageError
        When the text is neither form, or names no atlas.
    """
    text = text.strip()
    pairs: list[tuple[str, str]] = []
    match = _FILE_NAME.fullmatch(text)
    if match:
        template = match["template"]
        pairs = [tuple(p.split("-", 1)) for p in match["entities"].split("_")[1:]]
    elif text.startswith("tpl-"):
        raise UsageError(f"--roi-atlas {text}: not a TemplateFlow atlas file name ({FILE_FORM})")
    else:
        template, *items = text.split(":")
        if not re.fullmatch(_LABEL, template) or not all(
                re.fullmatch(rf"[a-z]+-{_LABEL}", item) for item in items):
            raise UsageError(f"--roi-atlas {text}: not a TemplateFlow spec ({SPEC_FORM})")
        pairs = [tuple(item.split("-", 1)) for item in items]
    entities = [_entity(k, v, text) for k, v in pairs]
    if len({k for k, _ in entities}) != len(entities):
        raise UsageError(f"--roi-atlas {text}: an entity is given twice")
    if "atlas" not in dict(entities):
        raise UsageError(f"--roi-atlas {text}: name the atlas ({SPEC_FORM})")
    return TemplateQuery(template, tuple(entities))


def templateflow_home() -> Path:
    """TemplateFlow's home: ``$TEMPLATEFLOW_HOME``, else its default cache folder."""
    home = os.environ.get("TEMPLATEFLOW_HOME")
    if not home:
        from platformdirs import user_cache_dir  # what TemplateFlow itself uses

        home = user_cache_dir("templateflow")
    return Path(home).expanduser().absolute()


def _where(home: Path) -> str:
    how = "TEMPLATEFLOW_HOME" if os.environ.get("TEMPLATEFLOW_HOME") else \
        "TemplateFlow's default home; set TEMPLATEFLOW_HOME"
    return f"{home} ({how})"


@functools.lru_cache(maxsize=4)
def _client(home: Path):
    """A TemplateFlow client of ``home`` that neither updates nor downloads.

    ``home`` must be a non-empty folder: TemplateFlow populates an empty one on first use.
    """
    # Importing templateflow sets up a module-level home from the environment and populates
    # it when empty: point it at this (non-empty) home while importing, and turn updates off.
    saved = os.environ.get("TEMPLATEFLOW_HOME")
    os.environ["TEMPLATEFLOW_HOME"] = str(home)
    os.environ.setdefault("TEMPLATEFLOW_AUTOUPDATE", "0")
    try:
        from templateflow.client import TemplateFlowClient
    finally:
        if saved is None:
            del os.environ["TEMPLATEFLOW_HOME"]
        else:
            os.environ["TEMPLATEFLOW_HOME"] = saved
    return TemplateFlowClient(root=home, autoupdate=False, use_datalad=False)


def _has_files(home: Path) -> bool:
    return home.is_dir() and any(home.iterdir())


def _fetched(path: Path) -> bool:
    """A file with content: not a missing annex link, not an empty TemplateFlow placeholder."""
    return path.is_file() and path.stat().st_size > 0


def get_local(query: TemplateQuery, suffix: str, extension: str,
              home: Path | None = None) -> Path:
    """The one local file of a query, fetched with ``templateflow``'s ``get`` (never downloading).

    Parameters
    ----------
    query : TemplateQuery
    suffix, extension : str
        e.g. ``"dseg"`` and ``".nii.gz"``.
    home : Path, optional
        The TemplateFlow home (default :func:`templateflow_home`).

    Returns
    -------
    Path

    Raises
    ------
    NoInputError
        No such file in the home, or only an empty placeholder of it (not pre-fetched).
    UsageError
        The query matches several files (add ``desc-`` or ``res-``).
    """
    home = templateflow_home() if home is None else home
    what = f"{query.describe()} {suffix}{extension}"
    if not _has_files(home):
        raise NoInputError(f"TemplateFlow: {what} not found: the TemplateFlow home "
                           f"{_where(home)} is missing or empty; pre-fetch the files into it "
                           "(docs/container.md)")
    client = _client(home)
    kwargs = {**dict(query.entities), "suffix": suffix, "extension": extension}
    found = client.ls(query.template, **kwargs)
    if len(found) > 1:
        names = ", ".join(sorted(p.name for p in found)[:4]) + (", ..." if len(found) > 4 else "")
        raise UsageError(f"TemplateFlow: {what} matches {len(found)} files in {home} ({names}); "
                         "add desc- or res- to choose one")
    if not found:
        raise NoInputError(f"TemplateFlow: {what} not found in {_where(home)}; pre-fetch it "
                           "(docs/container.md)")
    if not _fetched(found[0]):
        raise NoInputError(f"TemplateFlow: {found[0]} is an empty placeholder (not downloaded) in "
                           f"{_where(home)}; pre-fetch it (docs/container.md)")
    return Path(client.get(query.template, **kwargs))


def resolve_atlas(text: str, home: Path | None = None) -> tuple[Path, Path]:
    """The atlas image and labels table that a TemplateFlow ``--roi-atlas`` name means.

    The labels are TemplateFlow's ``_dseg.tsv`` of the same template, atlas and ``desc``
    (TemplateFlow keeps one table for all resolutions).

    Returns
    -------
    image, labels : Path, Path
    """
    query = parse_atlas_name(text)
    try:
        image = get_local(query, "dseg", ".nii.gz", home)
        table = TemplateQuery(query.template, tuple(
            (k, v) for k, v in query.entities if k != "resolution"))
        if "desc" not in dict(table.entities):  # the image's own desc, or none
            found = re.search(rf"_desc-({_LABEL})_", image.name)
            table = TemplateQuery(table.template,
                                  (*table.entities, ("desc", found.group(1) if found else None)))
        return image, get_local(table, "dseg", ".tsv", home)
    except (NoInputError, UsageError) as exc:
        raise type(exc)(f"--roi-atlas {text}: {exc}") from None


def template_image(template: str, resolution: int = REPORT_RESOLUTION,
                   home: Path | None = None) -> Path | None:
    """A template's T1w image (no ``desc``) from the local TemplateFlow home, or None.

    The resolution closest to ``resolution`` among the fetched files is taken. None when the home,
    the template or a fetched T1w image is missing, so that callers fall back on another image.
    """
    home = templateflow_home() if home is None else home
    folder = home / f"tpl-{template}"
    if not re.fullmatch(_LABEL, template) or not folder.is_dir():
        return None
    if not any(_fetched(p) for p in folder.rglob(f"tpl-{template}*_T1w.nii.gz")):
        return None  # e.g. TemplateFlow's skeleton: no need to index the home
    try:
        client = _client(home)
        found = [p for p in client.ls(template, suffix="T1w", desc=None, extension=".nii.gz")
                 if _fetched(p)]
    except Exception as exc:  # a broken or unreadable home: the caller's fallback applies
        LOG.warning("TemplateFlow home %s: %s", home, exc)
        return None
    if not found:
        return None

    def res_of(path: Path) -> int:
        m = re.search(r"_res-0*(\d+)_", path.name)
        return int(m.group(1)) if m else resolution

    best = min(found, key=lambda p: (abs(res_of(p) - resolution), p.name))
    got = client.get(template, suffix="T1w", desc=None, extension=".nii.gz",
                     **({"resolution": res_of(best)} if "_res-" in best.name else {}))
    return got if isinstance(got, Path) else best  # several cohorts: the closest one found
