"""Run ``bench/bench_gpu.py`` on the simulated device (the device check's dry run).

    python tests/_harness/bench_on_sim.py --quick --sizes 64 [--out DIR]

Installs ``tests/_harness/cudasim.py`` as ``cupy`` and calls the benchmark's ``main``
with the given arguments: every case, the summary table and the JSON/CSV files are
produced as on a device; the numbers are the simulator's device-time model and mean
nothing about a GPU. The warm-up per case is cut to 0.05 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


class _Patch:
    """The two monkeypatch methods ``cudasim.install`` uses, without pytest."""

    def __init__(self) -> None:
        self.undo: list = []

    def setitem(self, d, k, v) -> None:
        self.undo.append((d, k, d.get(k, _Patch)))
        d[k] = v

    def setattr(self, obj, name, value, raising=True) -> None:  # pragma: no cover
        self.undo.append((obj.__dict__, name, getattr(obj, name, _Patch)))
        setattr(obj, name, value)


def main(argv: list[str]) -> int:
    from _harness import cudasim

    sim = cudasim.install(_Patch(), max_delay=0.0)
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_gpu

    bench_gpu.WARMUP_S = 0.05
    try:
        return bench_gpu.main(argv)
    finally:
        sim.teardown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
