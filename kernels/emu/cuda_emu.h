// CPU emulation shim for the gpucoded kernels (tests only).
//
// Defines just enough of CUDA C++ for kernels/*.cu to compile with g++ as plain
// C++: the execution-space qualifiers become no-ops, the built-in index
// variables are thread_local structs that the launcher (launch.h) sets before
// calling a kernel body once per (block, thread). The kernels use no shared
// memory and no __syncthreads, so running the threads one after another is a
// valid schedule (the launcher also runs them in reverse to shake out
// order dependence).
#pragma once
#include <chrono>
#include <cstdint>
#include <thread>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict

struct gc_emu_dim3 {
    unsigned int x, y, z;
};

inline thread_local gc_emu_dim3 threadIdx = {0, 0, 0};
inline thread_local gc_emu_dim3 blockIdx = {0, 0, 0};
inline thread_local gc_emu_dim3 blockDim = {1, 1, 1};
inline thread_local gc_emu_dim3 gridDim = {1, 1, 1};

template <typename T>
inline T __ldg(const T* p) {
    return *p;
}

#define GPUCODED_EMU 1

inline long long gc_emu_now_ns() {
    return (long long)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// clock64: a monotonically increasing cycle counter (nanoseconds here).
inline long long clock64() {
    return (long long)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

inline void __nanosleep(unsigned int ns) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
}
