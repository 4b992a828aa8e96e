"""The Examples sections of the documented entry points run as doctests, with every
warning an error: an example that starts to warn (or prints something else) fails."""

from __future__ import annotations

import doctest
import inspect
import warnings

import pytest

import gpucoded
from gpucoded import operators, progressive
from gpucoded.studies import advise, cli, plotting

EXAMPLES = [
    gpucoded.coded_matmul,
    operators.CodedMatrix,
    progressive.progressive_matmul,
    advise.advise,
    cli.count,
    plotting.error_label,
]


@pytest.mark.parametrize("obj", EXAMPLES, ids=lambda o: o.__qualname__)
def test_examples_run(obj):
    finder = doctest.DocTestFinder(recurse=False)
    module = inspect.getmodule(obj)  # examples see their module's names, as in the docs
    (test,) = finder.find(obj, obj.__qualname__, globs=dict(vars(module)))
    assert test.examples, f"{obj.__qualname__} has no Examples section"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted == len(test.examples)
