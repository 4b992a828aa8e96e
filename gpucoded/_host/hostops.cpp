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
// emulated thread per OpenMP thread) they spend their time in the per-position
// index arithmetic (64-bit divisions) and reach 0.26-0.69 of a copy's bandwidth
// on one core (BENCHMARKS.md); these loops walk rows and column tiles directly.
//
// Loop structure: OpenMP threads take contiguous ranges of block rows r. For one
// r the gr input rows X[i*rb + r, :] (encode) or the R answer rows Z_k[r, :]
// (decode) are read from memory once and stay in L1/L2 while every output row
// is written once, in column tiles of TILE elements whose accumulators live in
// registers. Padding (rows or columns past the matrix) contributes nothing and
// is never written.
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

// y[0:len] = sum_q coef[q] * src[q][0:len] for the nsrc rows src (nullptr: zero row).
template <typename T>
inline void combine_row(T* __restrict y, i64 len, const T* const* src, const T* coef,
                        int nsrc) {
    constexpr int TILE = Tile<T>::n;
    i64 x0 = 0;
    for (; x0 + TILE <= len; x0 += TILE) {
        T acc[TILE];
        for (int e = 0; e < TILE; ++e) acc[e] = T(0);
        for (int q = 0; q < nsrc; ++q) {
            const T* __restrict s = src[q];
            if (!s) continue;
            const T g = coef[q];
            for (int e = 0; e < TILE; ++e) acc[e] += g * s[x0 + e];
        }
        stream_store<T>(y + x0, acc, TILE);
    }
    for (i64 x = x0; x < len; ++x) {
        T acc = T(0);
        for (int q = 0; q < nsrc; ++q)
            if (src[q]) acc += coef[q] * src[q][x];
        y[x] = acc;
    }
}

// Like combine_row but source q only has valid[q] elements (the rest is padding).
template <typename T>
inline void combine_row_ragged(T* __restrict y, i64 len, const T* const* src, const i64* valid,
                               const T* coef, int nsrc) {
    for (i64 x = 0; x < len; ++x) {
        T acc = T(0);
        for (int q = 0; q < nsrc; ++q)
            if (src[q] && x < valid[q]) acc += coef[q] * src[q][x];
        y[x] = acc;
    }
}

template <typename T>
void encode(const T* X, i64 ldx, i64 nrows, i64 ncols, int gr, int gcols, i64 rb, i64 cb,
            const T* G, int P, T* Y, int nthreads) {
    const int m = gr * gcols;
#pragma omp parallel num_threads(nthreads)
    {
        const T* src[64];
        i64 valid[64];
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < rb; ++r) {
            bool full = true;
            for (int a = 0; a < m; ++a) {
                const int i = a / gcols, j = a - (a / gcols) * gcols;
                const i64 row = (i64)i * rb + r, col0 = (i64)j * cb;
                const i64 v = row < nrows && col0 < ncols ? (ncols - col0 < cb ? ncols - col0 : cb) : 0;
                src[a] = v > 0 ? X + row * ldx + col0 : nullptr;
                valid[a] = v;
                full = full && (v == cb || v == 0);
            }
            for (int w = 0; w < P; ++w) {
                T* y = Y + (i64)w * rb * cb + r * cb;
                if (full)
                    combine_row<T>(y, cb, src, G + (i64)w * m, m);
                else
                    combine_row_ragged<T>(y, cb, src, valid, G + (i64)w * m, m);
            }
        }
        stream_fence();
    }
}

template <typename T>
void decode(const T* const* Z, const i64* ldz, int R, i64 rb, i64 db, const T* W, int gp,
            int gt, T* C, i64 ldc, i64 nrows, i64 ncols, int nthreads) {
#pragma omp parallel num_threads(nthreads)
    {
        const T* src[64];
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < rb; ++r) {
            for (int k = 0; k < R; ++k) src[k] = Z[k] + r * ldz[k];
            for (int i = 0; i < gp; ++i) {
                const i64 top = (i64)i * rb + r;
                if (top >= nrows) break;
                for (int u = 0; u < gt; ++u) {
                    const i64 left = (i64)u * db;
                    if (left >= ncols) break;
                    const i64 len = ncols - left < db ? ncols - left : db;
                    combine_row<T>(C + top * ldc + left, len, src, W + (i64)(i * gt + u) * R, R);
                }
            }
        }
        stream_fence();
    }
}

}  // namespace

// Return codes: 0 ok, 3 too many terms (the Python side checks m, R <= 64 first).
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
    }

GC_HOST_ENTRY(f32, float)
GC_HOST_ENTRY(f64, double)

// ABI version of these entry points (checked by gpucoded.hostops).
extern "C" int gc_host_abi(void) { return 2; }
