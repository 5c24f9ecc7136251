/*
 * The column linear for a decode batch: out[M, N] = x[M, K] W[N, K]^T (+ bias) for M up to 16
 * input rows (one per sequence in the step), float32.
 *
 * linear.c takes one dot product per (input row, weight row) and sums its vector's lanes at
 * the end: past a few input rows those lane sums and the input rows' reloads cost more than
 * the products. Here the 16 input rows lie across the vector lanes instead: x is transposed
 * once into xt[K][16] (zero past M), and each weight value, broadcast, multiplies one column
 * of xt, so one FMA makes 16 products that all belong to different outputs and no lane sum
 * is needed; an output column (16 rows) is one register. COLS weight rows go side by side,
 * so each xt column loaded serves COLS FMAs, with two accumulators each (even and odd k)
 * where the vectors are 16 lanes wide. The COLS rows of a group lie end to end in memory, so
 * the AVX-512 loop prefetches the next group's block one cache line per step, into L2 (T1):
 * one sequential stream instead of COLS interleaved ones, and L1 left to xt, which a block of
 * weights fetched into it would evict (SmolLM2's 121 products at 16 rows, one Zen 4 thread,
 * interleaved: 54 ms with the L2 hint against 64 with T0, which did no better than no prefetch
 * at all). Weight rows are split over OpenMP threads.
 * AVX-512F, AVX2 (16 lanes as two registers) or plain C; the build target decides.
 *
 * bfloat16 (ip_linear_cols_bf16, AVX512_BF16 builds only): vdpbf16ps takes a pair of bf16 per
 * lane, so a vector holds R input rows x G pairs of k (R x G = 16 lanes, R the smallest of 4,
 * 8 and 16 that covers the rows, so 4 to 16 rows waste no more than half the lanes): x is
 * laid out once into chunks of 2G values of each of the R rows (64 bytes a chunk), and the
 * weight's 2G values at that k, broadcast to every row's lanes, make 16 pair products of one
 * output column per instruction. An output is the sum of its row's G lanes. The plain bf16
 * weight is read once, as in the float32 loop (next group prefetched into L2).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

enum { LANES = 16, COLS = 8 };

#define INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
/* dst[j][0..15] = sum_i xt[i][0..15] * w[j][i] for the first `cols` weight rows */
INLINE void f32_cols(const float* xt, const float* w, int64_t k, float* dst, const int cols) {
  const char* next = (const char*)(w + cols * k);  /* the next group's rows, read after these */
  __m512 acc[COLS][2];
  for (int j = 0; j < cols; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= k; i += 2) {
    _mm_prefetch(next + i * cols * (int64_t)sizeof(float), _MM_HINT_T1);
    const __m512 x0 = _mm512_load_ps(xt + i * LANES), x1 = _mm512_load_ps(xt + (i + 1) * LANES);
    for (int j = 0; j < cols; ++j) {
      acc[j][0] = _mm512_fmadd_ps(x0, _mm512_set1_ps(w[j * k + i]), acc[j][0]);
      acc[j][1] = _mm512_fmadd_ps(x1, _mm512_set1_ps(w[j * k + i + 1]), acc[j][1]);
    }
  }
  for (; i < k; ++i) {
    const __m512 x0 = _mm512_load_ps(xt + i * LANES);
    for (int j = 0; j < cols; ++j)
      acc[j][0] = _mm512_fmadd_ps(x0, _mm512_set1_ps(w[j * k + i]), acc[j][0]);
  }
  for (int j = 0; j < cols; ++j)
    _mm512_store_ps(dst + j * LANES, _mm512_add_ps(acc[j][0], acc[j][1]));
}
#elif defined(__AVX2__)
/* the two halves of the 16 lanes are the two accumulators of each weight row */
INLINE void f32_cols(const float* xt, const float* w, int64_t k, float* dst, const int cols) {
  __m256 acc[COLS][2];
  for (int j = 0; j < cols; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    const __m256 lo = _mm256_load_ps(xt + i * LANES), hi = _mm256_load_ps(xt + i * LANES + 8);
    for (int j = 0; j < cols; ++j) {
      const __m256 wv = _mm256_broadcast_ss(w + j * k + i);
      acc[j][0] = _mm256_fmadd_ps(lo, wv, acc[j][0]);
      acc[j][1] = _mm256_fmadd_ps(hi, wv, acc[j][1]);
    }
  }
  for (int j = 0; j < cols; ++j) {
    _mm256_store_ps(dst + j * LANES, acc[j][0]);
    _mm256_store_ps(dst + j * LANES + 8, acc[j][1]);
  }
}
#else
INLINE void f32_cols(const float* xt, const float* w, int64_t k, float* dst, const int cols) {
  for (int j = 0; j < cols; ++j) {
    float lanes[LANES] = {0.f};
    for (int64_t i = 0; i < k; ++i)
      for (int l = 0; l < LANES; ++l) lanes[l] += xt[i * LANES + l] * w[j * k + i];
    memcpy(dst + j * LANES, lanes, sizeof lanes);
  }
}
#endif

/* Weight rows [row, row + cols) against every input row, written into out's columns. */
static void f32_col_group(const float* xt, const float* w, const float* bias, float* out,
                          int64_t row, int cols, int64_t m, int64_t n, int64_t k) {
  _Alignas(64) float dst[COLS * LANES];
  if (cols == COLS)
    f32_cols(xt, w + row * k, k, dst, COLS);
  else
    for (int j = 0; j < cols; ++j) f32_cols(xt, w + (row + j) * k, k, dst + j * LANES, 1);
  for (int j = 0; j < cols; ++j) {
    const float b = bias ? bias[row + j] : 0.f;
    for (int64_t r = 0; r < m; ++r) out[r * n + row + j] = dst[j * LANES + r] + b;
  }
}

/* out [m, n] = x [m, k] . w [n, k]^T + bias [n] (bias may be NULL), m <= 16; all contiguous.
 * Returns 0, or -1 when m is out of range or the transposed input cannot be allocated. */
int ip_linear_cols_f32(const float* x, const float* w, const float* bias, float* out, int64_t m,
                       int64_t n, int64_t k, int threads) {
  if (m < 1 || m > LANES) return -1;
  float* xt = aligned_alloc(64, (size_t)k * LANES * sizeof(float));
  if (!xt) return -1;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t r = 0; r < LANES; ++r) xt[i * LANES + r] = r < m ? x[r * k + i] : 0.f;
  const int64_t groups = (n + COLS - 1) / COLS;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && groups > 1)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t row = g * COLS;
    const int cols = n - row < COLS ? (int)(n - row) : COLS;
    f32_col_group(xt, w, bias, out, row, cols, m, n, k);
  }
  free(xt);
  return 0;
}

/* ---- bfloat16: R rows x G pairs of k across the 16 lanes (AVX512_BF16 builds) ----------- */

#if defined(__AVX512BF16__)
enum { CHUNK_BF16 = 32 }; /* bf16 values in one chunk of xt: R rows x 2G values */

/* the 2G weights at p, repeated for each of the R rows' lane groups */
INLINE __m512bh bf16_bcast(const bf16* p, const int g) {
  if (g == 1) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return (__m512bh)_mm512_set1_epi32(v);
  }
  if (g == 2) {
    long long v;
    memcpy(&v, p, sizeof v);
    return (__m512bh)_mm512_set1_epi64(v);
  }
  return (__m512bh)_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)(const void*)p));
}

/* dst[j][lane] = the lanes' partial sums for the first `cols` weight rows, over the whole
 * chunks of k (the k % 2G values past them are bf16_cols_tail's) */
INLINE void bf16_cols(const bf16* xt, const bf16* w, int64_t k, float* dst, const int cols,
                      const int g) {
  const int64_t step = 2 * g, chunks = k / step;
  const char* next = (const char*)(w + cols * k);
  const int64_t lines = cols * g / 8 > 0 ? cols * g / 8 : 1; /* next group's lines a pair */
  __m512 acc[COLS][2];
  for (int j = 0; j < cols; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 2 <= chunks; c += 2) {
    for (int64_t l = 0; l < lines; ++l)
      _mm_prefetch(next + (c * cols * step * 2 + l * 64), _MM_HINT_T1);
    const __m512bh x0 = (__m512bh)_mm512_load_si512(xt + c * CHUNK_BF16);
    const __m512bh x1 = (__m512bh)_mm512_load_si512(xt + (c + 1) * CHUNK_BF16);
    for (int j = 0; j < cols; ++j) {
      const bf16* wj = w + j * k + c * step;
      acc[j][0] = _mm512_dpbf16_ps(acc[j][0], x0, bf16_bcast(wj, g));
      acc[j][1] = _mm512_dpbf16_ps(acc[j][1], x1, bf16_bcast(wj + step, g));
    }
  }
  if (c < chunks) {
    const __m512bh x0 = (__m512bh)_mm512_load_si512(xt + c * CHUNK_BF16);
    for (int j = 0; j < cols; ++j)
      acc[j][0] = _mm512_dpbf16_ps(acc[j][0], x0, bf16_bcast(w + j * k + c * step, g));
  }
  for (int j = 0; j < cols; ++j)
    _mm512_store_ps(dst + j * LANES, _mm512_add_ps(acc[j][0], acc[j][1]));
}

/* One copy per (cols, g), so the loops over weight rows unroll. */
static void bf16_cols_any(const bf16* xt, const bf16* w, int64_t k, float* dst, int cols,
                          int g) {
#define BF16_COLS_G(cols_value)                                       \
  switch (g) {                                                        \
    case 1: bf16_cols(xt, w, k, dst, cols_value, 1); break;           \
    case 2: bf16_cols(xt, w, k, dst, cols_value, 2); break;           \
    default: bf16_cols(xt, w, k, dst, cols_value, 4); break;          \
  }
  if (cols == COLS) {
    BF16_COLS_G(COLS)
  } else {
    for (int j = 0; j < cols; ++j, w += k, dst += LANES) BF16_COLS_G(1)
  }
#undef BF16_COLS_G
}

/* Weight rows [row, row + cols) against every input row: each output the sum of its row's
 * G lanes, plus the k % 2G values the chunks leave, plus bias, rounded to bf16 once. */
static void bf16_col_group(const bf16* xt, const bf16* x, const bf16* w, const bf16* bias,
                           bf16* out, int64_t row, int cols, int g, int64_t m, int64_t n,
                           int64_t k) {
  _Alignas(64) float dst[COLS * LANES];
  bf16_cols_any(xt, w + row * k, k, dst, cols, g);
  for (int j = 0; j < cols; ++j) {
    const bf16* wj = w + (row + j) * k;
    const float b = bias ? bf16_to_f32(bias[row + j]) : 0.f;
    for (int64_t r = 0; r < m; ++r) {
      float s = 0.f;
      for (int l = 0; l < g; ++l) s += dst[j * LANES + r * g + l];
      for (int64_t i = k - k % (2 * g); i < k; ++i)
        s += bf16_to_f32(wj[i]) * bf16_to_f32(x[r * k + i]);
      out[r * n + row + j] = f32_to_bf16(s + b);
    }
  }
}

/* How many pairs of k a vector holds for m rows: the R = 16 / G rows cover m */
static int bf16_pairs(int64_t m) { return m <= 4 ? 4 : m <= 8 ? 2 : 1; }

/* out [m, n] = x [m, k] . w [n, k]^T + bias [n] (bias may be NULL), m <= 16, bfloat16, all
 * contiguous. Returns 0, or -1 when m is out of range or the chunks cannot be allocated. */
int ip_linear_cols_bf16(const bf16* x, const bf16* w, const bf16* bias, bf16* out, int64_t m,
                        int64_t n, int64_t k, int threads) {
  if (m < 1 || m > LANES) return -1;
  const int g = bf16_pairs(m);
  const int64_t step = 2 * g, chunks = k / step, rows = LANES / g;
  bf16* xt = aligned_alloc(64, (size_t)(chunks > 0 ? chunks : 1) * CHUNK_BF16 * sizeof(bf16));
  if (!xt) return -1;
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t r = 0; r < rows; ++r) {
      bf16* dst = xt + c * CHUNK_BF16 + r * step;
      if (r < m)
        memcpy(dst, x + r * k + c * step, (size_t)step * sizeof(bf16));
      else
        memset(dst, 0, (size_t)step * sizeof(bf16));
    }
  const int64_t groups = (n + COLS - 1) / COLS;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && groups > 1)
  for (int64_t grp = 0; grp < groups; ++grp) {
    const int64_t row = grp * COLS;
    const int cols = n - row < COLS ? (int)(n - row) : COLS;
    bf16_col_group(xt, x, w, bias, out, row, cols, g, m, n, k);
  }
  free(xt);
  return 0;
}
#else
/* Builds without AVX512_BF16 have no bfloat16 column kernel (see StreamLinear's COLS_ROWS). */
int ip_linear_cols_bf16(const bf16* x, const bf16* w, const bf16* bias, bf16* out, int64_t m,
                        int64_t n, int64_t k, int threads) {
  (void)x, (void)w, (void)bias, (void)out, (void)m, (void)n, (void)k, (void)threads;
  return -1;
}
#endif
