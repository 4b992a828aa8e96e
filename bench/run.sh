#!/usr/bin/env bash
# The benchmark suite in one command (see bench/__main__.py):
#
#   bash bench/run.sh            # full CPU suite, a few minutes on 2 cores:
#                                #   bench/results/cpu.json, BENCHMARKS.md, bench/img/*.png
#   bash bench/run.sh --quick    # seconds: tiny sizes, one round, report in a temp dir (CI)
#
# Other arguments are passed on (bench files, --out, --md, --img, --gpu-json, --notes,
# --native-blas). GPU-marked benchmarks skip without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m bench "$@"
