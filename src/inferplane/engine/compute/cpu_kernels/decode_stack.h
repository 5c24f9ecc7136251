/*
 * A decode step's decoder layers as one call: for each layer the residual add + RMSNorm, the
 * q/k/v product, rotary + KV write, decode attention, the output product, the second norm,
 * gate/up, SwiGLU and down, every op the one the layer runs op by op from Python (small_ops.h
 * and the streaming linears), so the results are the same but for SwiGLU's exp. Called once a
 * step instead of about 8 kernel calls and a dozen torch ops a layer: those cost about 10 us
 * each from Python on SmolLM2's small rows, where the kernel itself takes one or two.
 *
 * Included by kernels.c once per dtype, after small_ops.h's copy and with the same parameters
 * (T, NAME, LOAD, STORE, ROUND, LOAD8, LOAD16) and LINEAR_DENSE(cols, x, w, bias, out, m, n,
 * k, threads), the dtype's streaming linear, or its column linear where cols is true (an int
 * expression: 0, or -1 where it failed); all undefined at the end for the next copy.
 */

#ifndef IP_DECODE_ARGS
#define IP_DECODE_ARGS
/* One linear: weight [n, k] in the dtype, or int8 with one float32 scale per row, or 4-bit
 * codes with float16 block scales (and Q4_1's mins; linear_q4.c) (these two with float32
 * activations only); bias [n] or NULL */
typedef struct {
  const void* weight;
  const float* scale;
  const void* bias;
  int64_t n, k;
  const uint16_t* block_scale; /* non-NULL: 4-bit weights */
  const uint16_t* block_min;
} ip_linear_args;

typedef struct {
  const void* input_norm; /* [hidden] */
  const void* post_norm;
  ip_linear_args qkv, o, gate_up, down;
} ip_layer_args;

/* The step: `rows` single-token sequences. kv_cache [layers, 2, cache_slots, kv_heads, dim];
 * cos, sin [rows, dim]; slot_mapping [rows]; slots [rows, max_len]; lengths [rows]. work:
 * decode_stack_work(...) elements of the dtype; scratch: decode attention's floats. */
typedef struct {
  int64_t rows, hidden, heads, kv_heads, dim, inter, max_len, cache_slots;
  float eps, scale;
  void* kv_cache;
  const void* cos;
  const void* sin;
  const int64_t* slot_mapping;
  const int64_t* slots;
  const int64_t* lengths;
  void* work;
  float* scratch;
  int threads;
  int64_t cols_from; /* from this many rows on, the dense products take the column kernel */
} ip_step_args;

int ip_linear_i8_f32(const float* x, const int8_t* w, const float* scale, const float* bias,
                     float* out, int64_t m, int64_t n, int64_t k, int threads);
int ip_linear_q4_f32(const float* x, const uint8_t* codes, const uint16_t* d,
                     const uint16_t* mins, const float* bias, float* out, int64_t m, int64_t n,
                     int64_t k, int threads);

/* e^-|x| for 16 values (exp16 where built: its inputs must be <= 0), then silu from it */
static inline void silu16(const float* x, float* out) {
  float e[16];
#if defined(__AVX512F__)
  const __m512 v = _mm512_loadu_ps(x);
  _mm512_storeu_ps(e, exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v))));
#else
  for (int i = 0; i < 16; ++i) e[i] = expf(-fabsf(x[i]));
#endif
  for (int i = 0; i < 16; ++i) out[i] = x[i] * (x[i] >= 0.f ? 1.f : e[i]) / (1.f + e[i]);
}
#endif

/* out [rows, inter] = silu(gate) * up, gate_up [rows, 2 inter] ([gate | up] a row); silu
 * rounded to the dtype before the product, as torch's F.silu(gate) * up rounds */
static void NAME(swiglu)(const T* gate_up, T* out, int64_t rows, int64_t inter) {
  for (int64_t t = 0; t < rows; ++t) {
    const T* g = gate_up + t * 2 * inter;
    const T* u = g + inter;
    T* o = out + t * inter;
    float x[16], s[16];
    int64_t i = 0;
    for (; i + 16 <= inter; i += 16) {
      for (int l = 0; l < 16; ++l) x[l] = LOAD(g[i + l]);
      silu16(x, s);
      for (int l = 0; l < 16; ++l) o[i + l] = STORE(ROUND(s[l]) * LOAD(u[i + l]));
    }
    for (; i < inter; ++i) {
      const float v = LOAD(g[i]);
      o[i] = STORE(ROUND(v / (1.f + expf(-v))) * LOAD(u[i]));
    }
  }
}

static int NAME(stack_linear)(const ip_linear_args* a, const T* x, T* out, int64_t rows,
                              int threads, int cols) {
  if (a->block_scale) /* 4-bit weights: float32 activations (the caller checks) */
    return ip_linear_q4_f32((const float*)(const void*)x, (const uint8_t*)a->weight,
                            a->block_scale, a->block_min, (const float*)a->bias,
                            (float*)(void*)out, rows, a->n, a->k, threads);
  if (a->scale) /* int8 weights: float32 activations (the caller checks) */
    return ip_linear_i8_f32((const float*)(const void*)x, (const int8_t*)a->weight, a->scale,
                            (const float*)a->bias, (float*)(void*)out, rows, a->n, a->k,
                            threads);
  return LINEAR_DENSE(cols, x, (const T*)a->weight, (const T*)a->bias, out, rows, a->n, a->k,
                      threads);
}

/* One layer: h (its input, then its MLP output) and residual (updated) as in DecoderLayer */
static int NAME(stack_layer)(const ip_layer_args* a, const ip_step_args* s, T* kv, T* h,
                             T* residual, int first) {
  const int64_t rows = s->rows, width = (s->heads + 2 * s->kv_heads) * s->dim;
  const int64_t kv_size = s->cache_slots * s->kv_heads * s->dim;
  T* x = (T*)s->work;
  T* qkv = x + rows * s->hidden;
  T* q = qkv + rows * width;
  T* att = q + rows * s->heads * s->dim;
  T* o = att + rows * s->heads * s->dim;
  T* gu = o + rows * s->hidden;
  T* act = gu + rows * 2 * s->inter;
  const int th = s->threads, cols = rows >= s->cols_from;
  if (first) {
    memcpy(residual, h, (size_t)(rows * s->hidden) * sizeof(T));
    NAME(ip_rms_norm)(h, (const T*)a->input_norm, x, rows, s->hidden, s->eps, th);
  } else {
    NAME(ip_add_rms_norm)(h, residual, (const T*)a->input_norm, x, rows, s->hidden, s->eps, th);
  }
  if (NAME(stack_linear)(&a->qkv, x, qkv, rows, th, cols)) return -1;
  NAME(ip_rope_cache)(qkv, (const T*)s->cos, (const T*)s->sin, s->slot_mapping, q, kv,
                      kv + kv_size, rows, s->heads, s->kv_heads, s->dim, th);
  NAME(ip_decode_attention)(q, kv, kv + kv_size, s->slots, s->lengths, att, rows, s->heads,
                            s->kv_heads, s->dim, s->max_len, s->scale, s->scratch, th);
  if (NAME(stack_linear)(&a->o, att, o, rows, th, cols)) return -1;
  NAME(ip_add_rms_norm)(o, residual, (const T*)a->post_norm, x, rows, s->hidden, s->eps, th);
  if (NAME(stack_linear)(&a->gate_up, x, gu, rows, th, cols)) return -1;
  NAME(swiglu)(gu, act, rows, s->inter);
  return NAME(stack_linear)(&a->down, act, h, rows, th, cols);
}

/* Every layer in turn: h [rows, hidden] comes in as the embedding and leaves as the last
 * layer's MLP output, residual as the stream before it (their sum is the stack's output).
 * Returns 0, or -1 where a linear could not allocate its scratch. */
int NAME(ip_decode_stack)(const ip_layer_args* layers, int64_t n_layers, const ip_step_args* s,
                          T* h, T* residual) {
  T* kv = (T*)s->kv_cache;
  const int64_t layer_size = 2 * s->cache_slots * s->kv_heads * s->dim;
  for (int64_t i = 0; i < n_layers; ++i)
    if (NAME(stack_layer)(layers + i, s, kv + i * layer_size, h, residual, i == 0)) return -1;
  return 0;
}

#undef T
#undef NAME
#undef LOAD
#undef STORE
#undef ROUND
#undef LOAD8
#undef LOAD16
#undef LINEAR_DENSE
