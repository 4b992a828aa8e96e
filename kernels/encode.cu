// Fused encode: one pass over a matrix in its original row-major layout.
//
// The source X (nrows x ncols, leading dimension ld) is split into a gr x gc
// grid of blocks of shape rb x cb (rb = ceil(nrows/gr), cb = ceil(ncols/gc)),
// zero-padded past the edges; block a = i*gc + j holds
//     X_a[r, c] = X[i*rb + r, j*cb + c]   (0 outside the matrix).
// The kernel writes the stacked encoded tensor Y (P, rb, cb):
//     Y[w, r, c] = sum_a G[w, a] * X_a[r, c],   G row-major (P, gr*gc).
//
// Each thread owns VEC consecutive columns of one block position (r, c); it
// loads the m = gr*gc source elements at that position (each source element is
// read exactly once when m <= MAXM) into registers, then writes all P outputs.
// For m > MAXM the blocks are processed in chunks of MAXM, accumulating into
// Y (the source is still read once; Y is re-read once per extra chunk; for
// half data the partial sum is rounded to binary16 between chunks).
//
// T: float, double (accumulate in T) or gc::half_t (binary16 storage, float
// accumulation, one rounding at the store); G is in the accumulation type.
//
// Host preconditions for VEC > 1: cb % VEC == 0, ld % VEC == 0 and X, Y
// aligned to VEC * sizeof(T).
#include "common.cuh"

template <typename T, int VEC, int MAXM>
__global__ void gc_encode(const T* __restrict__ X, long long ld, long long nrows,
                          long long ncols, int gr, int gcols, long long rb,
                          long long cb, const typename gc::Acc<T>::type* __restrict__ G, int P,
                          T* __restrict__ Y) {
    typedef typename gc::Acc<T>::type A;
    const int m = gr * gcols;
    const gc::i64 cbv = cb / VEC;  // vectors per block row
    const gc::i64 npos = rb * cbv;
    const gc::i64 plane = rb * cb;  // elements per encoded block
    for (gc::i64 pos = gc::global_thread(); pos < npos; pos += gc::global_stride()) {
        const gc::i64 r = pos / cbv;
        const gc::i64 c = (pos - r * cbv) * VEC;
        for (int a0 = 0; a0 < m; a0 += MAXM) {
            T in[MAXM][VEC];
#pragma unroll
            for (int q = 0; q < MAXM; ++q) {
                const int a = a0 + q;
                if (a < m) {
                    const int bi = a / gcols;
                    const int bj = a - bi * gcols;
                    const gc::i64 row = (gc::i64)bi * rb + r;
                    if (row < nrows) {
                        // Columns of this block end at min(ncols, (bj+1)*cb);
                        // within a block, c + VEC <= cb always holds.
                        const gc::i64 col0 = (gc::i64)bj * cb;
                        gc::load_row<T, VEC>(X + row * ld, col0 + c, ncols, in[q]);
                    } else {
#pragma unroll
                        for (int e = 0; e < VEC; ++e) in[q][e] = gc::zero<T>();
                    }
                }
            }
            for (int w = 0; w < P; ++w) {
                A acc[VEC];
                T* out = Y + (gc::i64)w * plane + r * cb;
                if (a0 == 0) {
#pragma unroll
                    for (int e = 0; e < VEC; ++e) acc[e] = A(0);
                } else {
                    T prev[VEC];
                    gc::load_row<T, VEC>(out, c, cb, prev);
#pragma unroll
                    for (int e = 0; e < VEC; ++e) acc[e] = gc::to_acc(prev[e]);
                }
                const A* g = G + (gc::i64)w * m + a0;
#pragma unroll
                for (int q = 0; q < MAXM; ++q) {
                    if (a0 + q < m) {
                        const A coef = __ldg(g + q);
#pragma unroll
                        for (int e = 0; e < VEC; ++e) acc[e] += coef * gc::to_acc(in[q][e]);
                    }
                }
                T res[VEC];
#pragma unroll
                for (int e = 0; e < VEC; ++e) res[e] = gc::from_acc<T>(acc[e]);
                gc::store_row<T, VEC>(out, c, cb, res);
            }
        }
    }
}
