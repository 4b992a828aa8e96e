"""Precision studies: Figure 1, automatic γ, the ``advise`` tool, logistic regression.

Modules: :mod:`~gpucoded.studies.figure1` (true worst-case error over all failure
patterns, batched), :mod:`~gpucoded.studies.autogamma` (predicted error and the
γ that minimises it), :mod:`~gpucoded.studies.advise` (which code to use),
:mod:`~gpucoded.studies.logreg` and :mod:`~gpucoded.studies.mnist` (Tables I–II).
"""
