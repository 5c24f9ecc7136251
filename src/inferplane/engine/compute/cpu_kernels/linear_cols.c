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
 * at all). A group's 8 x 16 sums then go to out's rows transposed in registers (AVX-512):
 * 47.7 -> 42.5 ms at 16 rows against a scalar loop (1.12x, eight interleaved rounds, load 1.7;
 * the same bits). Weight rows are split over OpenMP threads.
 * AVX-512F, AVX2 (16 lanes as two registers) or plain C; the build target decides.
 *
 * bfloat16 (ip_linear_cols_bf16, AVX512_BF16 builds only): vdpbf16ps takes a pair of bf16 per
 * lane, so a vector holds 4 input rows x 8 values of k (4 pairs each), and a weight row's 8
 * values at that k, broadcast to the 4 rows' lane groups (one 16-byte load), meet up to 4
 * such vectors (16 rows): one broadcast for up to 4 products, no more than 3 rows of lanes
 * left empty, and an output the sum of its row's 4 lanes. Against one vector of 16 rows x 1
 * pair (a 4-byte broadcast per product) or 8 x 2: 1.05-1.08x over SmolLM2's 121 products at
 * 3-16 rows, 1.31x at 12 (one Zen 4 thread, interleaved, nine rounds, load 1.2-1.4). A full
 * group's outputs are then finished in registers (4 accumulators' lane sums in 6 shuffles and
 * adds, bias, rounding, one 8-byte store a row), where a scalar loop over the stored lanes
 * cost as much as a fifth of the products: 31.7 -> 26.5 ms at 16 rows (1.20x), 1.07x at 4.
 * The plain bf16 weight is read once, the next group of rows prefetched into L2 as above.
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

#if defined(__AVX512F__)
/* The 4 rows of 128-bit lanes of x: lane L to rows[L] (L a constant, as the extract needs) */
static inline void lanes4(__m512 x, __m128 rows[4]) {
  rows[0] = _mm512_castps512_ps128(x);
  rows[1] = _mm512_extractf32x4_ps(x, 1);
  rows[2] = _mm512_extractf32x4_ps(x, 2);
  rows[3] = _mm512_extractf32x4_ps(x, 3);
}

/* out[r][row .. row + 8) = dst[j][r] + bias[row + j] for r < m: the 8 x 16 sums transposed in
 * registers (unpack, then shuffle within 128-bit lanes: lane L of the q-th result holds input
 * row 4L + q), where a scalar loop over them cost about a tenth of the products at 16 rows */
static void f32_finish8(const float* dst, const float* bias, float* out, int64_t row, int64_t m,
                        int64_t n) {
  for (int h = 0; h < COLS; h += 4) { /* weight rows row + h .. row + h + 3 */
    const __m512 v0 = _mm512_load_ps(dst + h * LANES), v1 = _mm512_load_ps(dst + (h + 1) * LANES);
    const __m512 v2 = _mm512_load_ps(dst + (h + 2) * LANES);
    const __m512 v3 = _mm512_load_ps(dst + (h + 3) * LANES);
    const __m512 t0 = _mm512_unpacklo_ps(v0, v1), t1 = _mm512_unpackhi_ps(v0, v1);
    const __m512 t2 = _mm512_unpacklo_ps(v2, v3), t3 = _mm512_unpackhi_ps(v2, v3);
    const __m512 b =
        bias ? _mm512_broadcast_f32x4(_mm_loadu_ps(bias + row + h)) : _mm512_setzero_ps();
    const __m512 q[4] = {_mm512_add_ps(_mm512_shuffle_ps(t0, t2, 0x44), b),
                         _mm512_add_ps(_mm512_shuffle_ps(t0, t2, 0xEE), b),
                         _mm512_add_ps(_mm512_shuffle_ps(t1, t3, 0x44), b),
                         _mm512_add_ps(_mm512_shuffle_ps(t1, t3, 0xEE), b)};
    for (int i = 0; i < 4; ++i) {
      __m128 rows[4];
      lanes4(q[i], rows);
      for (int lane = 0; lane < 4 && 4 * lane + i < m; ++lane)
        _mm_storeu_ps(out + (4 * lane + i) * n + row + h, rows[lane]);
    }
  }
}
#endif

/* Weight rows [row, row + cols) against every input row, written into out's columns. */
static void f32_col_group(const float* xt, const float* w, const float* bias, float* out,
                          int64_t row, int cols, int64_t m, int64_t n, int64_t k) {
  _Alignas(64) float dst[COLS * LANES];
  if (cols == COLS) {
    f32_cols(xt, w + row * k, k, dst, COLS);
#if defined(__AVX512F__)
    f32_finish8(dst, bias, out, row, m, n);
    return;
#endif
  } else {
    for (int j = 0; j < cols; ++j) f32_cols(xt, w + (row + j) * k, k, dst + j * LANES, 1);
  }
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

/* ---- bfloat16: 4 rows x 4 pairs of k a vector, up to 4 such vectors (AVX512_BF16) -------- */

#if defined(__AVX512BF16__)
/* xt: for each chunk of 8 values of k, `passes` vectors of 4 input rows x those 8 values
 * (64 bytes each); a weight row's 8 values there, broadcast to the 4 rows' lane groups, meet
 * every vector of the chunk: one 16-byte broadcast for up to 4 products. */
enum { KC = 8, BF16_COLS = 8, MAX_PASSES = 4 };

/* Weight rows side by side: 8 for up to 2 passes, 4 for more (16 accumulators either way, so
 * one or two passes still have enough independent sums in flight) */
static int bf16_cols_for(int passes) { return passes <= 2 ? BF16_COLS : BF16_COLS / 2; }

INLINE __m512bh bcast8(const bf16* p) {
  return (__m512bh)_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)(const void*)p));
}

/* Where a group's outputs go when they are finished in registers: out [m, n], weight rows
 * from `row`, bias [n] or NULL */
typedef struct {
  bf16* out;
  const bf16* bias;
  int64_t row, m, n;
} bf16_sink;

/* The sums of 4 weight rows' accumulators (one pass): lane group r of the result holds input
 * row r's 4 outputs, in weight row order (each the sum of that row's 4 lanes) */
INLINE __m512 sum4x4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  return _mm512_add_ps(_mm512_shuffle_ps(s01, s23, 0x44), _mm512_shuffle_ps(s01, s23, 0xEE));
}

/* 16 float32 to bf16 rounded as f32_to_bf16 rounds (nearest even, NaN kept a quiet NaN) */
INLINE __m256i round16_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

/* Input rows 4p .. 4p + 3 (those under m) against weight rows j0 .. j0 + 3 of the sink's
 * group: sums (sum4x4's layout) plus bias, rounded, stored as 4 bf16 a row */
INLINE void bf16_finish(__m512 sums, const bf16_sink* sink, int j0, int p) {
  const int64_t col = sink->row + j0;
  if (sink->bias) {
    int64_t raw;
    memcpy(&raw, sink->bias + col, sizeof raw);
    const __m128i wide = _mm_slli_epi32(_mm_cvtepu16_epi32(_mm_cvtsi64_si128(raw)), 16);
    sums = _mm512_add_ps(sums, _mm512_broadcast_f32x4(_mm_castsi128_ps(wide)));
  }
  bf16 rounded[16];
  _mm256_storeu_si256((__m256i*)(void*)rounded, round16_bf16(sums));
  for (int r = 0; r < 4 && 4 * p + r < sink->m; ++r)
    memcpy(sink->out + (4 * p + r) * sink->n + col, rounded + 4 * r, 4 * sizeof(bf16));
}

/* The first `cols` weight rows against every pass, over the whole chunks of k: finished in
 * registers into the sink where it is given (cols a multiple of 4, k of 8), else the lanes'
 * partial sums into dst[j][p][lane] (the k % 8 values past the chunks are the caller's) */
INLINE void bf16_cols(const bf16* xt, const bf16* w, int64_t k, float* dst, const int cols,
                      const int passes, const bf16_sink* sink) {
  const int64_t chunks = k / KC;
  const char* next = (const char*)(w + cols * k);
  __m512 acc[BF16_COLS][MAX_PASSES];
  for (int j = 0; j < cols; ++j)
    for (int p = 0; p < passes; ++p) acc[j][p] = _mm512_setzero_ps();
  for (int64_t c = 0; c < chunks; ++c) {
    if (cols > 1) /* the next group's cols x 16 bytes of this chunk: one or two lines */
      for (int line = 0; line < cols / 4; ++line)
        _mm_prefetch(next + c * cols * KC * 2 + line * 64, _MM_HINT_T1);
    __m512bh xv[MAX_PASSES];
    for (int p = 0; p < passes; ++p)
      xv[p] = (__m512bh)_mm512_load_si512(xt + (c * passes + p) * 32);
    for (int j = 0; j < cols; ++j) {
      const __m512bh wv = bcast8(w + j * k + c * KC);
      for (int p = 0; p < passes; ++p) acc[j][p] = _mm512_dpbf16_ps(acc[j][p], xv[p], wv);
    }
  }
  if (sink && cols % 4 == 0) {
    for (int j0 = 0; j0 < cols; j0 += 4)
      for (int p = 0; p < passes; ++p)
        bf16_finish(sum4x4(acc[j0][p], acc[j0 + 1][p], acc[j0 + 2][p], acc[j0 + 3][p]), sink,
                    j0, p);
    return;
  }
  for (int j = 0; j < cols; ++j)
    for (int p = 0; p < passes; ++p) _mm512_store_ps(dst + (j * MAX_PASSES + p) * LANES, acc[j][p]);
}

/* One copy per (cols, passes), so the loops unroll and the accumulators stay in registers. */
static void bf16_cols_any(const bf16* xt, const bf16* w, int64_t k, float* dst, int cols,
                          int passes, const bf16_sink* sink) {
#define BF16_COLS_P(cols_value, to)                                  \
  switch (passes) {                                                  \
    case 1: bf16_cols(xt, w, k, dst, cols_value, 1, to); break;      \
    case 2: bf16_cols(xt, w, k, dst, cols_value, 2, to); break;      \
    case 3: bf16_cols(xt, w, k, dst, cols_value, 3, to); break;      \
    default: bf16_cols(xt, w, k, dst, cols_value, 4, to); break;     \
  }
  if (cols == BF16_COLS && passes <= 2) {
    BF16_COLS_P(BF16_COLS, sink)
  } else if (cols == BF16_COLS / 2 && passes > 2) {
    BF16_COLS_P(BF16_COLS / 2, sink)
  } else {
    for (int j = 0; j < cols; ++j, w += k, dst += MAX_PASSES * LANES) BF16_COLS_P(1, NULL)
  }
#undef BF16_COLS_P
}

/* Weight rows [row, row + cols) against every input row. A full group with no k % 8 values
 * past the chunks is finished in registers; otherwise each output is the sum of its row's 4
 * lanes, plus those values, plus bias, rounded to bf16 once. */
static void bf16_col_group(const bf16* xt, const bf16* x, const bf16* w, const bf16* bias,
                           bf16* out, int64_t row, int cols, int64_t m, int64_t n, int64_t k) {
  _Alignas(64) float dst[BF16_COLS * MAX_PASSES * LANES];
  const int passes = (int)((m + 3) / 4);
  const bf16_sink sink = {out, bias, row, m, n};
  const int full = cols == bf16_cols_for(passes) && k % KC == 0;
  bf16_cols_any(xt, w + row * k, k, dst, cols, passes, full ? &sink : NULL);
  if (full) return;
  for (int j = 0; j < cols; ++j) {
    const bf16* wj = w + (row + j) * k;
    const float b = bias ? bf16_to_f32(bias[row + j]) : 0.f;
    for (int64_t r = 0; r < m; ++r) {
      const float* lanes = dst + (j * MAX_PASSES + r / 4) * LANES + (r % 4) * 4;
      float s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
      for (int64_t i = k - k % KC; i < k; ++i)
        s += bf16_to_f32(wj[i]) * bf16_to_f32(x[r * k + i]);
      out[r * n + row + j] = f32_to_bf16(s + b);
    }
  }
}

/* out [m, n] = x [m, k] . w [n, k]^T + bias [n] (bias may be NULL), m <= 16, bfloat16, all
 * contiguous. Returns 0, or -1 when m is out of range or the chunks cannot be allocated. */
int ip_linear_cols_bf16(const bf16* x, const bf16* w, const bf16* bias, bf16* out, int64_t m,
                        int64_t n, int64_t k, int threads) {
  if (m < 1 || m > LANES) return -1;
  const int64_t passes = (m + 3) / 4, chunks = k / KC;
  bf16* xt = aligned_alloc(64, (size_t)(chunks * passes + 1) * 32 * sizeof(bf16));
  if (!xt) return -1;
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t r = 0; r < passes * 4; ++r) {
      bf16* dst = xt + (c * passes + r / 4) * 32 + (r % 4) * KC;
      if (r < m)
        memcpy(dst, x + r * k + c * KC, KC * sizeof(bf16));
      else
        memset(dst, 0, KC * sizeof(bf16));
    }
  const int side = bf16_cols_for((int)passes);
  const int64_t groups = (n + side - 1) / side;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && groups > 1)
  for (int64_t grp = 0; grp < groups; ++grp) {
    const int64_t row = grp * side;
    const int cols = n - row < side ? (int)(n - row) : side;
    bf16_col_group(xt, x, w, bias, out, row, cols, m, n, k);
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
