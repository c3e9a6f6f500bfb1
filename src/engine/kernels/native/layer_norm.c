/*
 * LayerNormalization over the last axis, forward and backward, for the tfjs wasm backend. Built
 * into the same module as conv.c (scripts/build-wasm.mjs) and under the same rules: the module
 * borrows the tfjs heap, so no static data and no address-taken locals; every pointer is a
 * byte offset into that heap.
 *
 * x is seen as [rows, channels] and each ROW is normalised over its channels (a token's
 * features), the opposite of batch_norm.c. tfjs-layers computes it with moments, four Tiles and
 * FusedBatchNorm, and the tape differentiates each of those ops on its own; here a row is read
 * twice forward and twice back, while it sits in L1.
 *
 * The forward writes each row's mean and 1/√(variance + ε) for the backward to reuse. Having the
 * backward recompute them from x instead (one more pass over a row in L1, two fewer tensors for
 * tfjs to make, save and free) measured the same or slower: forward + backward of a [32, 32, 64]
 * layer through the tape 178–186 µs against 165–173 µs.
 */
#include "common.h"

static inline float lanes_sum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* Σ_c xs[c], in two vector accumulators so that consecutive adds do not wait on each other. */
static inline float row_sum(const float *xs, int channels) {
  v128_t s0 = wasm_f32x4_splat(0.0f), s1 = wasm_f32x4_splat(0.0f);
  int c = 0;
  for (; c + 8 <= channels; c += 8) {
    s0 = wasm_f32x4_add(s0, wasm_v128_load(xs + c));
    s1 = wasm_f32x4_add(s1, wasm_v128_load(xs + c + 4));
  }
  for (; c + 4 <= channels; c += 4) s0 = wasm_f32x4_add(s0, wasm_v128_load(xs + c));
  float s = lanes_sum(wasm_f32x4_add(s0, s1));
  for (; c < channels; c++) s += xs[c];
  return s;
}

/* Σ_c (xs[c] − mean)²: two passes rather than Σx² − N·mean², which cancels for rows far from zero. */
static inline float row_squared_deviations(const float *xs, float mean, int channels) {
  const v128_t m = wasm_f32x4_splat(mean);
  v128_t s0 = wasm_f32x4_splat(0.0f), s1 = wasm_f32x4_splat(0.0f);
  int c = 0;
  for (; c + 8 <= channels; c += 8) {
    const v128_t d0 = wasm_f32x4_sub(wasm_v128_load(xs + c), m);
    const v128_t d1 = wasm_f32x4_sub(wasm_v128_load(xs + c + 4), m);
    s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(d0, d0));
    s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(d1, d1));
  }
  for (; c + 4 <= channels; c += 4) {
    const v128_t d = wasm_f32x4_sub(wasm_v128_load(xs + c), m);
    s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(d, d));
  }
  float s = lanes_sum(wasm_f32x4_add(s0, s1));
  for (; c < channels; c++) {
    const float d = xs[c] - mean;
    s += d * d;
  }
  return s;
}

/* ---------- forward ---------- */

/* Per row: y = (x − mean) · invstd · gamma + beta, with the row's mean and biased variance (as
 * tfjs's moments gives them) and invstd = 1/√(variance + ε); mean and invstd are written out,
 * one per row. gamma or beta 0 means absent. */
void EXPORT(layer_norm_train)(const float *x, const float *gamma, const float *beta, float epsilon, float *y,
                              float *mean, float *invstd, int rows, int channels) {
  const float inv_channels = 1.0f / (float)channels;
  for (int r = 0; r < rows; r++) {
    const float *xs = x + r * channels;
    float *ys = y + r * channels;
    const float m = row_sum(xs, channels) * inv_channels;
    const float s = 1.0f / __builtin_sqrtf(row_squared_deviations(xs, m, channels) * inv_channels + epsilon);
    mean[r] = m;
    invstd[r] = s;
    const v128_t vm = wasm_f32x4_splat(m), vs = wasm_f32x4_splat(s);
    int c = 0;
    for (; c + 4 <= channels; c += 4) {
      v128_t v = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xs + c), vm), vs);
      if (gamma) v = wasm_f32x4_mul(v, wasm_v128_load(gamma + c));
      if (beta) v = wasm_f32x4_add(v, wasm_v128_load(beta + c));
      wasm_v128_store(ys + c, v);
    }
    for (; c < channels; c++) {
      float v = (xs[c] - m) * s;
      if (gamma) v *= gamma[c];
      if (beta) v += beta[c];
      ys[c] = v;
    }
  }
}

/* ---------- backward ---------- */

/* With x̂ = (x − mean) · invstd and g = dy · gamma (dy without gamma), per row:
 *   dx = invstd · (g − mean_c(g) − x̂ · mean_c(g · x̂)),
 * and over all rows dgamma = Σ dy · x̂, dbeta = Σ dy. The column sums are added up BLOCK_ROWS
 * rows at a time into a partial sum that then joins the total (rounding error grows with
 * rows / BLOCK_ROWS + BLOCK_ROWS rather than with rows). work holds 2·channels floats. */
void EXPORT(layer_norm_train_grad)(const float *x, const float *dy, const float *gamma, const float *mean,
                                   const float *invstd, float *dx, float *dgamma, float *dbeta, int rows,
                                   int channels, float *work) {
  float *partial_dgamma = work, *partial_dbeta = work + channels;
  const float inv_channels = 1.0f / (float)channels;
  fill_zero(dgamma, channels);
  fill_zero(dbeta, channels);
  for (int r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
    const int r1 = min_int(rows, r0 + BLOCK_ROWS);
    fill_zero(partial_dgamma, channels);
    fill_zero(partial_dbeta, channels);
    for (int r = r0; r < r1; r++) {
      const float *xs = x + r * channels, *gs = dy + r * channels;
      float *out = dx + r * channels;
      const float m = mean[r], s = invstd[r];
      const v128_t vm = wasm_f32x4_splat(m), vs = wasm_f32x4_splat(s);
      v128_t sum_g = wasm_f32x4_splat(0.0f), sum_gx = wasm_f32x4_splat(0.0f);
      int c = 0;
      for (; c + 4 <= channels; c += 4) {
        const v128_t d = wasm_v128_load(gs + c);
        const v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xs + c), vm), vs);
        const v128_t g = gamma ? wasm_f32x4_mul(d, wasm_v128_load(gamma + c)) : d;
        sum_g = wasm_f32x4_add(sum_g, g);
        sum_gx = wasm_f32x4_add(sum_gx, wasm_f32x4_mul(g, xh));
        wasm_v128_store(partial_dgamma + c, wasm_f32x4_add(wasm_v128_load(partial_dgamma + c), wasm_f32x4_mul(d, xh)));
        wasm_v128_store(partial_dbeta + c, wasm_f32x4_add(wasm_v128_load(partial_dbeta + c), d));
      }
      float row_g = lanes_sum(sum_g), row_gx = lanes_sum(sum_gx);
      for (int t = c; t < channels; t++) {
        const float xh = (xs[t] - m) * s;
        const float g = gamma ? gs[t] * gamma[t] : gs[t];
        row_g += g;
        row_gx += g * xh;
        partial_dgamma[t] += gs[t] * xh;
        partial_dbeta[t] += gs[t];
      }
      // dx = s·g + k·x̂ + b
      const float k = -s * row_gx * inv_channels, b = -s * row_g * inv_channels;
      const v128_t vk = wasm_f32x4_splat(k), vb = wasm_f32x4_splat(b);
      c = 0;
      for (; c + 4 <= channels; c += 4) {
        const v128_t d = wasm_v128_load(gs + c);
        const v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xs + c), vm), vs);
        const v128_t g = gamma ? wasm_f32x4_mul(d, wasm_v128_load(gamma + c)) : d;
        wasm_v128_store(out + c, wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(vs, g), wasm_f32x4_mul(vk, xh)), vb));
      }
      for (; c < channels; c++) {
        const float xh = (xs[c] - m) * s;
        const float g = gamma ? gs[c] * gamma[c] : gs[c];
        out[c] = s * g + k * xh + b;
      }
    }
    add_into(dgamma, partial_dgamma, channels);
    add_into(dbeta, partial_dbeta, channels);
  }
}
