#!/usr/bin/env bash
# One-shot GPU check of gpucoded (about 6.5 minutes at most on one H100/H200).
#
#   bash bench/device_check.sh                  # on the device machine, repository root
#   bash bench/device_check.sh --dry-run        # anywhere: every step on the simulated
#                                               # device (tests/_harness/cudasim.py); CI
#   bash bench/device_check.sh --prepare-wheels # with network, before carrying the tree:
#                                               # downloads the wheels the device lacks
#
# Steps: install the project offline (its missing dependencies from carried wheels in
# ./.whl, then the project itself with no build isolation and no index, into /tmp/site),
# GPU info, fatbin (cmake + nvcc), the GPU and kernel tests, the other gpu-marked tests,
# the benchmarks, ending with ONE summary table (encode/decode GB/s vs a device copy in
# the same run; end-to-end coded_matmul vs the sum of the worker GEMMs and vs one A@B).
# With $OUT set, writes there: device_check.log, steps.tsv (each step's seconds against
# its budget), bench_gpu.json, bench_gpu.csv, summary.md, env.txt.
#
# Budgets (seconds, `timeout` per step). Device: from the cold-cache times the GPU issue
# reports for this script (NVRTC of every instantiation about 11 s and the g++ emulation
# build about 4 s inside the test step; fatbin build within 60 s) and the benchmark's
# case count (about 1.2 s warm-up and timing per kernel case, 2.5 s per end-to-end case:
# 32 + 12 cases), each with about 1.5-2x margin. Dry run: measured with a cold emulation
# cache (GPUCODED_EMU_CACHE empty) on a loaded 2-core machine: install 5 s, tests 36 s,
# benchmarks 4 s, 46 s in all; budgets 20/60/15 s (tests: the emulation build and 1,000
# calls of test_no_device_memory_growth vary most with load).
# steps.tsv records every step's time, so the next run's budgets come from measurements.
set -u -o pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-device}
STEP_FN=
case "${1:-}" in
  --dry-run) MODE=dry ;;
  --prepare-wheels) MODE=wheels ;;
  --step) STEP_FN=$2 ;;  # internal: one step's function, run under `timeout`
  "") ;;
  *) echo "usage: $0 [--dry-run | --prepare-wheels]" >&2; exit 2 ;;
esac
export MODE
PY=${PYTHON:-python3}

# The wheels the device image lacks (it has numpy, mpmath, threadpoolctl, tqdm, pytest,
# pytest-benchmark, hypothesis, CuPy, CMake): python-flint (a dependency), and setuptools
# and wheel to build the project without build isolation. One command, run here:
WHEELS="python-flint==0.8.0 setuptools==80.9.0 wheel==0.45.1"
if [ "$MODE" = wheels ]; then
  EXCL=$(git rev-parse --git-path info/exclude)  # a worktree's .git is a file
  mkdir -p "$(dirname "$EXCL")"
  grep -qx '/.whl/' "$EXCL" 2>/dev/null || echo /.whl/ >> "$EXCL"
  exec $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
fi

if [ "$MODE" = dry ]; then
  B_INSTALL=20 B_GPU=5 B_FATBIN=5 B_TESTS=60 B_OTHER=5 B_BENCH=15
else
  B_INSTALL=30 B_GPU=15 B_FATBIN=75 B_TESTS=90 B_OTHER=30 B_BENCH=150
fi
OUT="${OUT:-}"
LOG=/dev/null
STEPS=/dev/null
if [ -n "$OUT" ] && [ -z "$STEP_FN" ]; then
  mkdir -p "$OUT"; LOG="$OUT/device_check.log"; STEPS="$OUT/steps.tsv"
  printf 'step\tseconds\tbudget\trc\n' > "$STEPS"
fi
if [ -z "$STEP_FN" ]; then
  SITE=$(mktemp -d /tmp/gpucoded-site.XXXX)
  export SITE PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
fi
status=0

# step NAME BUDGET OK_RCS CMD...: run CMD under `timeout BUDGET`, record its time
step() {
  local name=$1 budget=$2 ok=$3; shift 3
  echo; echo "=== $name (budget ${budget}s, $(date -u +%H:%M:%S))"
  local t0=$SECONDS
  timeout "$budget" "$@"
  local rc=$?
  local dt=$((SECONDS - t0))
  printf '%s\t%s\t%s\t%s\n' "$name" "$dt" "$budget" "$rc" >> "$STEPS"
  echo "--- $name: ${dt}s of ${budget}s, rc $rc"
  case " $ok " in *" $rc "*) ;; *) status=1 ;; esac
}

install() {
  local whl=()
  if [ "$MODE" = dry ]; then
    # here: the pure-Python wheels only (the others are built for the device's CPython
    # 3.12); without carried ones, the build backend's wheels are fetched for this Python
    whl=(.whl/*-none-any.whl)
    if [ ! -e "${whl[0]}" ]; then
      mkdir -p "$SITE/.whl"
      $PY -m pip download -q --no-deps --only-binary=:all: -d "$SITE/.whl" \
        setuptools==80.9.0 wheel==0.45.1 || return 1
      whl=("$SITE"/.whl/*.whl)
    fi
  elif ls .whl/*.whl >/dev/null 2>&1; then
    whl=(.whl/*.whl)
  fi
  if [ ${#whl[@]} -gt 0 ]; then
    echo "wheels: ${whl[*]##*/}"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "${whl[@]}" || return 1
  else
    echo "no .whl directory: the image's packages only"
  fi
  # the project itself, offline: no index, no build isolation (the build backend comes
  # from the environment or the carried wheels)
  $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --no-cache-dir --target "$SITE" . || return 1
  (cd /tmp && PYTHONPATH="$SITE" $PY -c "import gpucoded, mpmath; print('installed', gpucoded.__file__)")
}

gpu_info() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
    --format=csv || return 1
  $PY - <<'PY' | tee ${OUT:+"$OUT/env.txt"}
import sys, numpy, mpmath
print("python", sys.version.split()[0], "numpy", numpy.__version__, "mpmath", mpmath.__version__)
import cupy as cp
p = cp.cuda.runtime.getDeviceProperties(0)
print("cupy", cp.__version__, "runtime", cp.cuda.runtime.runtimeGetVersion(),
      "device", p["name"], "cc", p["major"], p["minor"], "SMs", p["multiProcessorCount"])
PY
}

fatbin() {
  if command -v cmake >/dev/null && command -v nvcc >/dev/null; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build
  else
    echo "cmake or nvcc missing: NVRTC JIT only"
  fi
}

if [ -n "$STEP_FN" ]; then
  "$STEP_FN"
  exit $?
fi

{
echo "device check ($MODE), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
step install "$B_INSTALL" 0 bash "$0" --step install
if [ "$MODE" = dry ]; then
  export GPUCODED_GPUSIM_GPU_TESTS=1  # gpu-marked tests on the simulated device
  step "GPU (simulated: skipped)" "$B_GPU" 0 true
  step "fatbin (simulated: skipped)" "$B_FATBIN" 0 true
  step "GPU tests + kernel tests (simulated device)" "$B_TESTS" 0 \
    $PY -m pytest -q -p no:cacheprovider -m "gpu or not gpu" tests/test_gpu_executor.py \
    tests/test_gpu_helpers.py tests/test_gpu_kernels.py::test_encode_transposed_view \
    tests/test_gpu_kernels.py::test_delay_released_by_flag \
    tests/test_hygiene.py::test_no_device_memory_growth -rs
  step "other gpu-marked tests (simulated: in the CI suite)" "$B_OTHER" 0 true
  step "benchmarks (simulated device, n=64); the summary table comes last" "$B_BENCH" 0 \
    $PY tests/_harness/bench_on_sim.py --quick --sizes 64 ${OUT:+--out "$OUT"}
else
  step GPU "$B_GPU" 0 bash "$0" --step gpu_info
  step "fatbin (cmake + nvcc)" "$B_FATBIN" 0 bash "$0" --step fatbin
  step "GPU tests + kernel tests" "$B_TESTS" 0 \
    $PY -m pytest -q -p no:cacheprovider -m "gpu or not gpu" \
    tests/test_gpu_kernels.py tests/test_gpu_executor.py tests/test_gpu_helpers.py \
    tests/test_kernels_nvrtc.py tests/test_kernels_emu.py -rs
  step "other gpu-marked tests" "$B_OTHER" "0 5" \
    $PY -m pytest -q -p no:cacheprovider -m gpu tests \
    --ignore=tests/test_gpu_kernels.py --ignore=tests/test_gpu_executor.py -rs
  step "benchmarks (CUDA events); the summary table comes last" "$B_BENCH" 0 \
    $PY bench/bench_gpu.py ${OUT:+--out "$OUT"}
fi
echo; echo "=== done: status $status ($(date -u +%H:%M:%S))"
rm -rf "$SITE"
exit "$status"
} 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
