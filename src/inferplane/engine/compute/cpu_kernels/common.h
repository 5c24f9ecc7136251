/*
 * What every kernel source shares: the bfloat16 storage type and its exact conversions.
 * bfloat16 is the top half of a float32, so widening is a shift; narrowing rounds to nearest,
 * ties to even, as torch does, and keeps NaN a (quiet) NaN.
 */
#ifndef INFERPLANE_KERNELS_COMMON_H
#define INFERPLANE_KERNELS_COMMON_H

#include <stdint.h>
#include <string.h>

typedef uint16_t bf16;

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

#endif
