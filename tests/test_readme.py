"""README's ```python blocks run as written: extracted and executed, every warning an
error (a README example that warns or fails is a broken promise to its first reader)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The contents of the ```python fenced blocks of a Markdown text, in order."""
    return BLOCK.findall(text)


def test_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.parametrize("i", range(len(BLOCKS)), ids=lambda i: f"block{i}")
def test_readme_python_block_runs(i):
    ns: dict = {"__name__": f"readme_block_{i}"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(BLOCKS[i], f"README.md block {i}", "exec"), ns)


def test_readme_has_python_examples():
    assert BLOCKS, "README.md has no ```python block"
