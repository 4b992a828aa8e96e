// Explicit template instantiations for the ahead-of-time build (CMakeLists.txt).
// Must list exactly gpucoded.kernels.all_name_expressions("encode"/"decode");
// tests/test_kernels_nvrtc.py checks that.
#include "encode.cu"
#include "decode.cu"
#include "delay.cu"

#define GC_INST_encode(T, V, M)                                                        \
    template __global__ void gc_encode<T, V, M>(                                       \
        const T*, long long, long long, long long, int, int, long long, long long,     \
        const typename gc::Acc<T>::type*, int, T*);
#define GC_INST_decode(T, V, M)                                                        \
    template __global__ void gc_decode<T, V, M>(                                       \
        const T* const*, int, long long, long long, const typename gc::Acc<T>::type*,  \
        int, int, T*, long long, long long, long long);
#define GC_INST(FAM, T, V, M) GC_INST_##FAM(T, V, M)

GC_INST(encode, float, 1, 4)
GC_INST(encode, float, 1, 8)
GC_INST(encode, float, 1, 16)
GC_INST(encode, float, 4, 4)
GC_INST(encode, float, 4, 8)
GC_INST(encode, float, 4, 16)
GC_INST(encode, double, 1, 4)
GC_INST(encode, double, 1, 8)
GC_INST(encode, double, 1, 16)
GC_INST(encode, double, 2, 4)
GC_INST(encode, double, 2, 8)
GC_INST(encode, double, 2, 16)
GC_INST(encode, gc::half_t, 1, 4)
GC_INST(encode, gc::half_t, 1, 8)
GC_INST(encode, gc::half_t, 1, 16)
GC_INST(encode, gc::half_t, 8, 4)
GC_INST(encode, gc::half_t, 8, 8)
GC_INST(encode, gc::half_t, 8, 16)

GC_INST(decode, float, 1, 4)
GC_INST(decode, float, 1, 8)
GC_INST(decode, float, 1, 16)
GC_INST(decode, float, 4, 4)
GC_INST(decode, float, 4, 8)
GC_INST(decode, float, 4, 16)
GC_INST(decode, double, 1, 4)
GC_INST(decode, double, 1, 8)
GC_INST(decode, double, 1, 16)
GC_INST(decode, double, 2, 4)
GC_INST(decode, double, 2, 8)
GC_INST(decode, double, 2, 16)
GC_INST(decode, gc::half_t, 1, 4)
GC_INST(decode, gc::half_t, 1, 8)
GC_INST(decode, gc::half_t, 1, 16)
GC_INST(decode, gc::half_t, 8, 4)
GC_INST(decode, gc::half_t, 8, 8)
GC_INST(decode, gc::half_t, 8, 16)
