// CPU harness: the exact kernel sources of kernels/, compiled with g++ through
// the emulation shim, exposed to Python (tests/kernel_harness.py) via ctypes.
#include "launch.h"
#include "../encode.cu"
#include "../decode.cu"
#include "../delay.cu"

namespace {

// Dispatch a runtime (VEC, MAXM) pair to a template instantiation.
template <typename T>
using AccT = typename gc::Acc<T>::type;

template <typename T, int VEC, int MAXM>
void run_encode(unsigned grid, unsigned block, bool rev, const T* X, long long ld,
                long long nrows, long long ncols, int gr, int gcols, long long rb,
                long long cb, const AccT<T>* G, int P, T* Y) {
    gc_emu_launch(grid, block, rev, [&] {
        gc_encode<T, VEC, MAXM>(X, ld, nrows, ncols, gr, gcols, rb, cb, G, P, Y);
    });
}

template <typename T, int VEC, int MAXM>
void run_decode(unsigned grid, unsigned block, bool rev, const T* const* Z, int R, long long rb,
                long long db, const AccT<T>* W, int gp, int gt, T* C, long long ldc,
                long long nrows, long long ncols) {
    gc_emu_launch(grid, block, rev, [&] {
        gc_decode<T, VEC, MAXM>(Z, R, rb, db, W, gp, gt, C, ldc, nrows, ncols);
    });
}


template <typename T>
int encode_any(int vec, int maxm, unsigned grid, unsigned block, int rev, const T* X,
               long long ld, long long nrows, long long ncols, int gr, int gcols,
               long long rb, long long cb, const AccT<T>* G, int P, T* Y) {
    auto call = [&](auto fn) { fn(grid, block, rev != 0, X, ld, nrows, ncols, gr, gcols, rb, cb, G, P, Y); return 0; };
#define E(V, M) if (vec == V && maxm == M) return call(run_encode<T, V, M>);
    E(1, 4) E(1, 8) E(1, 16) E(2, 4) E(2, 8) E(2, 16) E(4, 4) E(4, 8) E(4, 16)
    E(8, 4) E(8, 8) E(8, 16)
#undef E
    return -1;
}

template <typename T>
int decode_any(int vec, int maxm, unsigned grid, unsigned block, int rev, const T* const* Z,
               int R, long long rb, long long db, const AccT<T>* W, int gp, int gt, T* C,
               long long ldc, long long nrows, long long ncols) {
    auto call = [&](auto fn) { fn(grid, block, rev != 0, Z, R, rb, db, W, gp, gt, C, ldc, nrows, ncols); return 0; };
#define D(V, M) if (vec == V && maxm == M) return call(run_decode<T, V, M>);
    D(1, 4) D(1, 8) D(1, 16) D(2, 4) D(2, 8) D(2, 16) D(4, 4) D(4, 8) D(4, 16)
    D(8, 4) D(8, 8) D(8, 16)
#undef D
    return -1;
}

}  // namespace

extern "C" {

int gc_emu_encode_f32(int vec, int maxm, unsigned grid, unsigned block, int rev,
                      const float* X, long long ld, long long nrows, long long ncols,
                      int gr, int gcols, long long rb, long long cb, const float* G,
                      int P, float* Y) {
    return encode_any<float>(vec, maxm, grid, block, rev, X, ld, nrows, ncols, gr, gcols,
                             rb, cb, G, P, Y);
}

int gc_emu_encode_f64(int vec, int maxm, unsigned grid, unsigned block, int rev,
                      const double* X, long long ld, long long nrows, long long ncols,
                      int gr, int gcols, long long rb, long long cb, const double* G,
                      int P, double* Y) {
    return encode_any<double>(vec, maxm, grid, block, rev, X, ld, nrows, ncols, gr,
                              gcols, rb, cb, G, P, Y);
}

int gc_emu_decode_f32(int vec, int maxm, unsigned grid, unsigned block, int rev,
                      const float* const* Z, int R, long long rb, long long db, const float* W,
                      int gp, int gt, float* C, long long ldc, long long nrows,
                      long long ncols) {
    return decode_any<float>(vec, maxm, grid, block, rev, Z, R, rb, db, W, gp, gt, C,
                             ldc, nrows, ncols);
}

int gc_emu_decode_f64(int vec, int maxm, unsigned grid, unsigned block, int rev,
                      const double* const* Z, int R, long long rb, long long db,
                      const double* W, int gp, int gt, double* C, long long ldc,
                      long long nrows, long long ncols) {
    return decode_any<double>(vec, maxm, grid, block, rev, Z, R, rb, db, W, gp, gt, C,
                              ldc, nrows, ncols);
}

int gc_emu_encode_f16(int vec, int maxm, unsigned grid, unsigned block, int rev,
                      const gc::half_t* X, long long ld, long long nrows, long long ncols,
                      int gr, int gcols, long long rb, long long cb, const float* G, int P,
                      gc::half_t* Y) {
    return encode_any<gc::half_t>(vec, maxm, grid, block, rev, X, ld, nrows, ncols, gr,
                                  gcols, rb, cb, G, P, Y);
}

int gc_emu_decode_f16(int vec, int maxm, unsigned grid, unsigned block, int rev,
                      const gc::half_t* const* Z, int R, long long rb, long long db, const float* W,
                      int gp, int gt, gc::half_t* C, long long ldc, long long nrows,
                      long long ncols) {
    return decode_any<gc::half_t>(vec, maxm, grid, block, rev, Z, R, rb, db, W, gp, gt, C,
                                  ldc, nrows, ncols);
}

// Conversions, exposed for exhaustive checks against NumPy's float16.
void gc_emu_half_to_float(const gc::half_t* h, float* f, long long n) {
    for (long long i = 0; i < n; ++i) f[i] = gc::half_to_float(h[i]);
}

void gc_emu_float_to_half(const float* f, gc::half_t* h, long long n) {
    for (long long i = 0; i < n; ++i) h[i] = gc::float_to_half(f[i]);
}

int gc_emu_delay(const int* flag, long long ns) {
    gc_emu_launch(1, 1, false, [&] { gc_delay(flag, ns); });
    return 0;
}

}  // extern "C"
