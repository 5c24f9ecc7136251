/*
 * What every kernel source shares: the bfloat16 and float16 storage types and their exact
 * conversions. bfloat16 is the top half of a float32, so widening is a shift; narrowing rounds
 * to nearest, ties to even, as torch does, and keeps NaN a (quiet) NaN. float16 converts with
 * F16C's vcvtph2ps / vcvtps2ph where the target has it (x86-64-v3 and up), else in plain C
 * with the same results (round to nearest even, overflow to infinity, subnormals kept).
 */
#ifndef INFERPLANE_KERNELS_COMMON_H
#define INFERPLANE_KERNELS_COMMON_H

#include <stdint.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

typedef uint16_t bf16;
typedef uint16_t f16;

static inline float bf16_to_f32(bf16 v) {
  uint32_t u = (uint32_t)v << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline bf16 f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40u); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (bf16)(u >> 16);
}

static inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

static inline float f16_to_f32(f16 h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13); /* infinity, NaN */
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (man << 13);
  } else {
    const float f = (float)man * 5.9604644775390625e-8f; /* 0 or a subnormal: man * 2^-24 */
    return sign ? -f : f;
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

static inline f16 f32_to_f16(float f) {
#if defined(__F16C__)
  return (f16)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a >= 0x47800000u) /* 2^16 and up (infinity), or NaN (kept quiet) */
    return (f16)(sign | (a > 0x7f800000u ? 0x7e00u | ((a >> 13) & 0x3ffu) : 0x7c00u));
  if (a < 0x38800000u) { /* under 2^-14: a subnormal; adding 0.5 rounds it in the FPU */
    float v;
    memcpy(&v, &a, 4);
    v += 0.5f;
    memcpy(&a, &v, 4);
    return (f16)(sign | (a - 0x3f000000u));
  }
  const uint32_t odd = (a >> 13) & 1u; /* ties to even */
  a += 0xc8000fffu + odd;               /* rebias the exponent (-112 << 23), round */
  return (f16)(sign | (a >> 13));
#endif
}

static inline float round_f16(float f) { return f16_to_f32(f32_to_f16(f)); }

#endif
