/*
 * The weight-streaming linear for int8 weights (weight-only quantization, one float32 scale
 * per output row; see quant.py) and decode-shaped float32 inputs: out[M, N] =
 * (x[M, K] q[N, K]^T) * scale[N] (+ bias), for a few rows of x (M = 1..16).
 *
 * As in linear.c each weight row is read once for all M input rows (M_TILE at a time) and
 * summed in float32; the row's scale multiplies its sums once at the end, so the result is
 * the dequantized product up to float32 summation order. int8 values widen exactly to
 * float32 (sign extension, then a conversion), which costs a few instructions per 16 weights
 * against a quarter of float32's bytes: at decode's few rows the product stays bound by
 * reading the weight. AVX-512F, AVX2 (with FMA) or plain C; the build target decides.
 * Output rows are split over OpenMP threads, `threads` at most.
 */
#include <stdint.h>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

enum { I8_M_TILE = 8 };

#define INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
enum { I8_STEP = 32 };

INLINE __m512 i8_widen16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
}

/* sums[m] = q . x[m] for one weight row, two accumulators per input row */
INLINE void i8_row(const float* x, const int8_t* w, float* sums, const int m_rows, int64_t k) {
  __m512 acc[I8_M_TILE][2];
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
  for (int64_t i = 0; i + I8_STEP <= k; i += I8_STEP) {
    const __m512 w0 = i8_widen16(w + i), w1 = i8_widen16(w + i + 16);
    for (int m = 0; m < m_rows; ++m) {
      const float* xm = x + m * k + i;
      acc[m][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xm), acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xm + 16), acc[m][1]);
    }
  }
  for (int m = 0; m < m_rows; ++m)
    sums[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
}
#elif defined(__AVX2__)
enum { I8_STEP = 16 };

INLINE __m256 i8_widen8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
}

INLINE float i8_sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

INLINE void i8_row(const float* x, const int8_t* w, float* sums, const int m_rows, int64_t k) {
  __m256 acc[I8_M_TILE][2];
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  for (int64_t i = 0; i + I8_STEP <= k; i += I8_STEP) {
    const __m256 w0 = i8_widen8(w + i), w1 = i8_widen8(w + i + 8);
    for (int m = 0; m < m_rows; ++m) {
      const float* xm = x + m * k + i;
      acc[m][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xm), acc[m][0]);
      acc[m][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xm + 8), acc[m][1]);
    }
  }
  for (int m = 0; m < m_rows; ++m) sums[m] = i8_sum8(_mm256_add_ps(acc[m][0], acc[m][1]));
}
#else
enum { I8_STEP = 16 };

INLINE void i8_row(const float* x, const int8_t* w, float* sums, const int m_rows, int64_t k) {
  for (int m = 0; m < m_rows; ++m) {
    float lanes[I8_STEP] = {0.f};
    for (int64_t i = 0; i + I8_STEP <= k; i += I8_STEP)
      for (int l = 0; l < I8_STEP; ++l) lanes[l] += (float)w[i + l] * x[m * k + i + l];
    float s = 0.f;
    for (int l = 0; l < I8_STEP; ++l) s += lanes[l];
    sums[m] = s;
  }
}
#endif

/* One copy per input-row count, so the loops over rows unroll; then the k % I8_STEP tail. */
static void i8_tile(const float* x, const int8_t* w, float* sums, int m_rows, int64_t k) {
  switch (m_rows) {
    case 1: i8_row(x, w, sums, 1, k); break;
    case 2: i8_row(x, w, sums, 2, k); break;
    case 3: i8_row(x, w, sums, 3, k); break;
    case 4: i8_row(x, w, sums, 4, k); break;
    case 5: i8_row(x, w, sums, 5, k); break;
    case 6: i8_row(x, w, sums, 6, k); break;
    case 7: i8_row(x, w, sums, 7, k); break;
    default: i8_row(x, w, sums, I8_M_TILE, k); break;
  }
  for (int64_t i = k - k % I8_STEP; i < k; ++i)
    for (int m = 0; m < m_rows; ++m) sums[m] += (float)w[i] * x[m * k + i];
}

static void i8_out_row(const float* x, const int8_t* w, const float* scale, const float* bias,
                       float* out, int64_t row, int64_t m_total, int64_t n, int64_t k) {
  const int8_t* wr = w + row * k;
  const float s = scale[row], b = bias ? bias[row] : 0.f;
  float sums[I8_M_TILE];
  for (int64_t m0 = 0; m0 < m_total; m0 += I8_M_TILE) {
    const int64_t m_rows = m_total - m0 < I8_M_TILE ? m_total - m0 : I8_M_TILE;
    i8_tile(x + m0 * k, wr, sums, (int)m_rows, k);
    for (int64_t m = 0; m < m_rows; ++m) out[(m0 + m) * n + row] = sums[m] * s + b;
  }
}

/* out [m, n] = (x [m, k] . w [n, k]^T) * scale [n] + bias [n] (bias may be NULL); w int8,
 * the rest float32; all contiguous */
void ip_linear_i8_f32(const float* x, const int8_t* w, const float* scale, const float* bias,
                      float* out, int64_t m, int64_t n, int64_t k, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t row = 0; row < n; ++row) i8_out_row(x, w, scale, bias, out, row, m, n, k);
}
