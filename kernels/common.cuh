// gpucoded kernels: shared device helpers.
//
// This header is the single source of truth for the layout arithmetic used by
// the fused encode and decode kernels. It is compiled three ways:
//   * by NVRTC at run time (kernels.py inlines it into encode.cu / decode.cu),
//   * by nvcc ahead of time (CMakeLists.txt -> fatbin for sm_80 and sm_90),
//   * by g++ on the CPU through kernels/emu/cuda_emu.h (tests/kernel_harness.py).
// It must therefore only use the subset of CUDA the emulation shim provides:
// no shared memory, no __syncthreads, no warp intrinsics.
#pragma once

namespace gc {

typedef long long i64;

// A fixed-width register vector; alignas lets nvcc emit 64/128-bit accesses.
template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
    T v[V];
};

// Accumulation type: float data accumulates in float, double in double.
template <typename T>
struct Acc {
    typedef T type;
};

// Load V consecutive elements starting at column `col` of a row of length
// `ncols`; elements at or past `ncols` read as zero (block padding).
// Precondition for the vector path: the address is V-aligned (host-checked).
template <typename T, int V>
__device__ __forceinline__ void load_row(const T* __restrict__ row, i64 col,
                                         i64 ncols, T (&out)[V]) {
    if (col + V <= ncols) {
        if (V == 1) {
            out[0] = row[col];
        } else {
            const Vec<T, V> x = *reinterpret_cast<const Vec<T, V>*>(row + col);
#pragma unroll
            for (int e = 0; e < V; ++e) out[e] = x.v[e];
        }
    } else {
#pragma unroll
        for (int e = 0; e < V; ++e) out[e] = (col + e < ncols) ? row[col + e] : T(0);
    }
}

// Store V consecutive elements at column `col` of a row of length `ncols`;
// elements at or past `ncols` are dropped (cropping of the padding).
template <typename T, int V>
__device__ __forceinline__ void store_row(T* __restrict__ row, i64 col, i64 ncols,
                                          const T (&in)[V]) {
    if (col + V <= ncols) {
        if (V == 1) {
            row[col] = in[0];
        } else {
            Vec<T, V> x;
#pragma unroll
            for (int e = 0; e < V; ++e) x.v[e] = in[e];
            *reinterpret_cast<Vec<T, V>*>(row + col) = x;
        }
    } else {
#pragma unroll
        for (int e = 0; e < V; ++e)
            if (col + e < ncols) row[col + e] = in[e];
    }
}

// Wall-clock nanoseconds from the GPU's global timer (coarse, but in real
// time units unlike clock64, whose rate follows the SM clock).
__device__ __forceinline__ i64 now_ns() {
#ifdef GPUCODED_EMU
    return gc_emu_now_ns();
#else
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return (i64)t;
#endif
}

// Grid-stride iteration helpers (64-bit safe).
__device__ __forceinline__ i64 global_thread() {
    return (i64)blockIdx.x * (i64)blockDim.x + (i64)threadIdx.x;
}
__device__ __forceinline__ i64 global_stride() {
    return (i64)gridDim.x * (i64)blockDim.x;
}

}  // namespace gc
