/*
 * The weight-streaming linear for 4-bit block weights (GGUF's Q4_0 and Q4_1; see quant4.py)
 * and decode-shaped float32 inputs: out[M, N] = x[M, K] W[N, K]^T (+ bias) for a few rows of
 * x (M = 1..16), W held as its blocks of 32 values and never widened to a float copy.
 *
 * A block is 16 bytes of codes (byte j: value j in the low nibble, value j + 16 in the high
 * one, as GGUF stores them) and a float16 scale d, with a float16 min m for Q4_1; the value is
 * d * (q - 8) (Q4_0) or d * q + m (Q4_1). Codes and scales live in separate arrays: codes
 * [N, K / 2], scales (and mins) [N, K / 32].
 *
 * As llama.cpp's q4_0 x q8_0 product does, each input row is first rounded to int8 per block
 * of 32 values (scale max|x| / 127); the codes (0..15, unsigned) meet those int8 values in
 * integer dot products, 4 products an int32 lane, and each block's int32 sums meet the two
 * scales in float32: vpdpbusd on the AVX512_VNNI build (two blocks a step), vpmaddubsw +
 * vpmaddwd on AVX2 and the AVX-512 build without VNNI (one block a step), plain C elsewhere,
 * every build with the same rounding of the input. The offset of Q4_0 (-8 steps) and the min
 * of Q4_1 meet each input block's sum once per block, 16 (VNNI) or 8 (AVX2) blocks in one FMA.
 * Each input value moves by at most half its block's step: the tests bound that error exactly.
 * Output rows are split over OpenMP threads, `threads` at most. Measured over SmolLM2-135M's
 * 120 layer products at one row, one Zen 4 thread, interleaved with linear_int8.c (VNNI):
 * 5.7-5.8 ms against int8's 6.3-7.0 for 57% of its bytes, then 5.5-5.7 with one-row inputs
 * inlined, then 4.7-5.3 with one-row inputs' sums taken 16 weight rows at a time: this loop is bound by its instructions (about 10 GB/s on 576-wide rows, 18 GB/s on
 * 4096-wide ones), not by memory; at 4 rows 12.4 against 13.4 ms. A first version that loaded
 * a per-lane scale and sum for every step took 10.4 ms.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common.h"
#include "stream.h"

enum { QB = 32, QB_BYTES = 16, PAD = 64 };

/* The input rows as the dot products take them: xq [m][k] int8, and per block of each row its
 * step (xs [m][k / 32]) and its step times the sum of its int8 values (t [m][k / 32]), which
 * meets each weight block's offset: the -8 of Q4_0's codes, or Q4_1's min. Each array has PAD
 * zeroed elements past its end, so a vector that starts in the last block reads no further. */
typedef struct {
  int8_t* xq;
  float* xs;
  float* t;
} QInput;

static void quantize_input(const float* x, QInput in, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * QB;
    float top = 0.f;
    for (int i = 0; i < QB; ++i) top = fmaxf(top, fabsf(xb[i]));
    const float step = top / 127.f, inverse = step > 0.f ? 1.f / step : 0.f;
    int8_t* q = in.xq + b * QB;
    int32_t sum = 0;
    for (int i = 0; i < QB; ++i) sum += q[i] = (int8_t)lrintf(xb[i] * inverse);
    in.xs[b] = step;
    in.t[b] = step * (float)sum;
  }
}

/* One weight row of nb blocks against m_rows quantized input rows: sums[m] = w . x[m]. Per
 * chunk of blocks, s[m] holds each block's weight scale times its input step, and the offsets
 * (min or -8 * scale, times t) are one FMA for the whole chunk. */
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define Q4_ISA "vnni"
#define Q4_VNNI 1
enum { CHUNK = 16 };
/* The row's accumulators before their lanes are summed (see q4_row) */
INLINE void q4_row_lanes(QInput in, const uint8_t* codes, const f16* d, const f16* mins,
                         __m512* lanes, const int m_rows, int64_t nb) {
  __m512 acc[M_TILE], acc2[M_TILE], s[M_TILE];
  for (int m = 0; m < m_rows; ++m) acc[m] = acc2[m] = _mm512_setzero_ps();
  const __m512i spread = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0); /* [c0 c0 c1 c1] */
  const __m512i low = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
  const __m512i first = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i two = _mm512_set1_epi32(2);
  for (int64_t c = 0; c < nb; c += CHUNK) {
    const int count = (int)(nb - c < CHUNK ? nb - c : CHUNK);
    const __mmask16 mask = (__mmask16)((1u << count) - 1u);
    const __m512 dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, d + c));
    const __m512 mn = mins ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, mins + c))
                           : _mm512_mul_ps(dw, _mm512_set1_ps(-8.f));
    for (int m = 0; m < m_rows; ++m) {
      s[m] = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(mask, in.xs + m * nb + c));
      acc[m] = _mm512_fmadd_ps(mn, _mm512_maskz_loadu_ps(mask, in.t + m * nb + c), acc[m]);
    }
    __m512i pick = first; /* lanes 0-7 take block b's s, lanes 8-15 block b + 1's */
    int b = 0;
    /* up to 4 rows, four blocks a step: two chains of FMAs a row, not one (one row, SmolLM2's
     * 120 products, interleaved: 1.05-1.08x; at 8 rows 0.97x, so not there) */
    for (; m_rows <= 4 && b + 4 <= count; b += 4) {
      const __m256i* at = (const __m256i*)(codes + (c + b) * QB_BYTES);
      const __m512i c0 =
          _mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(_mm256_loadu_si256(at)));
      const __m512i c1 =
          _mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(_mm256_loadu_si256(at + 1)));
      const __m512i w0 = _mm512_and_si512(_mm512_mask_srli_epi16(c0, 0xff00ff00u, c0, 4), low);
      const __m512i w1 = _mm512_and_si512(_mm512_mask_srli_epi16(c1, 0xff00ff00u, c1, 4), low);
      const __m512i pick1 = _mm512_add_epi32(pick, two);
      for (int m = 0; m < m_rows; ++m) {
        const int8_t* xp = in.xq + (m * nb + c + b) * QB;
        const __m512i d0 = _mm512_dpbusd_epi32(zero, w0, _mm512_loadu_si512(xp));
        const __m512i d1 = _mm512_dpbusd_epi32(zero, w1, _mm512_loadu_si512(xp + 2 * QB));
        const __m512 s0 = _mm512_permutexvar_ps(pick, s[m]);
        const __m512 s1 = _mm512_permutexvar_ps(pick1, s[m]);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), s0, acc[m]);
        acc2[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), s1, acc2[m]);
      }
      pick = _mm512_add_epi32(pick1, two);
    }
    for (; b < count; b += 2, pick = _mm512_add_epi32(pick, two)) {
      /* two blocks: each one's 16 code bytes twice, the high nibbles of the second copy (a
       * last, odd block has zero codes past it, which zero the input read there) */
      const __mmask32 bytes = b + 1 < count ? 0xffffffffu : 0xffffu;
      const __m256i raw = _mm256_maskz_loadu_epi8(bytes, codes + (c + b) * QB_BYTES);
      const __m512i cc = _mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(raw));
      const __m512i w = _mm512_and_si512(_mm512_mask_srli_epi16(cc, 0xff00ff00u, cc, 4), low);
      for (int m = 0; m < m_rows; ++m) {
        const __m512i xv = _mm512_loadu_si512(in.xq + (m * nb + c + b) * QB);
        const __m512i dot = _mm512_dpbusd_epi32(zero, w, xv);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(pick, s[m]),
                                 acc[m]);
      }
    }
  }
  for (int m = 0; m < m_rows; ++m) lanes[m] = _mm512_add_ps(acc[m], acc2[m]);
}

INLINE void q4_row(QInput in, const uint8_t* codes, const f16* d, const f16* mins, float* sums,
                   const int m_rows, int64_t nb) {
  __m512 lanes[M_TILE];
  q4_row_lanes(in, codes, d, mins, lanes, m_rows, nb);
  for (int m = 0; m < m_rows; ++m) sums[m] = _mm512_reduce_add_ps(lanes[m]);
}

/* Lane r of the result: the sum of v[r]'s 16 lanes (a transposing tree of 15 adds, where 16
 * separate sums take 4 each and a longer chain) */
INLINE __m512 sum16x16(const __m512* v) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)
    a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    b[i] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(a[2 * i], a[2 * i + 1], 0xee));
  for (int i = 0; i < 2; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88),
                       _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
}

/* Batch-1 decode, 16 weight rows at a time: out[row0 .. row0 + 15] (+ bias) */
static void q4_rows16(QInput in, const uint8_t* codes, const f16* d, const f16* mins,
                      const float* bias, float* out, int64_t row0, int64_t nb) {
  __m512 lanes[16];
  for (int r = 0; r < 16; ++r) {
    const int64_t row = row0 + r;
    q4_row_lanes(in, codes + row * nb * QB_BYTES, d + row * nb, mins ? mins + row * nb : NULL,
                 lanes + r, 1, nb);
  }
  __m512 sums = sum16x16(lanes);
  if (bias) sums = _mm512_add_ps(sums, _mm512_loadu_ps(bias + row0));
  _mm512_storeu_ps(out + row0, sums);
}
#elif defined(__AVX2__) && defined(__F16C__)
#define Q4_ISA "avx2"
enum { CHUNK = 8 };
/* a chunk's float16 scales as float32, zero past `count` */
INLINE __m256 f16x8(const f16* p, int count) {
  if (count == CHUNK) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p));
  f16 part[CHUNK] = {0};
  memcpy(part, p, (size_t)count * sizeof(f16));
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)part));
}

INLINE void q4_row(QInput in, const uint8_t* codes, const f16* d, const f16* mins, float* sums,
                   const int m_rows, int64_t nb) {
  __m256 acc[M_TILE], s[M_TILE];
  for (int m = 0; m < m_rows; ++m) acc[m] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  for (int64_t c = 0; c < nb; c += CHUNK) {
    const int count = (int)(nb - c < CHUNK ? nb - c : CHUNK);
    const __m256 dw = f16x8(d + c, count);
    const __m256 mn = mins ? f16x8(mins + c, count) : _mm256_mul_ps(dw, _mm256_set1_ps(-8.f));
    for (int m = 0; m < m_rows; ++m) { /* past `count` the zero dw and mn null what is read */
      s[m] = _mm256_mul_ps(dw, _mm256_loadu_ps(in.xs + m * nb + c));
      acc[m] = _mm256_fmadd_ps(mn, _mm256_loadu_ps(in.t + m * nb + c), acc[m]);
    }
    for (int b = 0; b < count; ++b) {
      /* one block: its 16 code bytes in both halves, the high nibbles in the upper half */
      const __m128i raw = _mm_loadu_si128((const __m128i*)(codes + (c + b) * QB_BYTES));
      const __m256i cc = _mm256_broadcastsi128_si256(raw);
      const __m256i high = _mm256_blend_epi32(cc, _mm256_srli_epi16(cc, 4), 0xf0);
      const __m256i w = _mm256_and_si256(high, low);
      const __m256i pick = _mm256_set1_epi32(b);
      for (int m = 0; m < m_rows; ++m) {
        const __m256i xv = _mm256_loadu_si256((const __m256i*)(in.xq + (m * nb + c + b) * QB));
        const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(w, xv), ones);
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_permutevar8x32_ps(s[m], pick),
                                 acc[m]);
      }
    }
  }
  for (int m = 0; m < m_rows; ++m) sums[m] = hsum8(acc[m]);
}
#else
#define Q4_ISA "portable"
/* plain C: the same integer sums, one block at a time */
INLINE void q4_row(QInput in, const uint8_t* codes, const f16* d, const f16* mins, float* sums,
                   const int m_rows, int64_t nb) {
  for (int m = 0; m < m_rows; ++m) sums[m] = 0.f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* c = codes + b * QB_BYTES;
    const float dw = f16_to_f32(d[b]), mn = mins ? f16_to_f32(mins[b]) : -8.f * dw;
    for (int m = 0; m < m_rows; ++m) {
      const int8_t* xq = in.xq + (m * nb + b) * QB;
      int32_t dot = 0;
      for (int j = 0; j < QB_BYTES; ++j)
        dot += (c[j] & 0x0f) * xq[j] + (c[j] >> 4) * xq[j + QB_BYTES];
      sums[m] += (float)dot * dw * in.xs[m * nb + b] + mn * in.t[m * nb + b];
    }
  }
}
#endif

static void q4_tile(QInput in, const uint8_t* codes, const f16* d, const f16* mins, float* sums,
                    int m_rows, int64_t nb) {
#define Q4_ROW(rows) q4_row(in, codes, d, mins, sums, rows, nb)
  STREAM_TILE(m_rows, Q4_ROW)
#undef Q4_ROW
}

static void free_input(QInput in) {
  free(in.xq);
  free(in.xs);
  free(in.t);
}

static int q4_linear(const float* x, const uint8_t* codes, const f16* d, const f16* mins,
                     const float* bias, float* out, int64_t m, int64_t n, int64_t k, int threads) {
  const int64_t nb = k / QB;
  QInput in = {calloc((size_t)(m * k + PAD), 1), calloc((size_t)(m * nb + PAD), sizeof(float)),
               calloc((size_t)(m * nb + PAD), sizeof(float))};
  if (!in.xq || !in.xs || !in.t) {
    free_input(in);
    return -1;
  }
  quantize_input(x, in, m * nb);
  int64_t first_row = 0;
#if defined(Q4_VNNI)
  if (m == 1) { /* 16 rows a time, their sums in one tree; the last n % 16 rows below */
    first_row = n - n % 16;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 16)
    for (int64_t row0 = 0; row0 < first_row; row0 += 16)
      q4_rows16(in, codes, d, mins, bias, out, row0, nb);
  }
#endif
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t row = first_row; row < n; ++row) {
    const uint8_t* wr = codes + row * (k / 2);
    const f16* dr = d + row * nb;
    const f16* mr = mins ? mins + row * nb : NULL;
    const float b = bias ? bias[row] : 0.f;
    float sums[M_TILE];
    for (int64_t m0 = 0; m0 < m; m0 += M_TILE) {
      const int m_rows = tile_rows(m, m0);
      const QInput tile = {in.xq + m0 * k, in.xs + m0 * nb, in.t + m0 * nb};
      if (m_rows == 1) /* batch-1 decode: its own inlined copy, no call a row */
        q4_row(tile, wr, dr, mr, sums, 1, nb);
      else
        q4_tile(tile, wr, dr, mr, sums, m_rows, nb);
      for (int r = 0; r < m_rows; ++r) out[(m0 + r) * n + row] = sums[r] + b;
    }
  }
  free_input(in);
  return 0;
}

/* Which of the paths above this build runs: "vnni", "avx2" or "portable" */
const char* ip_linear_q4_isa(void) { return Q4_ISA; }

/* out [m, n] = x [m, k] . W [n, k]^T + bias [n] (bias may be NULL), W as 4-bit blocks: codes
 * [n, k / 2], d [n, k / 32] float16, mins [n, k / 32] float16 (Q4_1) or NULL (Q4_0); k a
 * multiple of 32; the rest float32, all contiguous. Returns 0, or -1 when a scratch cannot be
 * allocated. */
int ip_linear_q4_f32(const float* x, const uint8_t* codes, const f16* d, const f16* mins,
                     const float* bias, float* out, int64_t m, int64_t n, int64_t k, int threads) {
  return q4_linear(x, codes, d, mins, bias, out, m, n, k, threads);
}

/* w [rows, k] float32 = the blocks' values, for a tile of rows (prefill's F.linear) */
void ip_dequantize_q4_f32(const uint8_t* codes, const f16* d, const f16* mins, float* w,
                          int64_t rows, int64_t k) {
  for (int64_t b = 0; b < rows * k / QB; ++b) {
    const uint8_t* c = codes + b * QB_BYTES;
    const float scale = f16_to_f32(d[b]), low = mins ? f16_to_f32(mins[b]) : -8.f * scale;
    float* out = w + b * QB;
    for (int j = 0; j < QB_BYTES; ++j) {
      out[j] = (float)(c[j] & 0x0f) * scale + low;
      out[j + QB_BYTES] = (float)(c[j] >> 4) * scale + low;
    }
  }
}
