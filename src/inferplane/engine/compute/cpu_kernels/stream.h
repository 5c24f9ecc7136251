/*
 * What the weight-streaming linears (linear.c, linear_f16.c, linear_int8.c) share: the tile of
 * input rows that meets one weight row in registers, the dispatch that gives each row count
 * its own unrolled copy, the 8-lane sum, and the row loop for float32 inputs against weights
 * that widen to float32 (float32 itself, float16, int8), written once for each ISA.
 */
#ifndef INFERPLANE_KERNELS_STREAM_H
#define INFERPLANE_KERNELS_STREAM_H

#include <stdint.h>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

/* Inlined into one copy per input-row count (see STREAM_TILE): with that count a constant, the
 * compiler unrolls the loops over input rows and keeps every accumulator in a register. */
#define INLINE static inline __attribute__((always_inline))

/* At most how many input rows meet a weight row in registers (more go in further tiles) */
enum { M_TILE = 8 };

/* ROW(r) with r the constant m_rows (1 .. M_TILE): one inlined copy of the row per count */
#define STREAM_TILE(m_rows, ROW) \
  switch (m_rows) {              \
    case 1: ROW(1); break;       \
    case 2: ROW(2); break;       \
    case 3: ROW(3); break;       \
    case 4: ROW(4); break;       \
    case 5: ROW(5); break;       \
    case 6: ROW(6); break;       \
    case 7: ROW(7); break;       \
    default: ROW(M_TILE); break; \
  }

/* How many input rows the tile starting at row m0 of m_total takes */
static inline int tile_rows(int64_t m_total, int64_t m0) {
  return (int)(m_total - m0 < M_TILE ? m_total - m0 : M_TILE);
}

#if defined(__AVX2__)
/* the sum of 8 float lanes */
INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

/*
 * FLOAT_ROW(name, WT, WIDEN16, WIDEN8, WIDEN1) defines
 *   name(x, w, sums, m_rows, k): sums[m] = w . x[m] for one weight row w of type WT against
 *   float32 input rows x, two accumulators per input row (so one row has two independent
 *   chains of products), k rounded down to name's step; and
 *   name##_tail(...): the k % step values the vector loop leaves, added into sums.
 * WIDEN16(p) / WIDEN8(p) load 16 / 8 weights as float32 (AVX-512F / AVX2), WIDEN1(v) one.
 */
#if defined(__AVX512F__)
#define FLOAT_ROW_STEP 32
#define FLOAT_ROW_BODY(WIDEN16, WIDEN8, WIDEN1)                                              \
  __m512 acc[M_TILE][2];                                                                    \
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();             \
  for (int64_t i = 0; i + FLOAT_ROW_STEP <= k; i += FLOAT_ROW_STEP) {                       \
    const __m512 w0 = WIDEN16(w + i), w1 = WIDEN16(w + i + 16);                             \
    for (int m = 0; m < m_rows; ++m) {                                                      \
      const float* xm = x + m * k + i;                                                      \
      acc[m][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xm), acc[m][0]);                     \
      acc[m][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xm + 16), acc[m][1]);                 \
    }                                                                                       \
  }                                                                                         \
  for (int m = 0; m < m_rows; ++m)                                                          \
    sums[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
#elif defined(__AVX2__)
#define FLOAT_ROW_STEP 16
#define FLOAT_ROW_BODY(WIDEN16, WIDEN8, WIDEN1)                                              \
  __m256 acc[M_TILE][2];                                                                    \
  for (int m = 0; m < m_rows; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();             \
  for (int64_t i = 0; i + FLOAT_ROW_STEP <= k; i += FLOAT_ROW_STEP) {                       \
    const __m256 w0 = WIDEN8(w + i), w1 = WIDEN8(w + i + 8);                                \
    for (int m = 0; m < m_rows; ++m) {                                                      \
      const float* xm = x + m * k + i;                                                      \
      acc[m][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xm), acc[m][0]);                      \
      acc[m][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xm + 8), acc[m][1]);                  \
    }                                                                                       \
  }                                                                                         \
  for (int m = 0; m < m_rows; ++m) sums[m] = hsum8(_mm256_add_ps(acc[m][0], acc[m][1]));
#else
#define FLOAT_ROW_STEP 16
#define FLOAT_ROW_BODY(WIDEN16, WIDEN8, WIDEN1)                                              \
  for (int m = 0; m < m_rows; ++m) {                                                        \
    float lanes[FLOAT_ROW_STEP] = {0.f};                                                    \
    for (int64_t i = 0; i + FLOAT_ROW_STEP <= k; i += FLOAT_ROW_STEP)                       \
      for (int l = 0; l < FLOAT_ROW_STEP; ++l) lanes[l] += WIDEN1(w[i + l]) * x[m * k + i + l]; \
    float s = 0.f;                                                                          \
    for (int l = 0; l < FLOAT_ROW_STEP; ++l) s += lanes[l];                                 \
    sums[m] = s;                                                                            \
  }
#endif

/* name(x, w, sums, m_rows, k): the values k % STEP from the end, added into sums */
#define FLOAT_ROW_TAIL(name, WT, STEP, WIDEN1)                                               \
  static void name(const float* x, const WT* w, float* sums, int m_rows, int64_t k) {        \
    for (int64_t i = k - k % (STEP); i < k; ++i)                                             \
      for (int m = 0; m < m_rows; ++m) sums[m] += WIDEN1(w[i]) * x[m * k + i];               \
  }

#define FLOAT_ROW(name, WT, WIDEN16, WIDEN8, WIDEN1)                                         \
  INLINE void name(const float* x, const WT* w, float* sums, const int m_rows, int64_t k) { \
    FLOAT_ROW_BODY(WIDEN16, WIDEN8, WIDEN1)                                                  \
  }                                                                                          \
  FLOAT_ROW_TAIL(name##_tail, WT, FLOAT_ROW_STEP, WIDEN1)

#endif
