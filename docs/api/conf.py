"""Sphinx configuration of the gpucoded API reference (docs/api).

Build: ``sphinx-build -W --keep-going -b html docs/api OUT`` (``pip install -e ".[docs]"``).
The pages are generated from the docstrings (autodoc + numpydoc); the command-line page
includes the ``--help`` text of every ``gpucoded`` command, written here at build time.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root: the package as checked out

import gpucoded  # noqa: E402
from gpucoded.cli import build_parser  # noqa: E402

project = "gpucoded"
author = "gpucoded contributors"
copyright = "gpucoded contributors"  # noqa: A001 (Sphinx's name)
release = gpucoded.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]

# numpydoc: the docstrings' sections; class members are listed by autodoc, not twice
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"

html_theme = "pydata_sphinx_theme"  # the theme of the NumPy and CuPy documentation
html_title = f"gpucoded {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
exclude_patterns = ["_build", "_generated"]


def _write_cli_help() -> None:
    """``_generated/<command>.txt``: the ``--help`` of ``gpucoded`` and each command."""
    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    parser = build_parser()
    texts = {"gpucoded": parser.format_help()}
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        texts[name] = p.format_help()
    for name, text in texts.items():
        path = out / f"{name}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


_write_cli_help()


# |S|, |J|, max |λ_w| in the docstrings' prose are set sizes and absolute values, not
# reStructuredText substitutions: escape the bars outside literals and roles.
_BARS = re.compile(r"(?<![\\\w|])\|([^|\s`][^|`]*?)\|(?![\w|])")
_LITERAL = re.compile(r"(``.*?``|:?[\w:]*`[^`]*`_?)")


def _escape_bars(app, what, name, obj, options, lines: list[str]) -> None:
    math_indent = None  # inside a ``.. math::`` block: LaTeX, left alone
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if math_indent is not None and (not line.strip() or indent > math_indent):
            continue
        math_indent = indent if line.lstrip().startswith(".. math::") else None
        if "|" not in line or line.lstrip().startswith(("..", "+", "|")):
            continue
        parts = _LITERAL.split(line)  # odd indices: literals and roles, left as they are
        parts[::2] = [_BARS.sub(r"\\|\1\\|", p) for p in parts[::2]]
        lines[i] = "".join(parts)


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _escape_bars)
