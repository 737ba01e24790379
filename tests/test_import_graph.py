"""The package's imports form a one-way graph (docs/ARCHITECTURE.md): no circle, no upward arrow.

Every ``import`` of every module is read with :mod:`ast`, those inside functions included (a
lazy import is still an arrow), relative imports resolved against the importing module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bids_facedecode

ROOT = Path(bids_facedecode.__file__).parent
PKG = "bids_facedecode"

#: The drivers and the layers above the BIDS primitives.
UPPER = ("workflow", "report", "participant", "group", "cli")
#: Modules of pure math (arrays in, arrays out): they know no BIDS, workflow or report.
MATH = ("design", "decode", "evaluate", "gender", "quality", "encoding", "encoding_ridge", "ridge",
        "selection", "reliability", "roi", "glm", "glmstats", "accumulate", "noise",
        "latents.base", "latents.pca", "latents.vaegan", "latents.vaegan_nets",
        "latents.vaegan_authors", "latents.arithmetic", "latents.tf_checkpoint")
#: (importers, forbidden): what each layer must not import (names below the package).
RULES = (
    (("bidsio",), UPPER),
    (MATH, ("bidsio", "workflow", "report", "participant", "group", "cli")),
    (("report",), ("workflow", "participant", "group", "cli")),
)


def module_names(root: Path, package: str) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module under ``root`` (packages by ``__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path
    return out


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules that module ``name`` (file ``path``) imports, anywhere in its body."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        # the longest package module the dotted name starts with
        parts = target.split(".")
        for k in range(len(parts), 0, -1):
            candidate = ".".join(parts[:k])
            if candidate in modules:
                return candidate
        return None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # ``from pkg import sub`` imports the module pkg.sub when there is one
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix
                       for a in node.names]
        else:
            continue
        for t in targets:
            mod = resolve(t)
            if mod is not None and mod != name:
                found.add(mod)
    return found


def import_graph(root: Path = ROOT, package: str = PKG) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package."""
    mods = module_names(root, package)
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth: the package's import depth (small)
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _under(name: str, prefixes, package: str) -> bool:
    return any(name == f"{package}.{p}" or name.startswith(f"{package}.{p}.") for p in prefixes)


def upward_imports(graph: dict[str, set[str]], package: str = PKG) -> list[tuple[str, str]]:
    """``(importer, imported)`` pairs that break a layer rule of :data:`RULES`."""
    bad = []
    for importer, imported in sorted((a, b) for a, bs in graph.items() for b in bs):
        for layer, forbidden in RULES:
            if _under(importer, layer, package) and _under(imported, forbidden, package):
                bad.append((importer, imported))
    return bad


def test_the_package_has_no_import_circle():
    assert circles(import_graph()) == []


def test_no_layer_imports_upward():
    assert upward_imports(import_graph()) == []


def test_the_checker_finds_a_planted_circle_and_an_upward_import(tmp_path):
    """A fake package: a circle closed by an import inside a function, relative imports of
    both kinds, and a BIDS module that imports the report."""
    pkg = tmp_path / "fake"
    (pkg / "bidsio").mkdir(parents=True)
    (pkg / "report").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bidsio" / "__init__.py").write_text("")
    (pkg / "report" / "__init__.py").write_text("from ..bidsio import outputs\n")
    (pkg / "bidsio" / "outputs.py").write_text("import json\n\ndef f():\n    from . import layout\n")
    (pkg / "bidsio" / "layout.py").write_text("from .outputs import f\n")
    (pkg / "bidsio" / "writer.py").write_text("from ..report import figures\n")
    (pkg / "report" / "figures.py").write_text("from fake.bidsio.layout import f\n")
    graph = import_graph(pkg, "fake")
    assert graph["fake.bidsio.outputs"] == {"fake.bidsio.layout"}  # found inside the function
    assert graph["fake.report"] == {"fake.bidsio.outputs"}
    assert circles(graph) == [["fake.bidsio.layout", "fake.bidsio.outputs"]]
    assert upward_imports(graph, "fake") == [("fake.bidsio.writer", "fake.report.figures")]
    # and without the planted arrows the checker is quiet
    (pkg / "bidsio" / "outputs.py").write_text("import json\n")
    (pkg / "bidsio" / "writer.py").write_text("from .layout import f\n")
    graph = import_graph(pkg, "fake")
    assert circles(graph) == [] and upward_imports(graph, "fake") == []
