/*
 * inferplane's CPU kernels for decode in bfloat16, float16 and float32: the small per-layer
 * ops that eager torch runs as chains of tiny operators (a norm is eight of them, decode
 * attention a dozen), each one call here (small_ops.h, once per dtype: ip_*_bf16, ip_*_f16
 * and ip_*_f32). The
 * matrix products of decode's few rows are linear.c's; larger ones stay with oneDNN. Built at
 * first use with the system C compiler for the best x86-64 level the CPU runs (see build.py)
 * and called through ctypes. These ops are plain C the compiler vectorizes, two things aside:
 * the softmax's exp (AVX-512 intrinsics where the target has them: GCC leaves a plain-C exp
 * scalar) and decode attention's blocks of 8 positions (AVX2 and up, see small_ops.h): the
 * bfloat16 conversions are integer shifts and rounding (common.h), so the same source builds
 * for AVX-512, AVX2 or SSE2 alone (tests run every level the machine can).
 *
 * Every buffer is of the op's dtype (bfloat16 as raw uint16), row-major and contiguous unless
 * a stride is given. Arithmetic is float32; bfloat16 results are rounded (nearest, ties to
 * even) exactly where the torch reference rounds, so outputs match it to the last bit or
 * within a rounding step.
 * Threads come from the OpenMP runtime torch already loaded (same soname), `threads` at most.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "common.h"

const char* ip_isa(void) {
#if defined(__AVX512BF16__)
  return "avx512bf16";
#elif defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "portable";
#endif
}

#if defined(__AVX512F__)
/* e^x for 16 lanes to about 1 ulp (Cephes' expf: x = n ln2 + r, a polynomial in r, times
 * 2^n). Inputs here are <= 0 (scores less their maximum); below -87 the result is 0 where expf
 * gives a subnormal, a difference softmax cannot see. libm's expf was a call per score. */
static inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.f), x); /* NaN stays NaN: max returns operand 2 */
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f),
                                                        _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  const __m512i bits = _mm512_slli_epi32(
      _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}
#endif

static void softmax_in_place(float* s, int64_t len) {
  float top = -INFINITY, total = 0.f;
  for (int64_t j = 0; j < len; ++j) top = s[j] > top ? s[j] : top;
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512 shift = _mm512_set1_ps(top);
  __m512 sums = _mm512_setzero_ps();
  for (; j + 16 <= len; j += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), shift));
    _mm512_storeu_ps(s + j, e);
    sums = _mm512_add_ps(sums, e);
  }
  total = _mm512_reduce_add_ps(sums);
#endif
  for (; j < len; ++j) {
    s[j] = expf(s[j] - top);
    total += s[j];
  }
  const float inv = 1.f / total;
  for (j = 0; j < len; ++j) s[j] *= inv;
}

#if defined(__AVX2__)
/* The lane sums of v[0..7], in order: eight dot products finished in six horizontal adds,
 * where one at a time each took three shuffles and three adds of its own. */
static inline __m256 sum8x8(const __m256 v[8]) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}
#endif

static inline float f32_same(float f) { return f; }

#if defined(__AVX2__)
static inline __m256 bf16_load8(const bf16* p) {
  const __m128i raw = _mm_loadu_si128((const __m128i*)(const void*)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

static inline __m256 f16_load8(const f16* p) {
#if defined(__F16C__)
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(const void*)p));
#else
  float v[8];
  for (int i = 0; i < 8; ++i) v[i] = f16_to_f32(p[i]);
  return _mm256_loadu_ps(v);
#endif
}
#endif

#if defined(__AVX512F__)
static inline __m512 bf16_load16(const bf16* p) {
  const __m256i raw = _mm256_loadu_si256((const __m256i*)(const void*)p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

static inline __m512 f16_load16(const f16* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(const void*)p));
}
#endif

/* float16 <-> float32 over n values: the conversions every float16 op uses, for the tests */
void ip_f16_to_f32(const f16* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void ip_f32_to_f16(const float* in, f16* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

/* the per-layer ops (small_ops.h) and the decode stack over them (decode_stack.h, which
 * undefines the parameters at its end) for each storage dtype: ip_*_bf16, ip_*_f16, ip_*_f32 */
void ip_linear_bf16(const bf16* x, const bf16* w, const bf16* bias, bf16* out, int64_t m,
                    int64_t n, int64_t k, int threads);
void ip_linear_f32(const float* x, const float* w, const float* bias, float* out, int64_t m,
                   int64_t n, int64_t k, int threads);
int ip_linear_f16(const f16* x, const f16* w, const f16* bias, f16* out, int64_t m, int64_t n,
                  int64_t k, int threads);
int ip_linear_cols_bf16(const bf16* x, const bf16* w, const bf16* bias, bf16* out, int64_t m,
                        int64_t n, int64_t k, int threads);
int ip_linear_cols_f32(const float* x, const float* w, const float* bias, float* out, int64_t m,
                       int64_t n, int64_t k, int threads);

#define PASTE(a, b) a##b
#define SUFFIXED(f, s) PASTE(f, s)

#define T bf16
#define NAME(f) SUFFIXED(f, _bf16)
#define LOAD bf16_to_f32
#define STORE f32_to_bf16
#define ROUND round_bf16
#define LOAD8 bf16_load8
#define LOAD16 bf16_load16
#include "small_ops.h"
#define LINEAR_DENSE(cols, ...) \
  ((cols) ? ip_linear_cols_bf16(__VA_ARGS__) : (ip_linear_bf16(__VA_ARGS__), 0))
#include "decode_stack.h"

#define T f16
#define NAME(f) SUFFIXED(f, _f16)
#define LOAD f16_to_f32
#define STORE f32_to_f16
#define ROUND round_f16
#define LOAD8 f16_load8
#define LOAD16 f16_load16
#include "small_ops.h"
#define LINEAR_DENSE(cols, ...) ip_linear_f16(__VA_ARGS__)
#include "decode_stack.h"

#define T float
#define NAME(f) SUFFIXED(f, _f32)
#define LOAD f32_same
#define STORE f32_same
#define ROUND f32_same
#define LOAD8(p) _mm256_loadu_ps(p)
#define LOAD16(p) _mm512_loadu_ps(p)
#include "small_ops.h"
#define LINEAR_DENSE(cols, ...) \
  ((cols) ? ip_linear_cols_f32(__VA_ARGS__) : (ip_linear_f32(__VA_ARGS__), 0))
#include "decode_stack.h"
