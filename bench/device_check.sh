#!/usr/bin/env bash
# One-shot GPU check of gpucoded (< 6 minutes on one H200).
#
#   bash bench/device_check.sh            # from the repository root
#
# Prints the GPU model, builds the fatbin (if nvcc and cmake exist), runs the
# GPU tests and the kernel tests, then the GPU benchmarks and ends with ONE summary
# table (encode/decode GB/s vs a device-to-device copy measured in the same run;
# end-to-end coded_matmul vs the sum of the worker GEMMs and vs one A@B for
# n in {4096, 8192}, fp32/fp64, m in {2,4,8}). The step timeouts add up to 5 min 20 s.
# With $OUT set, writes there: device_check.log, bench_gpu.json, bench_gpu.csv,
# summary.md, env.txt. (pytest-benchmark: `pytest bench/bench_gpu.py`, separately.)
#
# Needs no network: python3 with numpy, mpmath, cupy, pytest, pytest-benchmark
# (all in the H200 image). If mpmath or pytest-benchmark were missing, carry
# wheels in ./.whl (see /work/.library/device/README.md); they are installed
# from there into /tmp/site first.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-}"
LOG=/dev/null
if [ -n "$OUT" ]; then mkdir -p "$OUT"; LOG="$OUT/device_check.log"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

{
step "wheels"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
else
  echo "no .whl directory; using the image's packages"
fi

step "GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
  --format=csv || status=1
$PY - <<'PY' | tee ${OUT:+"$OUT/env.txt"}
import sys, numpy, mpmath
print("python", sys.version.split()[0], "numpy", numpy.__version__, "mpmath", mpmath.__version__)
try:
    import cupy as cp
    p = cp.cuda.runtime.getDeviceProperties(0)
    print("cupy", cp.__version__, "runtime", cp.cuda.runtime.runtimeGetVersion(),
          "device", p["name"], "cc", p["major"], p["minor"], "SMs", p["multiProcessorCount"])
except Exception as e:
    print("cupy unavailable:", e)
PY

step "fatbin (cmake + nvcc)"
if command -v cmake >/dev/null && command -v nvcc >/dev/null; then
  timeout 20 cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null \
    && timeout 60 cmake --build build || { echo "fatbin build failed"; status=1; }
else
  echo "cmake or nvcc missing: NVRTC JIT only"
fi

step "GPU tests + kernel tests"
timeout 70 $PY -m pytest -q -p no:cacheprovider -m "gpu or not gpu" \
  tests/test_gpu_kernels.py tests/test_gpu_executor.py tests/test_gpu_helpers.py \
  tests/test_kernels_nvrtc.py tests/test_kernels_emu.py -rs || status=1
step "other gpu-marked tests"
timeout 30 $PY -m pytest -q -p no:cacheprovider -m gpu tests \
  --ignore=tests/test_gpu_kernels.py --ignore=tests/test_gpu_executor.py -rs
rc=$?; if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then status=1; fi  # 5: none collected

step "benchmarks (CUDA events); the summary table comes last"
timeout 140 $PY bench/bench_gpu.py ${OUT:+--out "$OUT"} || status=1

echo; echo "=== done: status $status ($(date -u +%H:%M:%S))"
exit "$status"
} 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
