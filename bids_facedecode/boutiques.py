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
directory; the derivative files inside it are listed under ``custom``, beside
``BIDSAppSpecVersion``, the version of the BIDS Apps execution specification the app follows.
The inputs themselves are described by :mod:`bids_facedecode.boutiques_inputs`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .boutiques_inputs import (
    describe_action,
    flag_of,
    output_dir_inputs,
    run_actions,
    slug,
    stable_defaults,
    value_key,
)
from .errors import EXIT_CODES, EXIT_SUCCESS

SCHEMA_VERSION = "0.5"
#: The BIDS Apps execution specification's version (the change log of bids-standard/execution-spec,
#: published under standards/execution on the BIDS website): the descriptor's
#: ``custom.BIDSAppSpecVersion``, which that specification requires.
BIDS_APP_SPEC_VERSION = "0.1.0.dev"
GENERATE_COMMAND = "python -m bids_facedecode.boutiques boutiques.json"
#: Positionals that the BIDS-App specification places right after the analysis level.
BIDS_LABEL_DESTS = ("participant_label", "session_label")

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
            inputs += output_dir_inputs(action, parser.prog, defaults)
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
            groups.append({"id": slug(title), "name": title[:1].upper() + title[1:],
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
            "BIDSAppSpecVersion": BIDS_APP_SPEC_VERSION,
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
