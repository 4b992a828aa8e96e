#!/usr/bin/env bash
# The benchmark suite in one command (see bench/__main__.py):
#
#   bash bench/run.sh            # full CPU suite, a few minutes on 2 cores:
#                                #   bench/results/cpu.json, BENCHMARKS.md, bench/img/*.png
#   bash bench/run.sh --quick    # seconds: tiny sizes, one round, report in a temp dir (CI)
#
# It first builds the compiled host encode/decode loops (gpucoded.hostops.build, a few
# seconds with g++, cached by source hash); without a compiler the NumPy path runs.
# Other arguments are passed on (bench files, --out, --md, --img, --gpu-json, --notes,
# --native-blas). GPU-marked benchmarks skip without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
# the compiled host encode/decode loops (gpucoded.hostops; NumPy if this fails)
"${PYTHON:-python3}" -c "from gpucoded import hostops; print('host loops:', hostops.build())" \
  || echo "host loops not built: encode/decode use NumPy" >&2
exec "${PYTHON:-python3}" -m bench "$@"
