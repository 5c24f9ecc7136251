/*
 * inferplane's CPU kernels for bfloat16 decode: the small per-layer ops that eager torch runs
 * as chains of tiny operators (a norm is eight of them, decode attention a dozen), each one
 * call here. The matrix products of decode's few rows are linear.c's; larger ones stay with
 * oneDNN. Built at first use with the system C compiler for the best x86-64 level the CPU
 * runs (see build.py) and called through ctypes. This file is plain C the compiler
 * vectorizes, no intrinsics: the bfloat16 conversions are integer shifts and rounding
 * (common.h), so the same source builds for AVX-512, AVX2 or SSE2 alone (tests run every
 * level the machine can).
 *
 * Every buffer is bfloat16 (raw uint16), row-major and contiguous unless a stride is given.
 * Arithmetic is float32; results are rounded to bfloat16 (nearest, ties to even) exactly where
 * the torch reference rounds, so outputs match it to the last bit or within a rounding step.
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

/* ---- RMSNorm, optionally after adding the residual -------------------------------------- */

static void norm_row(const bf16* h, const bf16* weight, bf16* out, int64_t n, float eps) {
  float sq = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    float v = bf16_to_f32(h[i]);
    sq += v * v;
  }
  const float inv = 1.f / sqrtf(sq / (float)n + eps);
  for (int64_t i = 0; i < n; ++i) {
    /* torch: weight * (h * rsqrt(...)).to(bf16), each product rounded to bf16 */
    float scaled = round_bf16(bf16_to_f32(h[i]) * inv);
    out[i] = f32_to_bf16(bf16_to_f32(weight[i]) * scaled);
  }
}

/* out[t] = rmsnorm(x[t]) * weight */
void ip_rms_norm(const bf16* x, const bf16* weight, bf16* out, int64_t rows, int64_t n, float eps,
                 int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) norm_row(x + t * n, weight, out + t * n, n, eps);
}

/* residual[t] += x[t] (rounded to bf16, as torch adds), then out[t] = rmsnorm(residual[t]) */
void ip_add_rms_norm(const bf16* x, bf16* residual, const bf16* weight, bf16* out, int64_t rows,
                     int64_t n, float eps, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) {
    bf16* r = residual + t * n;
    const bf16* a = x + t * n;
    for (int64_t i = 0; i < n; ++i) r[i] = f32_to_bf16(bf16_to_f32(r[i]) + bf16_to_f32(a[i]));
    norm_row(r, weight, out + t * n, n, eps);
  }
}

/* ---- SwiGLU: out[t, i] = silu(gate_up[t, i]) * gate_up[t, inter + i] --------------------- */

void ip_silu_mul(const bf16* gate_up, bf16* out, int64_t rows, int64_t inter, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) {
    const bf16* g = gate_up + t * 2 * inter;
    const bf16* u = g + inter;
    bf16* o = out + t * inter;
    for (int64_t i = 0; i < inter; ++i) {
      float gv = bf16_to_f32(g[i]);
      float silu = round_bf16(gv / (1.f + expf(-gv)));
      o[i] = f32_to_bf16(silu * bf16_to_f32(u[i]));
    }
  }
}

/* ---- rotary embedding and the KV-cache write --------------------------------------------
 * qkv [T, heads + 2 * kv_heads, dim]: each row's queries, keys and values side by side.
 * cos, sin [T, dim]: per-row tables, sin's first half negated (see models/layers.Rotary), so
 * rotated[i] = x[i] * cos[i] + x[(i + dim/2) % dim] * sin[i], rounded as torch's addcmul.
 * Rotated queries go to q_out [T, heads, dim]; rotated keys and the values go to the cache
 * slots slot_mapping[t] of k_cache, v_cache [slots, kv_heads, dim].
 */
static void rotate_head(const bf16* x, const bf16* cos, const bf16* sin, bf16* out, int64_t dim) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < dim; ++i) {
    const float cosine = round_bf16(bf16_to_f32(x[i]) * bf16_to_f32(cos[i]));
    const float partner = bf16_to_f32(x[(i + half) % dim]);
    out[i] = f32_to_bf16(cosine + partner * bf16_to_f32(sin[i]));
  }
}

void ip_rope_cache(const bf16* qkv, const bf16* cos, const bf16* sin, const int64_t* slot_mapping,
                   bf16* q_out, bf16* k_cache, bf16* v_cache, int64_t rows, int64_t heads,
                   int64_t kv_heads, int64_t dim, int threads) {
  const int64_t width = (heads + 2 * kv_heads) * dim;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) {
    const bf16* row = qkv + t * width;
    const bf16* c = cos + t * dim;
    const bf16* s = sin + t * dim;
    for (int64_t h = 0; h < heads; ++h) rotate_head(row + h * dim, c, s, q_out + (t * heads + h) * dim, dim);
    bf16* k_slot = k_cache + slot_mapping[t] * kv_heads * dim;
    bf16* v_slot = v_cache + slot_mapping[t] * kv_heads * dim;
    for (int64_t h = 0; h < kv_heads; ++h) rotate_head(row + (heads + h) * dim, c, s, k_slot + h * dim, dim);
    memcpy(v_slot, row + (heads + kv_heads) * dim, (size_t)(kv_heads * dim) * sizeof(bf16));
  }
}

/* ---- decode attention over the paged cache ----------------------------------------------
 * q [batch, heads, dim]; k_cache, v_cache [slots, kv_heads, dim]; slots [batch, max_len] (the
 * context's cache slots, padded); lengths [batch]; out [batch, heads, dim]. Query head h reads
 * KV head h / (heads / kv_heads). One (sequence, KV head) pair per task: its group of query
 * heads shares every K and V row it loads. scores is scratch of max_len floats per thread.
 */
/* q (float32) . k (bf16) over dim, in 16 independent lanes the compiler vectorizes */
static inline float dot_q_k(const float* q, const bf16* k, int64_t dim) {
  float lanes[16] = {0.f};
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16)
    for (int l = 0; l < 16; ++l) lanes[l] += q[i + l] * bf16_to_f32(k[i + l]);
  float s = 0.f;
  for (; i < dim; ++i) s += q[i] * bf16_to_f32(k[i]);
  for (int l = 0; l < 16; ++l) s += lanes[l];
  return s;
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

/* scratch holds group * (dim + len + dim) floats: queries, scores, accumulators */
static void attend_group(const bf16* q, const bf16* k_cache, const bf16* v_cache,
                         const int64_t* slots, int64_t len, int64_t kv_heads, int64_t kv_head,
                         int64_t group, int64_t dim, float scale, float* scratch, bf16* out) {
  float* qf = scratch;
  float* scores = qf + group * dim;
  float* acc = scores + group * len;
  for (int64_t i = 0; i < group * dim; ++i) qf[i] = bf16_to_f32(q[i]) * scale;
  for (int64_t j = 0; j < len; ++j) {
    const bf16* kr = k_cache + (slots[j] * kv_heads + kv_head) * dim;
    for (int64_t g = 0; g < group; ++g) scores[g * len + j] = dot_q_k(qf + g * dim, kr, dim);
  }
  for (int64_t g = 0; g < group; ++g) softmax_in_place(scores + g * len, len);
  memset(acc, 0, (size_t)(group * dim) * sizeof(float));
  for (int64_t j = 0; j < len; ++j) {
    const bf16* vr = v_cache + (slots[j] * kv_heads + kv_head) * dim;
    for (int64_t g = 0; g < group; ++g) {
      const float p = scores[g * len + j];
      float* a = acc + g * dim;
      for (int64_t i = 0; i < dim; ++i) a[i] += p * bf16_to_f32(vr[i]);
    }
  }
  for (int64_t i = 0; i < group * dim; ++i) out[i] = f32_to_bf16(acc[i]);
}

/* scratch: threads * heads * (2 * dim + max_len) floats, owned by the caller */
void ip_decode_attention(const bf16* q, const bf16* k_cache, const bf16* v_cache,
                         const int64_t* slots, const int64_t* lengths, bf16* out, int64_t batch,
                         int64_t heads, int64_t kv_heads, int64_t dim, int64_t max_len,
                         float scale, float* scratch, int threads) {
  const int64_t group = heads / kv_heads;
  const int64_t per_thread = heads * (2 * dim + max_len);
#pragma omp parallel for num_threads(threads) schedule(static) if (batch * kv_heads > 1)
  for (int64_t task = 0; task < batch * kv_heads; ++task) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    const int64_t b = task / kv_heads, kv_head = task % kv_heads;
    const int64_t head0 = kv_head * group;
    attend_group(q + (b * heads + head0) * dim, k_cache, v_cache, slots + b * max_len,
                 lengths[b], kv_heads, kv_head, group, dim, scale, scratch + tid * per_thread,
                 out + (b * heads + head0) * dim);
  }
}
