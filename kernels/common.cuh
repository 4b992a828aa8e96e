// gpucoded kernels: shared device helpers.
//
// This header is the single source of truth for the layout arithmetic used by
// the fused encode and decode kernels. It is compiled three ways:
//   * by NVRTC at run time (kernels.py inlines it into encode.cu / decode.cu),
//   * by nvcc ahead of time (CMakeLists.txt -> fatbin for sm_80 and sm_90),
//   * by g++ on the CPU through kernels/emu/cuda_emu.h (tests/_harness/emu.py).
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

// IEEE binary16 storage (no cuda_fp16.h needed, so NVRTC, nvcc and g++ all
// compile it). Arithmetic happens in float: see to_acc / from_acc.
struct half_t {
    unsigned short bits;
};

// Accumulation type: float data accumulates in float, double in double,
// half in float. Coefficients (G, W) are passed in the accumulation type.
template <typename T>
struct Acc {
    typedef T type;
};
template <>
struct Acc<half_t> {
    typedef float type;
};

__device__ __forceinline__ unsigned int f32_bits(float x) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(x);
#else
    unsigned int u;
    __builtin_memcpy(&u, &x, 4);
    return u;
#endif
}

__device__ __forceinline__ float f32_from_bits(unsigned int u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float x;
    __builtin_memcpy(&x, &u, 4);
    return x;
#endif
}

// binary16 -> float (exact). GPU: one cvt instruction; CPU: bit arithmetic.
__device__ __forceinline__ float half_to_float(half_t h) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
    return f;
#else
    const unsigned int sign = (unsigned int)(h.bits & 0x8000u) << 16;
    const unsigned int exp = (h.bits >> 10) & 0x1fu;
    const unsigned int man = h.bits & 0x3ffu;
    if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
        const float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (man << 13));
    return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

// float -> binary16, round to nearest even (overflow to inf, NaN kept).
__device__ __forceinline__ half_t float_to_half(float x) {
    half_t h;
#ifdef __CUDA_ARCH__
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
#else
    const unsigned int u = f32_bits(x);
    const unsigned int sign = (u >> 16) & 0x8000u;
    const unsigned int ax = u & 0x7fffffffu;
    unsigned int r;
    if (ax >= 0x7f800000u) {
        r = ax > 0x7f800000u ? 0x7e00u : 0x7c00u;  // NaN, inf
    } else if (ax >= 0x477ff000u) {
        r = 0x7c00u;  // >= 65520 rounds to inf
    } else if (ax >= 0x38800000u) {  // normal half
        r = (ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u) >> 13;
    } else {  // subnormal half or zero: round(man * 2^(e-126))
        const unsigned int e = ax >> 23;
        const unsigned int s = 126u - e;
        if (s > 24u) {
            r = 0;
        } else {
            const unsigned int man = (ax & 0x7fffffu) | 0x800000u;
            r = man >> s;
            const unsigned int rem = man & ((1u << s) - 1u);
            const unsigned int halfway = 1u << (s - 1u);
            if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
        }
    }
    h.bits = (unsigned short)(sign | r);
#endif
    return h;
}

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(half_t x) { return half_to_float(x); }

template <typename T>
__device__ __forceinline__ T from_acc(typename Acc<T>::type x) {
    return T(x);
}
template <>
__device__ __forceinline__ half_t from_acc<half_t>(float x) {
    return float_to_half(x);
}

template <typename T>
__device__ __forceinline__ T zero() {
    return T(0);
}
template <>
__device__ __forceinline__ half_t zero<half_t>() {
    half_t h;
    h.bits = 0;
    return h;
}

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
        for (int e = 0; e < V; ++e) out[e] = (col + e < ncols) ? row[col + e] : zero<T>();
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
