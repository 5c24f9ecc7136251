/*
 * The weight-streaming linear for float16 weights and activations, for decode-shaped inputs:
 * out[M, N] = x[M, K] W[N, K]^T (+ bias) for a few rows of x (M = 1..16), as linear.c does it
 * for bfloat16 and float32: each weight row is read once for all M input rows (M_TILE of them
 * at a time), sums in float32, the output rounded to float16 once.
 *
 * The input rows are widened to float32 once per call (a scratch of M * K floats), so the
 * inner loop converts only the weight: vcvtph2ps on 16 values (AVX-512F) or 8 (AVX2 with
 * F16C), then FMA; plain C converts in software (common.h). The AVX-512 loop takes 64 weights
 * (one 128-byte line pair) a step: against 32, SmolLM2's 212 MB of float16 layers at one row
 * on one Zen 4 thread, ten interleaved rounds: 12.7 -> 11.8 ms (1.07x, every round faster).
 * The AVX2 and plain C loops are stream.h's, the ones float32 and int8 weights run. Output
 * rows are split over OpenMP threads, `threads` at most.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common.h"
#include "stream.h"

#if defined(__AVX512F__)
enum { F16_STEP = 64 };

INLINE __m512 f16_widen16(const f16* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(const void*)p));
}

/* sums[m] = w . xf[m] for one weight row, two accumulators per input row */
INLINE void f16_row(const float* xf, const f16* w, float* sums, const int m_rows, int64_t k) {
  __m512 acc[M_TILE][2];
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
  for (int64_t i = 0; i + F16_STEP <= k; i += F16_STEP) {
    const __m512 w0 = f16_widen16(w + i), w1 = f16_widen16(w + i + 16);
    const __m512 w2 = f16_widen16(w + i + 32), w3 = f16_widen16(w + i + 48);
    for (int m = 0; m < m_rows; ++m) {
      const float* xm = xf + m * k + i;
      acc[m][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xm), acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xm + 16), acc[m][1]);
      acc[m][0] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(xm + 32), acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(xm + 48), acc[m][1]);
    }
  }
  for (int m = 0; m < m_rows; ++m)
    sums[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
}

FLOAT_ROW_TAIL(f16_row_tail, f16, F16_STEP, f16_to_f32)
#else
#if defined(__AVX2__) && defined(__F16C__)
INLINE __m256 f16_widen8(const f16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(const void*)p));
}
#elif defined(__AVX2__) /* without F16C (no x86-64 level builds this): C conversions */
INLINE __m256 f16_widen8(const f16* p) {
  return _mm256_setr_ps(f16_to_f32(p[0]), f16_to_f32(p[1]), f16_to_f32(p[2]), f16_to_f32(p[3]),
                        f16_to_f32(p[4]), f16_to_f32(p[5]), f16_to_f32(p[6]), f16_to_f32(p[7]));
}
#endif
/* AVX2 and plain C: the float32-input row every streaming width shares (stream.h) */
FLOAT_ROW(f16_row, f16, f16_widen16, f16_widen8, f16_to_f32)
#endif

/* One copy per input-row count, so the loops over rows unroll; then the tail. */
static void f16_tile(const float* xf, const f16* w, float* sums, int m_rows, int64_t k) {
#define F16_ROW(rows) f16_row(xf, w, sums, rows, k)
  STREAM_TILE(m_rows, F16_ROW)
#undef F16_ROW
  f16_row_tail(xf, w, sums, m_rows, k);
}

static void f16_out_row(const float* xf, const f16* w, const f16* bias, f16* out, int64_t row,
                        int64_t m_total, int64_t n, int64_t k) {
  const f16* wr = w + row * k;
  const float b = bias ? f16_to_f32(bias[row]) : 0.f;
  float sums[M_TILE];
  for (int64_t m0 = 0; m0 < m_total; m0 += M_TILE) {
    const int m_rows = tile_rows(m_total, m0);
    f16_tile(xf + m0 * k, wr, sums, m_rows, k);
    for (int m = 0; m < m_rows; ++m) out[(m0 + m) * n + row] = f32_to_f16(sums[m] + b);
  }
}

/* out [m, n] = x [m, k] . w [n, k]^T + bias [n] (bias may be NULL), all float16 and
 * contiguous. Returns 0, or -1 when the widened input cannot be allocated. */
int ip_linear_f16(const f16* x, const f16* w, const f16* bias, f16* out, int64_t m, int64_t n,
                  int64_t k, int threads) {
  float* xf = malloc((size_t)(m * k) * sizeof(float));
  if (!xf) return -1;
  for (int64_t i = 0; i < m * k; ++i) xf[i] = f16_to_f32(x[i]);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t row = 0; row < n; ++row) f16_out_row(xf, w, bias, out, row, m, n, k);
  free(xf);
  return 0;
}
