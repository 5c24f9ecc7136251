/*
 * The weight-streaming linear for decode-shaped inputs: out[M, N] = x[M, K] W[N, K]^T (+ bias)
 * for a few rows of x (M = 1..16, one per sequence in the step). At such M the product is
 * bound by reading W, so each weight row is read from memory once for all M input rows (up to
 * M_TILE of them against the row in registers, the rest against it again from L1).
 * Accumulation is float32; a bfloat16 output is rounded once, as oneDNN's product rounds it.
 *
 * Rows are streamed one after another, in the plain row-major layout: one sequential stream
 * is what the hardware prefetcher follows best (measured on Zen 4, one thread: 20 GB/s, where
 * four rows read side by side, or oneDNN's blocked layout, get 10-12). The plain layout also
 * lets large-M products (prefill) run F.linear over the same memory; only where oneDNN packs
 * bfloat16 does the model keep its packed copy beside it (see models/layers.StreamLinear).
 * bfloat16 weights (ip_linear_bf16): AVX512_BF16 (vdpbf16ps on pairs of bf16), AVX-512F and
 * AVX2 (bf16 widened to f32 by a shift, then FMA), and plain C for the rest; float32 weights
 * (ip_linear_f32): AVX-512F, AVX2 or plain C FMA. The build target decides which compiles.
 * Output rows are split over OpenMP threads, `threads` at most.
 */
#include <stdint.h>

#include "common.h"
#include "stream.h"

/* ---- bfloat16 weights: sums[m] = w . x[m] for one weight row --------------------------- */
/* Two accumulators per input row, so M = 1 has two independent chains of products. */

#if defined(__AVX512BF16__)
enum { BF16_STEP = 64 };

INLINE void bf16_row(const bf16* x, const bf16* w, float* sums, const int m_rows, int64_t k) {
  __m512 acc[M_TILE][2];
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
  for (int64_t i = 0; i + BF16_STEP <= k; i += BF16_STEP) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w + i);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(w + i + 32);
    for (int m = 0; m < m_rows; ++m) {
      const bf16* xm = x + m * k + i;
      acc[m][0] = _mm512_dpbf16_ps(acc[m][0], w0, (__m512bh)_mm512_loadu_si512(xm));
      acc[m][1] = _mm512_dpbf16_ps(acc[m][1], w1, (__m512bh)_mm512_loadu_si512(xm + 32));
    }
  }
  for (int m = 0; m < m_rows; ++m)
    sums[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
}
#elif defined(__AVX512F__)
enum { BF16_STEP = 32 };

INLINE __m512 widen16(const bf16* p) {
  const __m256i raw = _mm256_loadu_si256((const __m256i*)p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

INLINE void bf16_row(const bf16* x, const bf16* w, float* sums, const int m_rows, int64_t k) {
  __m512 acc[M_TILE][2];
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
  for (int64_t i = 0; i + BF16_STEP <= k; i += BF16_STEP) {
    const __m512 w0 = widen16(w + i), w1 = widen16(w + i + 16);
    for (int m = 0; m < m_rows; ++m) {
      const bf16* xm = x + m * k + i;
      acc[m][0] = _mm512_fmadd_ps(w0, widen16(xm), acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(w1, widen16(xm + 16), acc[m][1]);
    }
  }
  for (int m = 0; m < m_rows; ++m)
    sums[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
}
#elif defined(__AVX2__)
enum { BF16_STEP = 16 };

INLINE __m256 widen8(const bf16* p) {
  const __m128i raw = _mm_loadu_si128((const __m128i*)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

INLINE void bf16_row(const bf16* x, const bf16* w, float* sums, const int m_rows, int64_t k) {
  __m256 acc[M_TILE][2];
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  for (int64_t i = 0; i + BF16_STEP <= k; i += BF16_STEP) {
    const __m256 w0 = widen8(w + i), w1 = widen8(w + i + 8);
    for (int m = 0; m < m_rows; ++m) {
      const bf16* xm = x + m * k + i;
      acc[m][0] = _mm256_fmadd_ps(w0, widen8(xm), acc[m][0]);
      acc[m][1] = _mm256_fmadd_ps(w1, widen8(xm + 8), acc[m][1]);
    }
  }
  for (int m = 0; m < m_rows; ++m) sums[m] = hsum8(_mm256_add_ps(acc[m][0], acc[m][1]));
}
#else
enum { BF16_STEP = 16 };

INLINE void bf16_row(const bf16* x, const bf16* w, float* sums, const int m_rows, int64_t k) {
  for (int m = 0; m < m_rows; ++m) {
    float lanes[BF16_STEP] = {0.f};
    for (int64_t i = 0; i + BF16_STEP <= k; i += BF16_STEP)
      for (int l = 0; l < BF16_STEP; ++l)
        lanes[l] += bf16_to_f32(w[i + l]) * bf16_to_f32(x[m * k + i + l]);
    float s = 0.f;
    for (int l = 0; l < BF16_STEP; ++l) s += lanes[l];
    sums[m] = s;
  }
}
#endif

/* The k % BF16_STEP values the vector loop leaves (none for the usual model widths). */
static void bf16_tail(const bf16* x, const bf16* w, float* sums, int m_rows, int64_t k) {
  for (int64_t i = k - k % BF16_STEP; i < k; ++i)
    for (int m = 0; m < m_rows; ++m) sums[m] += bf16_to_f32(w[i]) * bf16_to_f32(x[m * k + i]);
}

static void bf16_tile(const bf16* x, const bf16* w, float* sums, int m_rows, int64_t k) {
#define BF16_ROW(rows) bf16_row(x, w, sums, rows, k)
  STREAM_TILE(m_rows, BF16_ROW)
#undef BF16_ROW
  bf16_tail(x, w, sums, m_rows, k);
}

/* Output row `row` for every input row: m_total of them, M_TILE at a time. */
static void bf16_out_row(const bf16* x, const bf16* w, const bf16* bias, bf16* out, int64_t row,
                         int64_t m_total, int64_t n, int64_t k) {
  const bf16* wr = w + row * k;
  const float b = bias ? bf16_to_f32(bias[row]) : 0.f;
  float sums[M_TILE];
  for (int64_t m0 = 0; m0 < m_total; m0 += M_TILE) {
    const int m_rows = tile_rows(m_total, m0);
    bf16_tile(x + m0 * k, wr, sums, m_rows, k);
    for (int m = 0; m < m_rows; ++m) out[(m0 + m) * n + row] = f32_to_bf16(sums[m] + b);
  }
}

/* out [m, n] = x [m, k] . w [n, k]^T + bias [n] (bias may be NULL); all contiguous */
void ip_linear_bf16(const bf16* x, const bf16* w, const bf16* bias, bf16* out, int64_t m,
                    int64_t n, int64_t k, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t row = 0; row < n; ++row) bf16_out_row(x, w, bias, out, row, m, n, k);
}

/* ---- float32 weights: the same streaming, FMA on float32 rows ------------------------- */

/* float32 weights load as they are (the vector widths' plain loads) */
#define F32_VALUE(v) (v)
FLOAT_ROW(f32_row, float, _mm512_loadu_ps, _mm256_loadu_ps, F32_VALUE)

static void f32_tile(const float* x, const float* w, float* sums, int m_rows, int64_t k) {
#define F32_ROW(rows) f32_row(x, w, sums, rows, k)
  STREAM_TILE(m_rows, F32_ROW)
#undef F32_ROW
  f32_row_tail(x, w, sums, m_rows, k);
}

static void f32_out_row(const float* x, const float* w, const float* bias, float* out,
                        int64_t row, int64_t m_total, int64_t n, int64_t k) {
  const float* wr = w + row * k;
  const float b = bias ? bias[row] : 0.f;
  float sums[M_TILE];
  for (int64_t m0 = 0; m0 < m_total; m0 += M_TILE) {
    const int m_rows = tile_rows(m_total, m0);
    f32_tile(x + m0 * k, wr, sums, m_rows, k);
    for (int m = 0; m < m_rows; ++m) out[(m0 + m) * n + row] = sums[m] + b;
  }
}

/* out [m, n] = x [m, k] . w [n, k]^T + bias [n] (bias may be NULL); all contiguous */
void ip_linear_f32(const float* x, const float* w, const float* bias, float* out, int64_t m,
                   int64_t n, int64_t k, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t row = 0; row < n; ++row) f32_out_row(x, w, bias, out, row, m, n, k);
}
