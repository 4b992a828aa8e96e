// Straggler injection kernels, launched on a worker's stream before its GEMM.
// Single-thread kernels: they occupy one SM slot and leave the rest of the
// device to the other workers.
#include "common.cuh"

// Spin for `ns` nanoseconds of wall-clock time (GPU global timer).
__global__ void gc_delay(long long ns) {
    const long long start = gc::now_ns();
    while (gc::now_ns() - start < ns) {
    }
}

// A worker that "never completes": spin until *flag != 0 (the executor sets it
// when it shuts down), or until `max_ns` nanoseconds have passed, a safety cap
// so that a stream can always drain.
__global__ void gc_wait_flag(const volatile int* flag, long long max_ns) {
    const long long start = gc::now_ns();
    while (*flag == 0 && gc::now_ns() - start < max_ns) {
    }
}
