/*
 * The per-layer decode ops, written once for any storage type and included by kernels.c once
 * per dtype (no include guard on purpose), decode_stack.h after it. The includer defines
 * (decode_stack.h undefines them at its end):
 *   T          the storage type (bf16, f16, float)
 *   NAME(f)    f with the dtype's suffix (ip_rms_norm -> ip_rms_norm_bf16)
 *   LOAD(v)    T -> float;  STORE(f) float -> T, rounded as torch rounds
 *   ROUND(f)   f rounded to T and back: where torch keeps an intermediate in the dtype
 *   LOAD8(p)   8 values of T at p as a __m256 of float32 (used only where __AVX2__)
 *   LOAD16(p)  16 values as a __m512 of float32 (used only where __AVX512F__)
 * Arithmetic is float32 throughout; for float32 storage LOAD, STORE and ROUND are identities.
 */

/* ---- RMSNorm, optionally after adding the residual -------------------------------------- */

static void NAME(norm_row)(const T* h, const T* weight, T* out, int64_t n, float eps) {
  float sq = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    float v = LOAD(h[i]);
    sq += v * v;
  }
  const float inv = 1.f / sqrtf(sq / (float)n + eps);
  for (int64_t i = 0; i < n; ++i) {
    /* torch: weight * (h * rsqrt(...)).to(dtype), each product rounded to the dtype */
    float scaled = ROUND(LOAD(h[i]) * inv);
    out[i] = STORE(LOAD(weight[i]) * scaled);
  }
}

/* out[t] = rmsnorm(x[t]) * weight */
void NAME(ip_rms_norm)(const T* x, const T* weight, T* out, int64_t rows, int64_t n, float eps,
                 int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) NAME(norm_row)(x + t * n, weight, out + t * n, n, eps);
}

/* residual[t] += x[t] (rounded to the dtype, as torch adds), then out[t] = rmsnorm(residual[t]) */
void NAME(ip_add_rms_norm)(const T* x, T* residual, const T* weight, T* out, int64_t rows,
                     int64_t n, float eps, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) {
    T* r = residual + t * n;
    const T* a = x + t * n;
    for (int64_t i = 0; i < n; ++i) r[i] = STORE(LOAD(r[i]) + LOAD(a[i]));
    NAME(norm_row)(r, weight, out + t * n, n, eps);
  }
}

/* ---- rotary embedding and the KV-cache write --------------------------------------------
 * qkv [T, heads + 2 * kv_heads, dim]: each row's queries, keys and values side by side.
 * cos, sin [T, dim]: per-row tables, sin's first half negated (see models/layers.Rotary), so
 * rotated[i] = x[i] * cos[i] + x[(i + dim/2) % dim] * sin[i], rounded as torch's addcmul.
 * Rotated queries go to q_out [T, heads, dim]; rotated keys and the values go to the cache
 * slots slot_mapping[t] of k_cache, v_cache [slots, kv_heads, dim].
 */
static inline T NAME(rotate_one)(T x, T partner, T cos, T sin) {
  return STORE(ROUND(LOAD(x) * LOAD(cos)) + LOAD(partner) * LOAD(sin));
}

/* the two halves apart, each partner at a fixed offset: a loop the compiler vectorizes */
static void NAME(rotate_head)(const T* x, const T* cos, const T* sin, T* out, int64_t dim) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) out[i] = NAME(rotate_one)(x[i], x[i + half], cos[i], sin[i]);
  for (int64_t i = half; i < dim; ++i)
    out[i] = NAME(rotate_one)(x[i], x[i - half], cos[i], sin[i]);
}

void NAME(ip_rope_cache)(const T* qkv, const T* cos, const T* sin, const int64_t* slot_mapping,
                   T* q_out, T* k_cache, T* v_cache, int64_t rows, int64_t heads,
                   int64_t kv_heads, int64_t dim, int threads) {
  const int64_t width = (heads + 2 * kv_heads) * dim;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) {
    const T* row = qkv + t * width;
    const T* c = cos + t * dim;
    const T* s = sin + t * dim;
    for (int64_t h = 0; h < heads; ++h) NAME(rotate_head)(row + h * dim, c, s, q_out + (t * heads + h) * dim, dim);
    T* k_slot = k_cache + slot_mapping[t] * kv_heads * dim;
    T* v_slot = v_cache + slot_mapping[t] * kv_heads * dim;
    for (int64_t h = 0; h < kv_heads; ++h) NAME(rotate_head)(row + (heads + h) * dim, c, s, k_slot + h * dim, dim);
    memcpy(v_slot, row + (heads + kv_heads) * dim, (size_t)(kv_heads * dim) * sizeof(T));
  }
}

/* ---- decode attention over the paged cache ----------------------------------------------
 * q [batch, heads, dim]; k_cache, v_cache [slots, kv_heads, dim]; slots [batch, max_len] (the
 * context's cache slots, padded); lengths [batch]; out [batch, heads, dim]. Query head h reads
 * KV head h / (heads / kv_heads). A task is one sequence and a range of its KV heads: all of
 * them where there are as many sequences as threads, so each slot's K and V rows (its KV heads
 * side by side) are read in one sweep down the context, in address order within a block; the
 * group of query heads of each KV head shares every row loaded. Where the target has AVX2 the
 * context goes in blocks of 8 positions: 8 scores share one finishing sum (sum8x8), and the
 * value sums are loaded and stored once per block (one Zen 4 thread, 16 sequences of 64-128
 * positions, cache-resident: 2.0x; with each layer's cache cold, as in a step, 1.03x in
 * float32 and 1.14x in bfloat16, the reads of the cache then the limit, which the prefetch
 * of the next block's rows below takes on).
 */
/* q (float32) . k (the dtype) over dim, in 16 independent lanes the compiler vectorizes */
static inline float NAME(dot_q_k)(const float* q, const T* k, int64_t dim) {
  float lanes[16] = {0.f};
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16)
    for (int l = 0; l < 16; ++l) lanes[l] += q[i + l] * LOAD(k[i + l]);
  /* halve the lanes in a tree: vector adds, not a serial chain of 16 scalar ones */
  for (int width = 8; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  float s = lanes[0];
  for (; i < dim; ++i) s += q[i] * LOAD(k[i]);
  return s;
}

#if defined(__AVX2__)
enum { NAME(BLOCK) = 8 }; /* context positions per block of the vector path */

static inline __m256 NAME(load8)(const T* p) { return LOAD8(p); }

/* scores[0..7] = q . k of the 8 positions whose key rows are rows[0..7] (dim % 8 == 0): the
 * query's 8-lane pieces meet the 8 rows side by side, 8 independent sums, then sum8x8. */
static inline void NAME(scores8)(const float* q, const T* const rows[8], int64_t dim,
                                 float* scores) {
  __m256 acc[8];
  for (int p = 0; p < 8; ++p) acc[p] = _mm256_setzero_ps();
  for (int64_t i = 0; i < dim; i += 8) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    for (int p = 0; p < 8; ++p) acc[p] = _mm256_fmadd_ps(qv, NAME(load8)(rows[p] + i), acc[p]);
  }
  _mm256_storeu_ps(scores, sum8x8(acc));
}

/* acc[0..dim) += sum over the 8 positions of probs[p] * their value rows (dim % 8 == 0):
 * each 8-lane piece of acc is loaded and stored once per 8 positions, not once per position */
static inline void NAME(values8)(const float* probs, const T* const rows[8], int64_t dim,
                                 float* acc) {
  for (int64_t i = 0; i < dim; i += 8) {
    __m256 a = _mm256_loadu_ps(acc + i);
    for (int p = 0; p < 8; ++p)
      a = _mm256_fmadd_ps(_mm256_set1_ps(probs[p]), NAME(load8)(rows[p] + i), a);
    _mm256_storeu_ps(acc + i, a);
  }
}
#endif

#if defined(__AVX512F__)
/* scores8 and values8 with 16 lanes, where dim % 16 == 0: half the products' instructions
 * (each lane sum of a score first folded to 8 lanes, then sum8x8). SmolLM2's 30 layers at 540
 * positions, caches evicted between steps, one Zen 4 thread, interleaved: bfloat16 2.78 ->
 * 2.51 ms (1.07-1.08x in two runs), float32 3.54 -> 3.43 ms (1.04-1.05x) */
static inline void NAME(scores16)(const float* q, const T* const rows[8], int64_t dim,
                                  float* scores) {
  __m512 acc[8];
  for (int p = 0; p < 8; ++p) acc[p] = _mm512_setzero_ps();
  for (int64_t i = 0; i < dim; i += 16) {
    const __m512 qv = _mm512_loadu_ps(q + i);
    for (int p = 0; p < 8; ++p) acc[p] = _mm512_fmadd_ps(qv, LOAD16(rows[p] + i), acc[p]);
  }
  __m256 half[8];
  for (int p = 0; p < 8; ++p)
    half[p] = _mm256_add_ps(_mm512_castps512_ps256(acc[p]),
                            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p]), 1)));
  _mm256_storeu_ps(scores, sum8x8(half));
}

static inline void NAME(values16)(const float* probs, const T* const rows[8], int64_t dim,
                                  float* acc) {
  for (int64_t i = 0; i < dim; i += 16) {
    __m512 a = _mm512_loadu_ps(acc + i);
    for (int p = 0; p < 8; ++p)
      a = _mm512_fmadd_ps(_mm512_set1_ps(probs[p]), LOAD16(rows[p] + i), a);
    _mm512_storeu_ps(acc + i, a);
  }
}
#endif

/* Positions [0, done) of the context in blocks of 8 where the vector path applies (AVX2 and
 * up, dim % 8 == 0): scores for every head (cache = k) or the value sums (cache = v, scores
 * already softmaxed). Returns `done`; the caller takes the rest one position at a time. */
static int64_t NAME(blocks)(const float* qf, const T* cache, const int64_t* slots, int64_t len,
                            int64_t kv_heads, int64_t kv0, int64_t n, int64_t group, int64_t dim,
                            float* scores, float* acc, int is_value) {
#if defined(__AVX2__)
  if (dim % 8) return 0;
  const int64_t done = len - len % NAME(BLOCK);
  const int64_t row_bytes = (n / group) * dim * (int64_t)sizeof(T);
  for (int64_t j = 0; j < done; j += NAME(BLOCK)) {
    /* the next block's rows into L2: a context lies in cache blocks scattered over memory,
     * so the hardware prefetcher loses the stream at each one (16 sequences of 64-128
     * positions, every layer's cache cold: 1.53x in float32, 1.56x in bfloat16; into L1 it
     * evicted the rows in use and gained nothing) */
    for (int64_t p = j + NAME(BLOCK); p < j + 2 * NAME(BLOCK) && p < len; ++p) {
      const char* ahead = (const char*)(cache + (slots[p] * kv_heads + kv0) * dim);
      for (int64_t b = 0; b < row_bytes; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T1);
    }
    const T* base[NAME(BLOCK)];
    for (int p = 0; p < NAME(BLOCK); ++p) base[p] = cache + (slots[j + p] * kv_heads + kv0) * dim;
    for (int64_t h = 0; h < n; ++h) {
      const T* rows[NAME(BLOCK)];
      for (int p = 0; p < NAME(BLOCK); ++p) rows[p] = base[p] + (h / group) * dim;
#if defined(__AVX512F__)
      if (dim % 16 == 0) {
        if (is_value)
          NAME(values16)(scores + h * len + j, rows, dim, acc + h * dim);
        else
          NAME(scores16)(qf + h * dim, rows, dim, scores + h * len + j);
        continue;
      }
#endif
      if (is_value)
        NAME(values8)(scores + h * len + j, rows, dim, acc + h * dim);
      else
        NAME(scores8)(qf + h * dim, rows, dim, scores + h * len + j);
    }
  }
  return done;
#else
  (void)qf, (void)cache, (void)slots, (void)len, (void)kv_heads, (void)kv0, (void)n;
  (void)group, (void)dim, (void)scores, (void)acc, (void)is_value;
  return 0;
#endif
}

/* KV heads [kv0, kv1) of one sequence; q and out point at query head kv0 * group. scratch
 * holds n * (dim + len + dim) floats for the n = (kv1 - kv0) * group query heads: queries,
 * scores, accumulators. */
static void NAME(attend_heads)(const T* q, const T* k_cache, const T* v_cache,
                               const int64_t* slots, int64_t len, int64_t kv_heads, int64_t kv0,
                               int64_t kv1, int64_t group, int64_t dim, float scale,
                               float* scratch, T* out) {
  const int64_t n = (kv1 - kv0) * group;
  float* qf = scratch;
  float* scores = qf + n * dim;
  float* acc = scores + n * len;
  for (int64_t i = 0; i < n * dim; ++i) qf[i] = LOAD(q[i]) * scale;
  const int64_t blocked =
      NAME(blocks)(qf, k_cache, slots, len, kv_heads, kv0, n, group, dim, scores, acc, 0);
  for (int64_t j = blocked; j < len; ++j) {
    const T* row = k_cache + (slots[j] * kv_heads + kv0) * dim;
    for (int64_t h = 0; h < n; ++h)
      scores[h * len + j] = NAME(dot_q_k)(qf + h * dim, row + (h / group) * dim, dim);
  }
  for (int64_t h = 0; h < n; ++h) softmax_in_place(scores + h * len, len);
  memset(acc, 0, (size_t)(n * dim) * sizeof(float));
  NAME(blocks)(qf, v_cache, slots, len, kv_heads, kv0, n, group, dim, scores, acc, 1);
  for (int64_t j = blocked; j < len; ++j) {
    const T* row = v_cache + (slots[j] * kv_heads + kv0) * dim;
    for (int64_t h = 0; h < n; ++h) {
      const float p = scores[h * len + j];
      const T* vr = row + (h / group) * dim;
      float* a = acc + h * dim;
      for (int64_t i = 0; i < dim; ++i) a[i] += p * LOAD(vr[i]);
    }
  }
  for (int64_t i = 0; i < n * dim; ++i) out[i] = STORE(acc[i]);
}

/* scratch: threads * heads * (2 * dim + max_len) floats, owned by the caller */
void NAME(ip_decode_attention)(const T* q, const T* k_cache, const T* v_cache,
                               const int64_t* slots, const int64_t* lengths, T* out,
                               int64_t batch, int64_t heads, int64_t kv_heads, int64_t dim,
                               int64_t max_len, float scale, float* scratch, int threads) {
  const int64_t group = heads / kv_heads;
  const int64_t per_thread = heads * (2 * dim + max_len);
  /* split each sequence's KV heads only as far as it takes to give every thread a task */
  int64_t parts = (threads + batch - 1) / batch;
  parts = parts < 1 ? 1 : parts > kv_heads ? kv_heads : parts;
  const int64_t tasks = batch * parts;
#pragma omp parallel for num_threads(threads) schedule(static) if (tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    const int64_t b = task / parts, part = task % parts;
    const int64_t kv0 = part * kv_heads / parts, kv1 = (part + 1) * kv_heads / parts;
    const int64_t head0 = kv0 * group;
    NAME(attend_heads)(q + (b * heads + head0) * dim, k_cache, v_cache, slots + b * max_len,
                       lengths[b], kv_heads, kv0, kv1, group, dim, scale,
                       scratch + tid * per_thread, out + (b * heads + head0) * dim);
  }
}
