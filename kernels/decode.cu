// Fused decode: combine the answers and write C in its final layout.
//
// Input: the R answers of the answering workers, each a C-contiguous (rb, db)
// matrix, given as a device array of R pointers Z (in the order of the columns
// of W): the answers are read where the workers wrote them, with no stacked copy;
// and the decode weights W (gp*gt, R), row-major.
// Output: C (nrows x ncols, leading dimension ldc); block c = i*gt + u is
//     C[i*rb + r, u*db + x] = sum_k W[c, k] * Z[k][r, x],
// written only where the index lies inside nrows x ncols (padding dropped).
//
// Each thread owns VEC consecutive columns x of one block position (r, x); it
// loads the R answers at that position once (R <= MAXM) into registers and
// writes all gp*gt blocks of C there. For R > MAXM the answers are processed in
// chunks of MAXM, accumulating into C (which is then re-read per extra chunk;
// for half data the partial sum is rounded to binary16 between chunks).
//
// T: float, double (accumulate in T) or gc::half_t (binary16 storage, float
// accumulation); W is in the accumulation type.
//
// Host preconditions for VEC > 1: db % VEC == 0, ldc % VEC == 0 and every Z[k]
// and C aligned to VEC * sizeof(T).
#include "common.cuh"

template <typename T, int VEC, int MAXM>
__global__ void gc_decode(const T* const* __restrict__ Z, int R, long long rb, long long db,
                          const typename gc::Acc<T>::type* __restrict__ W, int gp, int gt,
                          T* __restrict__ C, long long ldc, long long nrows,
                          long long ncols) {
    typedef typename gc::Acc<T>::type A;
    const int nblk = gp * gt;
    const gc::i64 dbv = db / VEC;
    const gc::i64 npos = rb * dbv;
    for (gc::i64 pos = gc::global_thread(); pos < npos; pos += gc::global_stride()) {
        const gc::i64 r = pos / dbv;
        const gc::i64 x = (pos - r * dbv) * VEC;
        for (int k0 = 0; k0 < R; k0 += MAXM) {
            T in[MAXM][VEC];
#pragma unroll
            for (int q = 0; q < MAXM; ++q) {
                if (k0 + q < R) {
                    gc::load_row<T, VEC>(Z[k0 + q] + r * db, x,
                                         db, in[q]);
                }
            }
            for (int blk = 0; blk < nblk; ++blk) {
                const int bi = blk / gt;
                const int bu = blk - bi * gt;
                const gc::i64 row = (gc::i64)bi * rb + r;
                if (row >= nrows) continue;  // padding rows: dropped
                const gc::i64 col = (gc::i64)bu * db + x;
                if (col >= ncols) continue;  // padding columns: dropped
                T* out = C + row * ldc;
                A acc[VEC];
                if (k0 == 0) {
#pragma unroll
                    for (int e = 0; e < VEC; ++e) acc[e] = A(0);
                } else {
                    T prev[VEC];
                    gc::load_row<T, VEC>(out, col, ncols, prev);
#pragma unroll
                    for (int e = 0; e < VEC; ++e) acc[e] = gc::to_acc(prev[e]);
                }
                const A* wr = W + (gc::i64)blk * R + k0;
#pragma unroll
                for (int q = 0; q < MAXM; ++q) {
                    if (k0 + q < R) {
                        const A coef = __ldg(wr + q);
#pragma unroll
                        for (int e = 0; e < VEC; ++e) acc[e] += coef * gc::to_acc(in[q][e]);
                    }
                }
                T res[VEC];
#pragma unroll
                for (int e = 0; e < VEC; ++e) res[e] = gc::from_acc<T>(acc[e]);
                gc::store_row<T, VEC>(out, col, ncols, res);
            }
        }
    }
}
