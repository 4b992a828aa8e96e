"""The package's import graph: no circles, and imports point down the layers only.

Every ``import`` of every module under ``gpucoded/`` is read with :mod:`ast`, function-
level imports included (a lazy import is still a dependency); imports under
``if TYPE_CHECKING:`` are left out (annotations only, never executed). The layers are
those of ARCHITECTURE.md, lowest first (:data:`LAYERS`). A module not in the table
takes the layer of its package's entry; a new top-level module takes the highest layer
among the modules it imports (so it may be imported from there up, and an import of it
from lower down is reported as the upward import it is, through it). Add new modules to
:data:`LAYERS` to pin them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG_DIR = Path(__file__).resolve().parent.parent / "gpucoded"

#: (layer name, modules and packages in it), lowest layer first. Names are relative to
#: the package (``"codes"`` covers ``gpucoded.codes`` and every module in it; ``""`` is
#: ``gpucoded/__init__.py``, the public facade).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "formats",
        (
            "formats", "backend", "validate", "kernels", "errors", "gpu", "hostkernels",
            "progress", "ddarith",
        ),
    ),
    ("decode data", ("weights", "basis", "dualsolve", "defects", "points", "reference")),
    ("codes", ("codes", "mixed")),
    ("execution", ("executors", "stragglers", "integrity")),
    ("pipeline", ("api", "pipeline", "operators", "progressive", "guard", "")),
    ("studies", ("studies",)),
    ("command", ("cli", "demo", "__main__")),
]

#: top-level packages a library module must never import
FORBIDDEN = ("bench", "tests", "_faults", "_harness", "_util", "conftest")


@dataclass(frozen=True)
class Edge:
    """``src`` imports ``dst`` (module names relative to the package) at ``line``."""

    src: str
    dst: str
    line: int


def module_names(root: Path) -> dict[str, Path]:
    """Relative dotted name -> file, for every module and package under ``root``."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module (``""``: the package itself)."""
    parts = name.split(".") if name else []
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, pkg: str = "gpucoded") -> tuple[list[Edge], list[str]]:
    """Edges between the package's modules, and imports of forbidden top-level names."""
    modules = module_names(root)
    edges, forbidden = [], []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if name else []
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                absolute = [a.name for a in node.names]
            elif node.level == 0:
                absolute = [node.module or ""]
                if node.module == pkg or (node.module or "").startswith(pkg + "."):
                    absolute = [f"{node.module}.{a.name}" for a in node.names]
            else:
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join([*base, *([node.module] if node.module else [])])
                absolute = [
                    ".".join(filter(None, [pkg, mod, a.name])) for a in node.names
                ]  # resolved below to the module itself where a.name is an attribute
            for full in absolute:
                top = full.split(".")[0]
                if top in FORBIDDEN:
                    forbidden.append(f"{name or pkg}:{node.lineno} imports {full}")
                if top == pkg:
                    targets.append(_resolve(full[len(pkg) + 1 :], modules))
            for t in dict.fromkeys(targets):
                if t != name:
                    edges.append(Edge(name, t, node.lineno))
    return edges, forbidden


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    succ: dict[str, set[str]] = {}
    for e in edges:
        succ.setdefault(e.src, set()).add(e.dst)
        succ.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(succ[v]):
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

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str, edges: list[Edge], _seen: frozenset = frozenset()) -> int:
    """Index into :data:`LAYERS` of a module (see the module docstring for new ones)."""
    table = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
    if module in table:
        return table[module]
    parts = module.split(".")
    for k in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:k]) in table:
            return table[".".join(parts[:k])]
    deps = [e.dst for e in edges if e.src == module and e.dst not in _seen]
    return max((layer_of(d, edges, _seen | {module}) for d in deps), default=0)


def upward_imports(edges: list[Edge]) -> list[str]:
    """Imports from a lower layer to a higher one, as readable lines."""
    bad = []
    for e in edges:
        lo, hi = layer_of(e.src, edges), layer_of(e.dst, edges)
        if hi > lo:
            bad.append(
                f"gpucoded.{e.src} (layer {LAYERS[lo][0]!r}) imports gpucoded.{e.dst} "
                f"(layer {LAYERS[hi][0]!r}) at line {e.line}"
            )
    return bad


@pytest.fixture(scope="module")
def graph() -> list[Edge]:
    edges, forbidden = import_graph(PKG_DIR)
    assert not forbidden, "the library imports test or benchmark code:\n" + "\n".join(forbidden)
    return edges


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, "import circles (move the shared part into a lower module):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_imports_point_down_the_layers(graph):
    bad = upward_imports(graph)
    assert not bad, (
        "imports from a lower layer to a higher one (move the code down, or fix LAYERS "
        "in tests/test_layering.py if the module's place changed):\n" + "\n".join(bad)
    )


def test_research_code_is_a_leaf(graph):
    """Nothing below ``studies/`` imports it (only the command line that runs it)."""
    studies = layer_of("studies", graph)
    users = {
        e.src
        for e in graph
        if e.dst.split(".")[0] == "studies" and layer_of(e.src, graph) <= studies
        and e.src.split(".")[0] != "studies"
    }
    assert not users, f"core modules import the research code: {sorted(users)}"


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "gpucoded"
    for rel, text in files.items():
        f = pkg / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return pkg


def test_checker_finds_circles_lazy_and_upward_imports(tmp_path):
    """The checker itself: a function-level circle, an upward import through a new
    module, a TYPE_CHECKING import (ignored) and an import of the test helpers."""
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "points.py": "def f():\n    from .studies.autogamma import g\n",
            "formats.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from .api import x\n",
            "helper.py": "from .api import y\n",
            "backend.py": "from . import helper\nimport tests._util\n",
            "api.py": "import gpucoded.formats\n",
            "studies/__init__.py": "",
            "studies/autogamma.py": "from .. import points\nfrom ..codes import base\n",
            "codes/__init__.py": "",
            "codes/base.py": "from ..weights import w\n",
            "weights.py": "",
        },
    )
    edges, forbidden = import_graph(pkg)
    pairs = {(e.src, e.dst) for e in edges}
    assert ("points", "studies.autogamma") in pairs  # the lazy import counts
    assert ("formats", "api") not in pairs  # annotations only
    assert ("api", "formats") in pairs and ("codes.base", "weights") in pairs
    assert forbidden == ["backend:2 imports tests._util"]
    assert cycles(edges) == [["points", "studies.autogamma"]]
    bad = sorted(upward_imports(edges))
    assert len(bad) == 2, bad
    # helper.py is new: it takes api's layer, so backend -> helper is the upward import
    assert layer_of("helper", edges) == layer_of("api", edges)
    assert bad[0].startswith("gpucoded.backend (layer 'formats') imports gpucoded.helper")
    assert bad[1].startswith(
        "gpucoded.points (layer 'decode data') imports gpucoded.studies.autogamma"
    )


def test_module_map_matches_the_code(graph):
    """docs/MODULES.md lists every module once, with the layer this test gives it."""
    text = (PKG_DIR.parent / "docs" / "MODULES.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`gpucoded/"):
            rel = Path(cells[0].strip("`")).relative_to("gpucoded").with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            rows[".".join(parts)] = cells[1]
    names = set(module_names(PKG_DIR))
    missing, stale = sorted(names - set(rows)), sorted(set(rows) - names)
    assert not missing and not stale, f"docs/MODULES.md: add {missing}, remove {stale}"
    wrong = {
        n: (lay, LAYERS[layer_of(n, graph)][0])
        for n, lay in rows.items()
        if lay != LAYERS[layer_of(n, graph)][0]
    }
    assert not wrong, f"docs/MODULES.md layers differ (module: (doc, code)): {wrong}"
