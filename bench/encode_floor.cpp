// Micro-benchmark of encode's memory pattern (bench/bench_encode_floor.py builds it).
//
// Includes the host loops (gpucoded/_host/hostops.cpp) so the candidates below use
// the same tiles, stores and sum order. Every function has the signature of
// gc_host_encode_* (X, ldx, nrows, ncols, gr, gc, rb, cb, G, P, Y, nthreads):
//
//   fl_pattern_nt   the memory pattern alone: the same reads (each source row tile
//                   once) and the same writes (P planes, same strides, non-temporal
//                   stores), no arithmetic: plane w's tile is a copy of source w % m
//   fl_pattern_reg  the same with ordinary stores (memcpy)
//   fl_pattern_first the nt pattern with all m source tiles loaded (into an L1
//                   buffer) before the tile's first store, as encode does
//   fl_copy_nt      a plain copy of `ncopy` elements with non-temporal stores
//   fl_generic_*    encode with the loop before the fixed-m path (runtime m)
//   fl_fixed*_*     encode with m = 4 a constant, tiles of 256 B, 512 B, 1 KB;
//                   fl_fixed512z_*: 512 B tiles, 64-byte non-temporal stores
//   fl_planar_*     encode (same arithmetic) walking one plane at a time over an
//                   L2-sized chunk of rows: one write stream per thread instead of P
#include "../gpucoded/_host/hostops.cpp"

namespace {

template <typename T>
void pattern(const T* X, i64 ldx, int gr, int gcols, i64 rb, i64 cb, int P, T* Y,
             int nthreads, bool nt, bool first = false) {
    constexpr int TILE = Tile<T>::n;
    const int m = gr * gcols;
#pragma omp parallel num_threads(nthreads)
    {
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < rb; ++r) {
            const T* rows[64];
            for (int a = 0; a < m; ++a)
                rows[a] = X + ((i64)(a / gcols) * rb + r) * ldx + (i64)(a % gcols) * cb;
            for (i64 x0 = 0; x0 + TILE <= cb; x0 += TILE) {
                if (first) {  // all m source tiles into L1 before the first store
                    alignas(64) T buf[8][TILE];
                    for (int a = 0; a < m && a < 8; ++a)
                        std::memcpy(buf[a], rows[a] + x0, sizeof(T) * TILE);
                    for (int w = 0; w < P; ++w)
                        stream_store<T>(Y + (i64)w * rb * cb + r * cb + x0, buf[w % m], TILE);
                    continue;
                }
                for (int w = 0; w < P; ++w) {
                    T* y = Y + (i64)w * rb * cb + r * cb + x0;
                    if (nt)
                        stream_store<T>(y, rows[w % m] + x0, TILE);
                    else
                        std::memcpy(y, rows[w % m] + x0, sizeof(T) * TILE);
                }
            }
        }
        stream_fence();
    }
}

template <typename T>
void copy_nt(const T* X, T* Y, i64 n, int nthreads) {
    constexpr int TILE = Tile<T>::n;
#pragma omp parallel for schedule(dynamic, 64) num_threads(nthreads)
    for (i64 x0 = 0; x0 < n - TILE + 1; x0 += TILE) stream_store<T>(Y + x0, X + x0, TILE);
    stream_fence();
}

// Read n elements (OR of their bits: vectorised, no floating point); returns it so
// the loop is not removed.
template <typename T>
unsigned long long read_only(const T* X, i64 n, int nthreads) {
    const unsigned long long* x = reinterpret_cast<const unsigned long long*>(X);
    const i64 k = n * (i64)sizeof(T) / 8;
    unsigned long long acc = 0;
#pragma omp parallel for schedule(static) num_threads(nthreads) reduction(| : acc)
    for (i64 i = 0; i < k; ++i) acc |= x[i];
    return acc;
}

// Write n elements (zeros) with non-temporal stores.
template <typename T>
void write_nt(T* Y, i64 n, int nthreads) {
    constexpr int TILE = Tile<T>::n;
    alignas(64) T zero[TILE] = {};
#pragma omp parallel for schedule(dynamic, 64) num_threads(nthreads)
    for (i64 x0 = 0; x0 < n - TILE + 1; x0 += TILE) stream_store<T>(Y + x0, zero, TILE);
    stream_fence();
}

// Encode walking planes: the rows [r0, r0 + rc) x columns [c0, c0 + cc) of the m
// sources (m * rc * cc elements, about `chunk_bytes`) stay in L2 while every plane's
// part is summed and written, one plane after the other.
template <typename T>
void planar(const T* X, i64 ldx, int gr, int gcols, i64 rb, i64 cb, const T* G, int P, T* Y,
            int nthreads, i64 chunk_bytes) {
    constexpr int TILE = Tile<T>::n;
    const int m = gr * gcols;
    i64 cc = cb, rc = chunk_bytes / ((i64)m * cb * (i64)sizeof(T));
    if (rc < 1) {
        rc = 1;
        cc = chunk_bytes / ((i64)m * (i64)sizeof(T)) / TILE * TILE;
        if (cc < TILE) cc = TILE;
    }
    const i64 nr = (rb + rc - 1) / rc, nc = (cb + cc - 1) / cc;
#pragma omp parallel num_threads(nthreads)
    {
        const T* src[64];
#pragma omp for schedule(dynamic, 1)
        for (i64 job = 0; job < nr * nc; ++job) {
            const i64 r0 = (job / nc) * rc, c0 = (job % nc) * cc;
            const i64 r1 = r0 + rc < rb ? r0 + rc : rb, c1 = c0 + cc < cb ? c0 + cc : cb;
            for (int w = 0; w < P; ++w) {
                for (i64 r = r0; r < r1; ++r) {
                    for (i64 x0 = c0; x0 < c1; x0 += TILE) {
                        for (int a = 0; a < m; ++a)
                            src[a] = X + ((i64)(a / gcols) * rb + r) * ldx +
                                     (i64)(a % gcols) * cb + x0;
                        combine_tile<T>(Y + (i64)w * rb * cb + r * cb + x0, TILE, src,
                                        G + (i64)w * m, m);
                    }
                }
            }
        }
        stream_fence();
    }
}

// Store TILE elements with 64-byte non-temporal stores (one full line each) where
// AVX-512 is there; else the library's stream_store.
template <typename T>
inline void stream_store64(T* __restrict y, const T* __restrict acc, int n) {
#if defined(__AVX512F__)
    if ((reinterpret_cast<std::uintptr_t>(y) & 63) == 0) {
        for (int e = 0; e < n * (int)sizeof(T); e += 64)
            _mm512_stream_si512(reinterpret_cast<__m512i*>(reinterpret_cast<char*>(y) + e),
                                _mm512_loadu_si512(reinterpret_cast<const char*>(acc) + e));
        return;
    }
#endif
    stream_store<T>(y, acc, n);
}

// Encode with the number of sources a template constant (m = 4 here) and a tile of
// TB bytes: the q loop unrolled, the accumulators in registers; same sum order.
template <typename T, int M, int TB, bool Z = false>
void encode_fixed(const T* X, i64 ldx, int gcols, i64 rb, i64 cb, const T* G, int P, T* Y,
                  int nthreads) {
    constexpr int TILE = TB / (int)sizeof(T);
#pragma omp parallel num_threads(nthreads)
    {
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < rb; ++r) {
            const T* rows[M];
            for (int a = 0; a < M; ++a)
                rows[a] = X + ((i64)(a / gcols) * rb + r) * ldx + (i64)(a % gcols) * cb;
            for (i64 x0 = 0; x0 + TILE <= cb; x0 += TILE) {
                for (int w = 0; w < P; ++w) {
                    const T* g = G + (i64)w * M;
                    alignas(64) T acc[TILE];
                    for (int e = 0; e < TILE; ++e) {
                        T v = T(0);
                        for (int a = 0; a < M; ++a) v += g[a] * rows[a][x0 + e];
                        acc[e] = v;
                    }
                    if (Z)
                        stream_store64<T>(Y + (i64)w * rb * cb + r * cb + x0, acc, TILE);
                    else
                        stream_store<T>(Y + (i64)w * rb * cb + r * cb + x0, acc, TILE);
                }
            }
        }
        stream_fence();
    }
}

// The loop before the fixed-m path (hostops.cpp until this benchmark): the runtime-m
// combine_tile for every tile.
template <typename T>
void encode_generic(const T* X, i64 ldx, int gr, int gcols, i64 rb, i64 cb, const T* G, int P,
                    T* Y, int nthreads) {
    constexpr int TILE = Tile<T>::n;
    const int m = gr * gcols;
#pragma omp parallel num_threads(nthreads)
    {
        const T* rows[64];
        const T* src[64];
        i64 valid[64];
#pragma omp for schedule(dynamic, 16)
        for (i64 r = 0; r < rb; ++r) {
            encode_rows<T>(X, ldx, gr * rb, gcols * cb, gcols, m, rb, cb, r, rows, valid);
            for (i64 x0 = 0; x0 < cb; x0 += TILE) {
                const i64 len = cb - x0 < TILE ? cb - x0 : TILE;
                tile_sources<T>(rows, valid, m, x0, len, src);
                for (int w = 0; w < P; ++w)
                    combine_tile<T>(Y + (i64)w * rb * cb + r * cb + x0, len, src,
                                    G + (i64)w * m, m);
            }
        }
        stream_fence();
    }
}

}  // namespace

#define FL_ENTRY(SFX, T)                                                                    \
    extern "C" void fl_pattern_nt_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb, i64 cb, \
                                        int P, T* Y, int nt) {                               \
        pattern<T>(X, ldx, gr, gc, rb, cb, P, Y, nt, true);                                  \
    }                                                                                        \
    extern "C" void fl_pattern_reg_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb,       \
                                         i64 cb, int P, T* Y, int nt) {                      \
        pattern<T>(X, ldx, gr, gc, rb, cb, P, Y, nt, false);                                 \
    }                                                                                        \
    extern "C" void fl_pattern_first_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb,     \
                                           i64 cb, int P, T* Y, int nt) {                    \
        pattern<T>(X, ldx, gr, gc, rb, cb, P, Y, nt, true, true);                            \
    }                                                                                        \
    extern "C" void fl_copy_nt_##SFX(const T* X, T* Y, i64 n, int nt) {                     \
        copy_nt<T>(X, Y, n, nt);                                                             \
    }                                                                                        \
    extern "C" unsigned long long fl_read_##SFX(const T* X, i64 n, int nt) {                \
        return read_only<T>(X, n, nt);                                                       \
    }                                                                                        \
    extern "C" void fl_write_nt_##SFX(T* Y, i64 n, int nt) { write_nt<T>(Y, n, nt); }        \
    extern "C" void fl_fixed512_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb, i64 cb,  \
                                      const T* G, int P, T* Y, int nt, i64) {                \
        encode_fixed<T, 4, 512>(X, ldx, gc, rb, cb, G, P, Y, nt);                            \
    }                                                                                        \
    extern "C" void fl_fixed512z_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb, i64 cb, \
                                       const T* G, int P, T* Y, int nt, i64) {               \
        encode_fixed<T, 4, 512, true>(X, ldx, gc, rb, cb, G, P, Y, nt);                      \
    }                                                                                        \
    extern "C" void fl_fixed1k_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb, i64 cb,   \
                                     const T* G, int P, T* Y, int nt, i64) {                 \
        encode_fixed<T, 4, 1024>(X, ldx, gc, rb, cb, G, P, Y, nt);                           \
    }                                                                                        \
    extern "C" void fl_fixed256_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb, i64 cb,  \
                                      const T* G, int P, T* Y, int nt, i64) {                \
        encode_fixed<T, 4, 256>(X, ldx, gc, rb, cb, G, P, Y, nt);                            \
    }                                                                                        \
    extern "C" void fl_generic_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb, i64 cb,   \
                                     const T* G, int P, T* Y, int nt, i64) {                 \
        encode_generic<T>(X, ldx, gr, gc, rb, cb, G, P, Y, nt);                              \
    }                                                                                        \
    extern "C" void fl_planar_##SFX(const T* X, i64 ldx, int gr, int gc, i64 rb, i64 cb,    \
                                    const T* G, int P, T* Y, int nt, i64 chunk) {            \
        planar<T>(X, ldx, gr, gc, rb, cb, G, P, Y, nt, chunk);                               \
    }

FL_ENTRY(f32, float)
FL_ENTRY(f64, double)
