/*
 * inferplane's CPU kernels for decode in bfloat16 and float32: the small per-layer ops that
 * eager torch runs as chains of tiny operators (a norm is eight of them, decode attention a
 * dozen), each one call here (small_ops.h, once per dtype: ip_*_bf16 and ip_*_f32). The
 * matrix products of decode's few rows are linear.c's; larger ones stay with oneDNN. Built at
 * first use with the system C compiler for the best x86-64 level the CPU runs (see build.py)
 * and called through ctypes. These ops are plain C the compiler vectorizes, no intrinsics: the
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

static void softmax_in_place(float* s, int64_t len) {
  float top = -INFINITY, total = 0.f;
  for (int64_t j = 0; j < len; ++j) top = s[j] > top ? s[j] : top;
  for (int64_t j = 0; j < len; ++j) {
    s[j] = expf(s[j] - top);
    total += s[j];
  }
  const float inv = 1.f / total;
  for (int64_t j = 0; j < len; ++j) s[j] *= inv;
}

static inline float f32_same(float f) { return f; }

/* the per-layer ops (small_ops.h) for each storage dtype: ip_*_bf16, then ip_*_f32 */
#define PASTE(a, b) a##b
#define SUFFIXED(f, s) PASTE(f, s)

#define T bf16
#define NAME(f) SUFFIXED(f, _bf16)
#define LOAD bf16_to_f32
#define STORE f32_to_bf16
#define ROUND round_bf16
#include "small_ops.h"
#undef T
#undef NAME
#undef LOAD
#undef STORE
#undef ROUND

#define T float
#define NAME(f) SUFFIXED(f, _f32)
#define LOAD f32_same
#define STORE f32_same
#define ROUND f32_same
#include "small_ops.h"
