"""Precision studies: Figure 1, automatic γ, the ``advise`` tool, logistic regression.

Modules: :mod:`~gpucoded.studies.figure1` (true worst-case error over all failure
patterns, batched), :mod:`~gpucoded.studies.gamma_check` (the predicted error of
:mod:`gpucoded.codes.gamma` against measurement), :mod:`~gpucoded.studies.sweep` (the
batched worst case over answer subsets), :mod:`~gpucoded.studies.advise` (which code to use),
:mod:`~gpucoded.studies.logreg` and :mod:`~gpucoded.studies.mnist` (Tables I–II).
"""
