// CPU encode/decode for gpucoded's host path (OpenMP over rows).
//
// Same layout contract and the same arithmetic as kernels/encode.cu and
// kernels/decode.cu (see their headers): every output entry is one sum, in the
// data type, started at 0 and accumulated term by term in block order
//     encode  Y[w, r, c]           = sum_a G[w, a] * X_a[r, c]      (a = i*gc + j)
//     decode  C[i rb + r, u db + x] = sum_k W[i gt + u, k] * Z_k[r, x]
// so the results are bit-identical to those kernels run through the CPU shim
// (tests/test_hostops.py checks it against kernels/emu). Built without
// floating-point contraction (-ffp-contract=off), like the shim's build.
//
// Why not the .cu kernels themselves: compiled for the CPU (emulation shim, one
// emulated thread per OpenMP thread, tried first) they spend their time in the
// per-position index arithmetic (64-bit divisions per vector) and stayed well
// below a copy's bandwidth on one core; these loops walk rows and column tiles.
//
// Loop structure: OpenMP threads take chunks of block rows r (dynamic schedule:
// a thread descheduled on a loaded machine does not hold the others up). For one
// r and one column tile of TILE elements, the m source tiles (encode) or the R
// answer tiles (decode) are read from memory once and stay in L1 while every
// output tile is summed in registers and written once with non-temporal stores
// (no read of the destination). Padding (rows or columns past the matrix)
// contributes nothing and is never written. Encode rows without padding run a
// loop with m a template constant (m <= 8): measured in one run against the
// runtime-m loop, 0.96 -> 1.21 (float64) and 0.88 -> 0.95 (float32) of an
// np.copyto of the same bytes at n=2048, one thread (bench/bench_encode_floor.py,
// bench/results/encode_floor_run1.json; it also measures the memory pattern alone,
// tile sizes, per-plane walks and stores: BENCHMARKS.md).
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#define GC_STREAM_BYTES 32
#elif defined(__SSE2__)
#include <emmintrin.h>
#define GC_STREAM_BYTES 16
#else
#define GC_STREAM_BYTES 0
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

typedef long long i64;

template <typename T>
struct Tile {
    static constexpr int n = 512 / (int)sizeof(T);  // 512 bytes of accumulators
};

// Store n elements (n * sizeof(T) a multiple of 64) from acc to y, bypassing the
// cache where the target allows (non-temporal stores: no read-for-ownership of the
// destination line; each output is written once and not read again here).
template <typename T>
inline void stream_store(T* __restrict y, const T* __restrict acc, int n) {
#if GC_STREAM_BYTES == 32
    if ((reinterpret_cast<std::uintptr_t>(y) & 31) == 0) {
        for (int e = 0; e < n * (int)sizeof(T); e += 32) {
            const char* src = reinterpret_cast<const char*>(acc) + e;
            char* dst = reinterpret_cast<char*>(y) + e;
            _mm256_stream_si256(reinterpret_cast<__m256i*>(dst),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)));
        }
        return;
    }
#elif GC_STREAM_BYTES == 16
    if ((reinterpret_cast<std::uintptr_t>(y) & 15) == 0) {
        for (int e = 0; e < n * (int)sizeof(T); e += 16) {
            const char* src = reinterpret_cast<const char*>(acc) + e;
            char* dst = reinterpret_cast<char*>(y) + e;
            _mm_stream_si128(reinterpret_cast<__m128i*>(dst),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
        }
        return;
    }
#endif
    std::memcpy(y, acc, sizeof(T) * n);
}

inline void stream_fence() {
#if GC_STREAM_BYTES > 0
    _mm_sfence();  // non-temporal stores are weakly ordered: publish them
#endif
}

// y[0:len] = sum_q coef[q] * src[q][0:len] for one tile (len <= TILE) of nsrc rows
// (src[q] == nullptr: a zero row). Full tiles keep their accumulators in registers
// and are stored with stream_store; a short tail is summed element by element.
template <typename T>
inline void combine_tile(T* __restrict y, i64 len, const T* const* src, const T* coef,
                         int nsrc) {
    constexpr int TILE = Tile<T>::n;
    if (len == TILE) {
        T acc[TILE];
        for (int e = 0; e < TILE; ++e) acc[e] = T(0);
        for (int q = 0; q < nsrc; ++q) {
            const T* __restrict s = src[q];
            if (!s) continue;
            const T g = coef[q];
            for (int e = 0; e < TILE; ++e) acc[e] += g * s[e];
        }
        stream_store<T>(y, acc, TILE);
        return;
    }
    for (i64 x = 0; x < len; ++x) {
        T acc = T(0);
        for (int q = 0; q < nsrc; ++q)
            if (src[q]) acc += coef[q] * src[q][x];
        y[x] = acc;
    }
}

// Source pointers of the tile at column x0 of rows `rows` with `valid` elements each
// (nullptr where the tile lies in the padding); returns whether every non-null
// source covers the tile fully (else the ragged sum below runs).
template <typename T>
inline bool tile_sources(const T* const* rows, const i64* valid, int nsrc, i64 x0, i64 len,
                         const T** out) {
    bool full = true;
    for (int q = 0; q < nsrc; ++q) {
        if (!rows[q] || valid[q] <= x0) {
            out[q] = nullptr;
        } else {
            out[q] = rows[q] + x0;
            full = full && valid[q] >= x0 + len;
        }
    }
    return full;
}

template <typename T>
inline void combine_tile_ragged(T* __restrict y, i64 len, const T* const* src, const i64* valid,
                                i64 x0, const T* coef, int nsrc) {
    for (i64 x = 0; x < len; ++x) {
        T acc = T(0);
        for (int q = 0; q < nsrc; ++q)
            if (src[q] && x0 + x < valid[q]) acc += coef[q] * src[q][x];
        y[x] = acc;
    }
}

// Full tiles of one block row whose m (a compile-time M) source rows all cover
// the row: Y[w, r, tile] = sum_a G[w, a] X_a[r, tile] for tiles [0, nfull). With
// M a constant the term loop can unroll and the TILE accumulators can live in
// vector registers (faster than combine_tile's runtime-m loop: numbers in the
// header).
// Same sum as combine_tile: started at 0, terms added in block order.
template <typename T, int M>
void encode_row_fixed(const T* const* rows, i64 nfull, const T* G, int P, T* Yr, i64 plane) {
    constexpr int TILE = Tile<T>::n;
    const T* s[M];  // local copies: the stores below may alias `rows` and G for the compiler
    for (int a = 0; a < M; ++a) s[a] = rows[a];
    for (i64 x0 = 0; x0 < nfull * TILE; x0 += TILE) {
        for (int w = 0; w < P; ++w) {
            T g[M];
            for (int a = 0; a < M; ++a) g[a] = G[(i64)w * M + a];
            alignas(64) T acc[TILE];
            for (int e = 0; e < TILE; ++e) {
                T v = T(0);
                for (int a = 0; a < M; ++a) v += g[a] * s[a][x0 + e];
                acc[e] = v;
            }
            stream_store<T>(Yr + (i64)w * plane + x0, acc, TILE);
        }
    }
}

// The fixed-M loop for m in 1..8 (every grid of the shipped codes); false for
// other m (the caller runs the generic loop).
template <typename T>
bool encode_row_dispatch(int m, const T* const* rows, i64 nfull, const T* G, int P, T* Yr,
                         i64 plane) {
    switch (m) {
#define GC_FIXED_CASE(K) \
    case K: encode_row_fixed<T, K>(rows, nfull, G, P, Yr, plane); return true;
        GC_FIXED_CASE(1) GC_FIXED_CASE(2) GC_FIXED_CASE(3) GC_FIXED_CASE(4)
        GC_FIXED_CASE(5) GC_FIXED_CASE(6) GC_FIXED_CASE(7) GC_FIXED_CASE(8)
#undef GC_FIXED_CASE
        default: return false;
    }
}

// Pointers to the m source rows of block row r and how many columns each covers
// (0 and nullptr where the row lies in the padding); returns whether all cover cb.
template <typename T>
inline bool encode_rows(const T* X, i64 ldx, i64 nrows, i64 ncols, int gcols, int m, i64 rb,
                        i64 cb, i64 r, const T** rows, i64* valid) {
    bool full = true;
    for (int a = 0; a < m; ++a) {
        const int i = a / gcols, j = a % gcols;
        const i64 row = (i64)i * rb + r, col0 = (i64)j * cb;
        const i64 v = row < nrows && col0 < ncols ? (ncols - col0 < cb ? ncols - col0 : cb) : 0;
        rows[a] = v > 0 ? X + row * ldx + col0 : nullptr;
        valid[a] = v;
        full = full && v == cb;
    }
    return full;
}

// Encode: for each block row r (OpenMP), each column tile, each worker w:
// Y[w, r, tile] = sum_a G[w, a] X_a[r, tile]. The m source tiles stay in L1 while
// the P output tiles are written. Rows without padding take the fixed-m loop for
// their full tiles; padding and the last partial tile take the generic one.
template <typename T>
void encode(const T* X, i64 ldx, i64 nrows, i64 ncols, int gr, int gcols, i64 rb, i64 cb,
            const T* G, int P, T* Y, int nthreads) {
    constexpr int TILE = Tile<T>::n;
    const int m = gr * gcols;
#pragma omp parallel num_threads(nthreads)
    {
        const T* rows[64];
        const T* src[64];
        i64 valid[64];
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < rb; ++r) {
            const bool whole =
                encode_rows<T>(X, ldx, nrows, ncols, gcols, m, rb, cb, r, rows, valid);
            i64 x0 = 0;
            if (whole && encode_row_dispatch<T>(m, rows, cb / TILE, G, P, Y + r * cb, rb * cb))
                x0 = cb / TILE * TILE;
            for (; x0 < cb; x0 += TILE) {
                const i64 len = cb - x0 < TILE ? cb - x0 : TILE;
                const bool full = tile_sources<T>(rows, valid, m, x0, len, src);
                for (int w = 0; w < P; ++w) {
                    T* y = Y + (i64)w * rb * cb + r * cb + x0;
                    if (full)
                        combine_tile<T>(y, len, src, G + (i64)w * m, m);
                    else
                        combine_tile_ragged<T>(y, len, src, valid, x0, G + (i64)w * m, m);
                }
            }
        }
        stream_fence();
    }
}

// Decode: for each block row r (OpenMP), each column tile, each C block (i, u):
// C[i rb + r, u db + tile] = sum_k W[i gt + u, k] Z_k[r, tile]; the R answer tiles
// stay in L1 while the p*t output tiles are written. Padding is never written.
template <typename T>
void decode(const T* const* Z, const i64* ldz, int R, i64 rb, i64 db, const T* W, int gp,
            int gt, T* C, i64 ldc, i64 nrows, i64 ncols, int nthreads) {
    constexpr int TILE = Tile<T>::n;
#pragma omp parallel num_threads(nthreads)
    {
        const T* src[64];
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < rb; ++r) {
            for (i64 x0 = 0; x0 < db; x0 += TILE) {
                for (int k = 0; k < R; ++k) src[k] = Z[k] + r * ldz[k] + x0;
                for (int i = 0; i < gp; ++i) {
                    const i64 top = (i64)i * rb + r;
                    if (top >= nrows) break;
                    for (int u = 0; u < gt; ++u) {
                        const i64 left = (i64)u * db + x0;
                        if (left >= ncols) break;
                        i64 len = db - x0 < TILE ? db - x0 : TILE;
                        len = ncols - left < len ? ncols - left : len;
                        combine_tile<T>(C + top * ldc + left, len, src,
                                        W + (i64)(i * gt + u) * R, R);
                    }
                }
            }
        }
        stream_fence();
    }
}

// Row gather: out[j, :k] = X[idx[j], :k] for j < n, and for the first nT rows also
// their transpose, outT[c, j] = X[idx[j], c] (c < k, j < nT), in one pass over the
// source rows (a minibatch loop that multiplies by X_b and by X_b^T needs both; a
// separate transposing copy would read the gathered rows a second time). Pure data
// movement: bit-exact on every machine. Groups of 8 rows: each row is copied whole,
// then the 8 fresh rows (in L1/L2) are written as 8-element runs of outT's rows.
template <typename T>
void take_rows(const T* __restrict X, i64 ldx, const i64* idx, i64 n, i64 k, T* __restrict out,
               i64 ldo, i64 nT, T* __restrict outT, i64 ldt) {
    constexpr int B = 8;
    for (i64 j0 = 0; j0 < n; j0 += B) {
        const i64 je = j0 + B < n ? j0 + B : n;
        for (i64 j = j0; j < je; ++j)
            std::memcpy(out + j * ldo, X + idx[j] * ldx, (size_t)k * sizeof(T));
        if (j0 >= nT) continue;
        const i64 te = je < nT ? je : nT;
        if (te - j0 == B) {
            const T* src[B];
            for (int q = 0; q < B; ++q) src[q] = out + (j0 + q) * ldo;
            for (i64 c = 0; c < k; ++c) {
                T* o = outT + c * ldt + j0;
                for (int q = 0; q < B; ++q) o[q] = src[q][c];
            }
        } else {
            for (i64 j = j0; j < te; ++j)
                for (i64 c = 0; c < k; ++c) outT[c * ldt + j] = out[j * ldo + c];
        }
    }
}


// Probe products of the measured accuracy check (gpucoded/probes.py):
//     out[i, t] = sum_j M[i, j] * W[j, t]     (i < rows, j < cols, t < S)
// in float64 whatever M's type (float32 is widened as it is read: no widened copy of
// M), one sequential sum in j order per entry. With ABSMAX also
// *absmax = max |M[i, j]| over the whole matrix, in the same pass, so the check reads
// each operand once (a NaN in M is not seen there; it makes its row of out NaN, which
// the caller checks). Rows in groups of 4 share each row of W (S <= 8 doubles, in
// registers); W (cols x S) stays in L1/L2.
template <typename T, int S, bool ABSMAX>
void rowmul_wide_fixed(const T* __restrict M, i64 ldm, i64 rows, i64 cols,
                       const double* __restrict W, double* __restrict out, double* absmax,
                       int nthreads) {
    double amax = 0.0;
#pragma omp parallel for schedule(static) num_threads(nthreads) reduction(max : amax)
    for (i64 i0 = 0; i0 < rows; i0 += 4) {
        const int nr = rows - i0 < 4 ? (int)(rows - i0) : 4;
        double acc[4][S];
        double m4[4] = {0.0, 0.0, 0.0, 0.0};
        for (int r = 0; r < 4; ++r)
            for (int t = 0; t < S; ++t) acc[r][t] = 0.0;
        const T* row[4];
        for (int r = 0; r < 4; ++r) row[r] = M + (i0 + (r < nr ? r : 0)) * ldm;
        for (i64 j = 0; j < cols; ++j) {
            const double* w = W + j * S;
            double av[4];
            for (int r = 0; r < 4; ++r) av[r] = (double)row[r][j];
            if (ABSMAX) {
                for (int r = 0; r < 4; ++r) {
                    const double v = av[r] < 0 ? -av[r] : av[r];
                    m4[r] = v > m4[r] ? v : m4[r];
                }
            }
            for (int r = 0; r < 4; ++r)
                for (int t = 0; t < S; ++t) acc[r][t] += av[r] * w[t];
        }
        for (int r = 0; r < nr; ++r)
            for (int t = 0; t < S; ++t) out[(i0 + r) * S + t] = acc[r][t];
        for (int r = 0; r < 4; ++r) amax = m4[r] > amax ? m4[r] : amax;
    }
    if (ABSMAX) *absmax = amax;
}

#if defined(__AVX__)
// S = 8 with AVX: the 4 x 8 accumulators in 8 ymm registers, W's row in 2, one
// broadcast per row and column of M (the compiler vectorised the portable loop over j
// with shuffles instead). Fused multiply-add where the CPU has it (one rounding per
// term instead of two: the sum stays one sequential float64 sum per entry).
template <typename T, bool ABSMAX>
void rowmul_wide_avx8(const T* __restrict M, i64 ldm, i64 rows, i64 cols,
                      const double* __restrict W, double* __restrict out, double* absmax,
                      int nthreads) {
    double amax = 0.0;
#pragma omp parallel for schedule(static) num_threads(nthreads) reduction(max : amax)
    for (i64 i0 = 0; i0 < rows; i0 += 4) {
        const int nr = rows - i0 < 4 ? (int)(rows - i0) : 4;
        const T* row[4];
        for (int r = 0; r < 4; ++r) row[r] = M + (i0 + (r < nr ? r : 0)) * ldm;
        __m256d acc[4][2];
        for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_pd();
        __m256d m4 = _mm256_setzero_pd();
        const __m256d sign = _mm256_set1_pd(-0.0);
        for (i64 j = 0; j < cols; ++j) {
            const __m256d w0 = _mm256_loadu_pd(W + j * 8), w1 = _mm256_loadu_pd(W + j * 8 + 4);
            const double a0 = (double)row[0][j], a1 = (double)row[1][j];
            const double a2 = (double)row[2][j], a3 = (double)row[3][j];
            if (ABSMAX)  // max(|a|, m) keeps m where a is NaN: NaNs show in out instead
                m4 = _mm256_max_pd(_mm256_andnot_pd(sign, _mm256_set_pd(a3, a2, a1, a0)), m4);
            const double av[4] = {a0, a1, a2, a3};
            for (int r = 0; r < 4; ++r) {
                const __m256d a = _mm256_set1_pd(av[r]);
#if defined(__FMA__)
                acc[r][0] = _mm256_fmadd_pd(a, w0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_pd(a, w1, acc[r][1]);
#else
                acc[r][0] = _mm256_add_pd(acc[r][0], _mm256_mul_pd(a, w0));
                acc[r][1] = _mm256_add_pd(acc[r][1], _mm256_mul_pd(a, w1));
#endif
            }
        }
        for (int r = 0; r < nr; ++r) {
            _mm256_storeu_pd(out + (i0 + r) * 8, acc[r][0]);
            _mm256_storeu_pd(out + (i0 + r) * 8 + 4, acc[r][1]);
        }
        if (ABSMAX) {
            double mm[4];
            _mm256_storeu_pd(mm, m4);
            for (int r = 0; r < 4; ++r) amax = mm[r] > amax ? mm[r] : amax;
        }
    }
    if (ABSMAX) *absmax = amax;
}
#endif

template <typename T, int S>
void rowmul_wide_s(const T* M, i64 ldm, i64 rows, i64 cols, const double* W, double* out,
                   double* absmax, int nthreads) {
#if defined(__AVX__)
    if (S == 8) {
        if (absmax)
            rowmul_wide_avx8<T, true>(M, ldm, rows, cols, W, out, absmax, nthreads);
        else
            rowmul_wide_avx8<T, false>(M, ldm, rows, cols, W, out, absmax, nthreads);
        return;
    }
#endif
    if (absmax)
        rowmul_wide_fixed<T, S, true>(M, ldm, rows, cols, W, out, absmax, nthreads);
    else
        rowmul_wide_fixed<T, S, false>(M, ldm, rows, cols, W, out, absmax, nthreads);
}

template <typename T>
int rowmul_wide(const T* M, i64 ldm, i64 rows, i64 cols, const double* W, int S, double* out,
                double* absmax, int nthreads) {
    switch (S) {
        case 1: rowmul_wide_s<T, 1>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        case 2: rowmul_wide_s<T, 2>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        case 3: rowmul_wide_s<T, 3>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        case 4: rowmul_wide_s<T, 4>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        case 5: rowmul_wide_s<T, 5>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        case 6: rowmul_wide_s<T, 6>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        case 7: rowmul_wide_s<T, 7>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        case 8: rowmul_wide_s<T, 8>(M, ldm, rows, cols, W, out, absmax, nthreads); return 0;
        default: return 3;
    }
}

}  // namespace

// Return codes: 0 ok, 2 an index out of range (nothing written), 3 too many terms (the
// Python side checks m, R <= 64 first).
#define GC_HOST_ENTRY(SFX, T)                                                                \
    extern "C" int gc_host_encode_##SFX(const T* X, i64 ldx, i64 nrows, i64 ncols, int gr,   \
                                         int gcols, i64 rb, i64 cb, const T* G, int P, T* Y,   \
                                         int nthreads) {                                       \
        if (gr * gcols > 64) return 3;                                                       \
        encode<T>(X, ldx, nrows, ncols, gr, gcols, rb, cb, G, P, Y, nthreads);               \
        return 0;                                                                            \
    }                                                                                        \
    extern "C" int gc_host_decode_##SFX(const T* const* Z, const i64* ldz, int R, i64 rb,    \
                                         i64 db, const T* W, int gp, int gt, T* C, i64 ldc,    \
                                         i64 nrows, i64 ncols, int nthreads) {                 \
        if (R > 64) return 3;                                                                \
        decode<T>(Z, ldz, R, rb, db, W, gp, gt, C, ldc, nrows, ncols, nthreads);             \
        return 0;                                                                            \
    }                                                                                        \
    extern "C" int gc_host_take_rows_##SFX(const T* X, i64 ldx, i64 nsrc, const i64* idx,     \
                                            i64 n, i64 k, T* out, i64 ldo, i64 nT, T* outT,    \
                                            i64 ldt) {                                         \
        for (i64 j = 0; j < n; ++j)                                                          \
            if (idx[j] < 0 || idx[j] >= nsrc) return 2;                                      \
        take_rows<T>(X, ldx, idx, n, k, out, ldo, nT, outT, ldt);                            \
        return 0;                                                                            \
    }                                                                                        \
    extern "C" int gc_host_rowmul_wide_##SFX(const T* M, i64 ldm, i64 rows, i64 cols,         \
                                              const double* W, int S, double* out,              \
                                              double* absmax, int nthreads) {                   \
        return rowmul_wide<T>(M, ldm, rows, cols, W, S, out, absmax, nthreads);               \
    }

GC_HOST_ENTRY(f32, float)
GC_HOST_ENTRY(f64, double)

// ABI version of these entry points (checked by gpucoded.hostops).
extern "C" int gc_host_abi(void) { return 4; }
