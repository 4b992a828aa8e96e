"""One command for the benchmark suite: run it, then write the report.

::

    python -m bench                 # full CPU suite (a few minutes on 2 cores),
                                    # -> bench/results/cpu.json, BENCHMARKS.md, bench/img/
    python -m bench --quick         # seconds: tiny sizes, one round; writes to a temp dir
    python -m bench bench/bench_core.py --md /tmp/B.md   # a subset, elsewhere

GPU numbers are added to the report when ``bench/results/gpu/bench_gpu.json`` exists
(copy it there from the ``$OUT`` of ``bench/device_check.sh``) or ``--gpu-json`` is
given. ``--native-blas`` drops ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` for the run
(they slow a current NumPy where they are set; the BLAS kernel used is recorded).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GPU_JSON = HERE / "results" / "gpu" / "bench_gpu.json"
#: Notes on the committed measurement (machine sharing, changes made), put in the report.
NOTES = HERE / "results" / "NOTES.md"


def pytest_command(files: Sequence[str], json_out: Path, quick: bool) -> list[str]:
    """The pytest-benchmark command line of the suite."""
    cmd = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider"]
    cmd += [f"--benchmark-json={json_out}", "--benchmark-columns=min,median,rounds"]
    cmd += ["--benchmark-sort=name"]
    if quick:
        cmd.append("--bench-quick")
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", default=[str(HERE)], help="bench files (default: all)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round (seconds)")
    ap.add_argument("--out", default=None, help="directory of the JSON (default bench/results)")
    ap.add_argument("--md", default=None, help="report (default BENCHMARKS.md)")
    ap.add_argument("--img", default=None, help="plot directory (default bench/img)")
    ap.add_argument("--gpu-json", nargs="*", default=None, help="bench_gpu.json files")
    ap.add_argument("--notes", default=None, help="Markdown inserted after the title")
    ap.add_argument("--native-blas", action="store_true", help="unset OPENBLAS_CORETYPE/L2")
    args = ap.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="gpucoded-bench-")) if args.quick else None
    out = Path(args.out) if args.out else (scratch or HERE / "results")
    md = (
        Path(args.md)
        if args.md
        else (scratch / "BENCHMARKS.md" if scratch else ROOT / "BENCHMARKS.md")
    )
    img = Path(args.img) if args.img else (scratch / "img" if scratch else HERE / "img")
    out.mkdir(parents=True, exist_ok=True)
    json_out = out / "cpu.json"

    env = dict(os.environ)
    if args.native_blas:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    cmd = pytest_command(args.files, json_out, args.quick)
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    if rc not in (0, 5):
        return rc
    if not json_out.exists():
        print("no benchmark JSON written", file=sys.stderr)
        return 1
    gpu = (
        args.gpu_json
        if args.gpu_json is not None
        else ([str(GPU_JSON)] if GPU_JSON.exists() else [])
    )

    def rel(p: str | Path) -> str:  # paths in the report relative to the repository
        p = Path(p).resolve()
        return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)

    os.chdir(ROOT)
    rargs = [rel(json_out), *map(rel, gpu), "--md", rel(md), "--img", rel(img)]
    notes = args.notes or (str(NOTES) if NOTES.exists() and not scratch else None)
    if notes:
        rargs += ["--notes", notes]
    return report.main(rargs)


if __name__ == "__main__":
    sys.exit(main())
