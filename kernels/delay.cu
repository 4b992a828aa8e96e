// Straggler injection, launched on a worker's stream before its GEMM.
// Single-thread kernel: it occupies one SM slot and leaves the rest of the
// device to the other workers.
#include "common.cuh"

// Spin for `ns` nanoseconds of wall-clock time (GPU global timer), or until
// *flag != 0: the executor sets the flag when a run is cancelled, so every
// injected wait is cooperative. A worker that "never completes" is this kernel
// with `ns` = a safety cap (so that a stream can always drain).
__global__ void gc_delay(const volatile int* flag, long long ns) {
    const long long start = gc::now_ns();
    while (*flag == 0 && gc::now_ns() - start < ns) {
    }
}
