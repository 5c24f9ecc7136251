/*
 * The weight-streaming linear for int8 weights (weight-only quantization, one float32 scale
 * per output row; see quant.py) and decode-shaped float32 inputs: out[M, N] =
 * (x[M, K] q[N, K]^T) * scale[N] (+ bias), for a few rows of x (M = 1..16).
 *
 * As in linear.c each weight row is read once for all M input rows (M_TILE at a time) and
 * summed in float32; the row's scale multiplies its sums once at the end. Two ways:
 * - quantized input (x86-64-v3 and up, K a multiple of Q_STEP): as llama.cpp's q8_0 does,
 *   each input row is first rounded to int8 per block of 32 values (scale max|x| / 127), and
 *   int8 pairs are multiplied and summed in integers, each block's int32 sums meeting its
 *   scale in one FMA: vpdpbusd (4 products a lane) on the AVX512_VNNI build, vpmaddubsw +
 *   vpmaddwd on AVX2 (and the AVX-512 build without VNNI). Each input value moves by at most
 *   half its block's step, an error the tests bound exactly. Measured against the exact path
 *   below on 106 MB of SmolLM2's int8 layers at one row, one Zen 4 thread, interleaved:
 *   VNNI 8.2 -> 7.1 ms (1.15x; inside the engine's decode step 7.5 -> 6.9 ms, the decode
 *   logits' cosine to the exact path's at least 0.9998, the same greedy token 60 of 60);
 *   AVX2 build 8.5 -> 7.4 ms (1.16x, every round faster; 1.05x at 4 rows); AVX-512 build
 *   7.6 -> 6.8 ms (1.12x; 1.28x at 4 rows).
 * - exact (plain C, and other widths): int8 values widen exactly to float32 (sign extension,
 *   then a conversion) and meet x in FMAs, so the result is the dequantized product up to
 *   float32 summation order.
 * The build target decides which compiles. Output rows are split over OpenMP threads,
 * `threads` at most.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "stream.h"

/* The quantized-input path's step (weights a vector takes), 0 where it is not built */
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define Q_STEP 64
#elif defined(__AVX2__)
#define Q_STEP 32
#else
#define Q_STEP 0
#endif

/* int8 weights widen exactly: sign extension to int32, then a conversion */
#if defined(__AVX512F__)
INLINE __m512 i8_widen16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
}
#elif defined(__AVX2__)
INLINE __m256 i8_widen8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
}
#endif
#define I8_VALUE(v) ((float)(v))
FLOAT_ROW(i8_row, int8_t, i8_widen16, i8_widen8, I8_VALUE)

static void i8_tile(const float* x, const int8_t* w, float* sums, int m_rows, int64_t k) {
#define I8_ROW(rows) i8_row(x, w, sums, rows, k)
  STREAM_TILE(m_rows, I8_ROW)
#undef I8_ROW
  i8_row_tail(x, w, sums, m_rows, k);
}

static void i8_out_row(const float* x, const int8_t* w, const float* scale, const float* bias,
                       float* out, int64_t row, int64_t m_total, int64_t n, int64_t k) {
  const int8_t* wr = w + row * k;
  const float s = scale[row], b = bias ? bias[row] : 0.f;
  float sums[M_TILE];
  for (int64_t m0 = 0; m0 < m_total; m0 += M_TILE) {
    const int m_rows = tile_rows(m_total, m0);
    i8_tile(x + m0 * k, wr, sums, m_rows, k);
    for (int m = 0; m < m_rows; ++m) out[(m0 + m) * n + row] = sums[m] * s + b;
  }
}

#if Q_STEP
enum { Q_BLOCK = 32 };

/* xq [m][k] = x rounded to int8 per block of Q_BLOCK values; lane_scale [m][k / 4] = the
 * block scale of each int32 lane of the dot products (4 consecutive values a lane) */
static void quantize_rows(const float* x, int8_t* xq, float* lane_scale, int64_t m, int64_t k) {
  for (int64_t b = 0; b < m * k / Q_BLOCK; ++b) {
    const float* xb = x + b * Q_BLOCK;
    float top = 0.f;
    for (int i = 0; i < Q_BLOCK; ++i) top = fmaxf(top, fabsf(xb[i]));
    const float step = top / 127.f, inverse = step > 0.f ? 1.f / step : 0.f;
    for (int i = 0; i < Q_BLOCK; ++i) xq[b * Q_BLOCK + i] = (int8_t)lrintf(xb[i] * inverse);
    for (int l = 0; l < Q_BLOCK / 4; ++l) lane_scale[b * (Q_BLOCK / 4) + l] = step;
  }
}
#endif

#if Q_STEP == 64
/* sums[m] = q . xq[m] (scaled per block) for one weight row. vpdpbusd multiplies unsigned by
 * signed bytes: |q| goes unsigned and x takes q's sign (neither is -128, so no overflow). */
INLINE void q_row(const int8_t* xq, const float* lane_scale, const int8_t* w, float* sums,
                  const int m_rows, int64_t k) {
  __m512 acc[M_TILE];
  for (int m = 0; m < m_rows; ++m) acc[m] = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t i = 0; i < k; i += Q_STEP) {
    const __m512i wv = _mm512_loadu_si512(w + i);
    const __m512i magnitude = _mm512_abs_epi8(wv);
    const __mmask64 negative = _mm512_movepi8_mask(wv);
    for (int m = 0; m < m_rows; ++m) {
      const __m512i xv = _mm512_loadu_si512(xq + m * k + i);
      const __m512i signed_x = _mm512_mask_sub_epi8(xv, negative, zero, xv);
      const __m512i dot = _mm512_dpbusd_epi32(zero, magnitude, signed_x);
      const __m512 scales = _mm512_loadu_ps(lane_scale + (m * k + i) / 4);
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scales, acc[m]);
    }
  }
  for (int m = 0; m < m_rows; ++m) sums[m] = _mm512_reduce_add_ps(acc[m]);
}
#elif Q_STEP == 32
/* The same with AVX2: vpmaddubsw multiplies |q| (unsigned) by x with q's sign (vpsignb) into
 * pairs of int16 (at most 2 * 127 * 127, so never saturating), vpmaddwd sums the pairs into
 * int32 lanes; 32 values, one block, a step. */
INLINE void q_row(const int8_t* xq, const float* lane_scale, const int8_t* w, float* sums,
                  const int m_rows, int64_t k) {
  __m256 acc[M_TILE];
  for (int m = 0; m < m_rows; ++m) acc[m] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < k; i += Q_STEP) {
    const __m256i wv = _mm256_loadu_si256((const __m256i*)(w + i));
    const __m256i magnitude = _mm256_sign_epi8(wv, wv);
    for (int m = 0; m < m_rows; ++m) {
      const __m256i xv = _mm256_loadu_si256((const __m256i*)(xq + m * k + i));
      const __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(xv, wv));
      const __m256i dot = _mm256_madd_epi16(pairs, ones);
      const __m256 scales = _mm256_loadu_ps(lane_scale + (m * k + i) / 4);
      acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scales, acc[m]);
    }
  }
  for (int m = 0; m < m_rows; ++m) sums[m] = hsum8(acc[m]);
}
#endif

#if Q_STEP
static void q_tile(const int8_t* xq, const float* ls, const int8_t* w, float* sums, int m_rows,
                   int64_t k) {
#define Q_ROW(rows) q_row(xq, ls, w, sums, rows, k)
  STREAM_TILE(m_rows, Q_ROW)
#undef Q_ROW
}

static void q_out_row(const int8_t* xq, const float* ls, const int8_t* w, const float* scale,
                      const float* bias, float* out, int64_t row, int64_t m_total, int64_t n,
                      int64_t k) {
  const float s = scale[row], b = bias ? bias[row] : 0.f;
  float sums[M_TILE];
  for (int64_t m0 = 0; m0 < m_total; m0 += M_TILE) {
    const int m_rows = tile_rows(m_total, m0);
    q_tile(xq + m0 * k, ls + m0 * k / 4, w + row * k, sums, m_rows, k);
    for (int m = 0; m < m_rows; ++m) out[(m0 + m) * n + row] = sums[m] * s + b;
  }
}

/* The quantized-input path over every output row; -1 where its scratch cannot be allocated. */
static int q_linear(const float* x, const int8_t* w, const float* scale, const float* bias,
                    float* out, int64_t m, int64_t n, int64_t k, int threads) {
  int8_t* xq = malloc((size_t)(m * k));
  float* lane_scale = malloc((size_t)(m * k / 4) * sizeof(float));
  if (!xq || !lane_scale) {
    free(xq);
    free(lane_scale);
    return -1;
  }
  quantize_rows(x, xq, lane_scale, m, k);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t row = 0; row < n; ++row)
    q_out_row(xq, lane_scale, w, scale, bias, out, row, m, n, k);
  free(xq);
  free(lane_scale);
  return 0;
}
#endif

/* 1 where ip_linear_i8_f32 quantizes the input rows (the VNNI or AVX2 path) for this width k,
 * 0 where it computes the dequantized product exactly (up to float32 summation order) */
int ip_linear_i8_quantizes_input(int64_t k) { return Q_STEP && k % (Q_STEP ? Q_STEP : 1) == 0; }

/* out [m, n] = (x [m, k] . w [n, k]^T) * scale [n] + bias [n] (bias may be NULL); w int8,
 * the rest float32; all contiguous. Returns 0, or -1 when a scratch cannot be allocated. */
int ip_linear_i8_f32(const float* x, const int8_t* w, const float* scale, const float* bias,
                     float* out, int64_t m, int64_t n, int64_t k, int threads) {
#if Q_STEP
  if (k % Q_STEP == 0) return q_linear(x, w, scale, bias, out, m, n, k, threads);
#endif
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t row = 0; row < n; ++row) i8_out_row(x, w, scale, bias, out, row, m, n, k);
  return 0;
}
