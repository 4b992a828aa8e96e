"""Benchmark suite of gpucoded (pytest-benchmark); ``python -m bench`` runs it."""
