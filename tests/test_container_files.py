"""Static checks of the container recipe and its CI scripts (no podman or Docker needed)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
CI_SCRIPTS = sorted((REPO / "ci").glob("*.sh"))


def _instructions() -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def _kv_pairs(text: str) -> dict[str, str]:
    """KEY=VALUE pairs of an ENV or LABEL instruction (shell-like quoting)."""
    return dict(item.split("=", 1) for item in shlex.split(text))


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions()


def _all(instructions, keyword: str) -> list[str]:
    return [rest for kw, rest in instructions if kw == keyword]


def test_base_image_is_a_pinned_python_311(instructions) -> None:
    args = {}
    for rest in _all(instructions, "ARG"):
        name, _, default = rest.partition("=")
        args[name] = default
    froms = _all(instructions, "FROM")
    assert len(froms) == 1
    base = froms[0]
    if base.startswith("${"):
        base = args[base.strip("${}")]
    assert re.fullmatch(r"(docker\.io/library/)?python:3\.11(\.\d+)?-slim(-bookworm)?", base), base


def test_entrypoint_is_the_app_console_script(instructions) -> None:
    tomllib = pytest.importorskip("tomllib")
    entry = _all(instructions, "ENTRYPOINT")
    assert len(entry) == 1
    assert json.loads(entry[0]) == ["bids_facedecode"]  # exec form
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "bids_facedecode" in scripts and "bids_facedecode-simulate" in scripts


def test_runs_as_non_root_user(instructions) -> None:
    users = [(i, rest) for i, (kw, rest) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER instruction: the image would run as root"
    last_index, user = users[-1]
    assert user.split(":")[0] not in {"root", "0"}
    runs_after = [i for i, (kw, _) in enumerate(instructions) if kw == "RUN" and i > last_index]
    assert not runs_after, "RUN after the final USER would run as the app user, not root"
    created = " ".join(_all(instructions, "RUN"))
    assert "useradd --uid 1000 --gid 1000" in created and user.split(":")[0] in created


def test_oci_labels_come_from_build_args(instructions) -> None:
    tomllib = pytest.importorskip("tomllib")
    labels: dict[str, str] = {}
    for rest in _all(instructions, "LABEL"):
        labels.update(_kv_pairs(rest))
    args = {rest.partition("=")[0] for rest in _all(instructions, "ARG")}
    expected = {
        "org.opencontainers.image.version": "VERSION",
        "org.opencontainers.image.revision": "VCS_REF",
        "org.opencontainers.image.source": "SOURCE_URL",
        "org.opencontainers.image.created": "BUILD_DATE",
    }
    for label, arg in expected.items():
        assert labels.get(label) == "${" + arg + "}", label
        assert arg in args
    assert labels["org.opencontainers.image.title"] == "bids_facedecode"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]["text"]
    # The default VERSION follows the package version.
    init = (REPO / "bids_facedecode" / "__init__.py").read_text()
    version = re.search(r'__version__ = "(.+)"', init).group(1)
    assert f"VERSION={version}" in _all(instructions, "ARG")


def test_torch_build_args_and_layer_order(instructions) -> None:
    keywords = [kw for kw, _ in instructions]
    args = {rest.partition("=")[0]: rest.partition("=")[2] for rest in _all(instructions, "ARG")}
    # Default: PyPI's torch (the CUDA build on Linux); the CPU build is a build argument away.
    assert args["TORCH_SPEC"].startswith("torch")
    assert "+cpu" not in args["TORCH_SPEC"]
    assert args["TORCH_INDEX_URL"] in ('""', "")
    assert args["TORCH_FIND_LINKS"] in ('""', "")
    runs = [(i, rest) for i, (kw, rest) in enumerate(instructions) if kw == "RUN"]
    torch_run = next(i for i, r in runs if '"$TORCH_SPEC"' in r)
    assert "$TORCH_INDEX_URL" in instructions[torch_run][1]
    assert "$TORCH_FIND_LINKS" in instructions[torch_run][1]
    copies = [(i, rest) for i, (kw, rest) in enumerate(instructions) if kw == "COPY"]
    deps_copy = next(i for i, r in copies if r.startswith("pyproject.toml"))
    src_copy = next(i for i, r in copies if r.split()[0] == ".")
    deps_run = next(i for i, r in runs if "requirements.txt" in r)
    install = next(i for i, r in runs if "--no-deps" in r and "/src" in r)
    assert torch_run < deps_copy < deps_run < src_copy < install, "dependencies before source"
    # Per-commit build args (VERSION, VCS_REF, BUILD_DATE) come after every RUN: a new commit
    # must not invalidate the dependency layers.
    last_run = max(i for i, _ in runs)
    version_arg = next(
        i for i, (kw, r) in enumerate(instructions) if kw == "ARG" and r.startswith("VCS_REF")
    )
    assert version_arg > last_run
    assert keywords.count("FROM") == 1


def test_dependency_extraction_snippet_reads_pyproject(tmp_path: Path) -> None:
    """Run the Dockerfile's own pyproject → requirements snippet against the real pyproject."""
    tomllib = pytest.importorskip("tomllib")
    run = next(r for kw, r in _instructions() if kw == "RUN" and "tomllib" in r)
    # The shell passes the double-quoted text verbatim (no $, backquote or backslash escapes).
    code = re.search(r'python -c "(.*?)"\s+>', run).group(1)
    code = code.replace("/src/pyproject.toml", str(REPO / "pyproject.toml"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = project["dependencies"] + project.get("optional-dependencies", {}).get("fast", [])
    assert proc.stdout.split("\n")[:-1] == expected


def test_runtime_environment_suits_read_only_and_any_uid(instructions) -> None:
    env: dict[str, str] = {}
    for rest in _all(instructions, "ENV"):
        env.update(_kv_pairs(rest))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[name].isdigit() and int(env[name]) >= 1
    # Writable things live in /tmp (a tmpfs under --read-only).
    for name in ("MPLCONFIGDIR", "XDG_CACHE_HOME"):
        assert env[name].startswith("/tmp/"), name
    assert env["TEMPLATEFLOW_HOME"].startswith("/opt/")
    assert env["TEMPLATEFLOW_AUTOUPDATE"] == "0"
    runs = " ".join(_all(instructions, "RUN"))
    assert "import templateflow.conf" in runs, "TemplateFlow home is not baked at build time"
    assert "go-w" in runs, "TemplateFlow home should be read-only"
    assert f"chmod 1777 {env['HOME']}" in runs, "HOME must be writable for an arbitrary UID"
    assert env["PATH"].startswith(env["VIRTUAL_ENV"] + "/bin")


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: ignore everything first"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {"pyproject.toml", "bids_facedecode"} <= allowed
    assert not allowed & {".git", ".venv", "work", "out", "tests"}
    # Every COPY source is in the context.
    for kw, rest in _instructions():
        if kw == "COPY":
            src = rest.split()[0]
            assert src == "." or src in allowed, src


def test_containers_conf_matches_the_checked_recipe() -> None:
    tomllib = pytest.importorskip("tomllib")
    conf = tomllib.loads((REPO / "ci" / "containers.conf").read_text())
    assert conf["engine"]["runtime"] == "runc"
    assert conf["engine"]["cgroup_manager"] == "cgroupfs"
    assert "nofile=1024:1024" in conf["containers"]["default_ulimits"]


@pytest.mark.parametrize("script", CI_SCRIPTS, ids=lambda p: p.name)
def test_ci_scripts_are_strict_and_parse(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


def test_smoke_script_runs_the_image_like_a_careful_user() -> None:
    text = (REPO / "ci" / "container-smoke.sh").read_text()
    run_line = re.search(r"podman run [^\n]*\\\n[^\n]*", text).group(0)
    for flag in ("--network=none", "--read-only", "--tmpfs /tmp", '-u "$RUN_UID:$RUN_GID"'):
        assert flag in run_line, flag
    assert "--pull=never" in text
    for level in ("participant", "group", "--version", "--help", "bids_facedecode-simulate"):
        assert level in text
