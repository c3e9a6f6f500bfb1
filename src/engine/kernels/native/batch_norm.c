/*
 * BatchNormalization in training mode, forward and backward, for the tfjs wasm backend. Built
 * into the same module as conv.c (scripts/build-wasm.mjs) and under the same rules: the module
 * borrows the tfjs heap, so no static data and no address-taken locals; every pointer is a
 * byte offset into that heap.
 *
 * x is seen as [rows, channels]: an NHWC activation (or [batch, features]) whose statistics are
 * taken over every axis but the last. tfjs-layers computes them with moments (Mean, Sub, Square,
 * Mean) before FusedBatchNorm, and the tape differentiates each of those ops on its own: about
 * twenty full-size kernels per layer and step. Here it is three passes forward and two back.
 *
 * Column sums are added up BLOCK_ROWS rows at a time into a partial sum that then joins the
 * total, so float32 rounding error grows with rows / BLOCK_ROWS + BLOCK_ROWS rather than with
 * rows (50 000 for a 64×28×28 batch).
 *
 * Every pass reads rows in memory order and keeps its per-channel sums in scratch memory. Two
 * variants that win on a cache-warm tensor in isolation were slower inside a training step
 * (bench/speed.ts --profile, all BatchNorm kernels of the CNN and separable models: 10.3 ms
 * here): one pass for mean and variance with Chan et al.'s block merge instead of two, 11.4 ms;
 * that and sums held in registers a column group at a time, 12.8 ms.
 */
#include "common.h"

/* total[c] = Σ_r x[r, c]; partial holds `channels` floats of scratch. */
static void sum_columns(const float *x, int rows, int channels, float *total, float *partial) {
  fill_zero(total, channels);
  for (int r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
    const int r1 = min_int(rows, r0 + BLOCK_ROWS);
    fill_zero(partial, channels);
    for (int r = r0; r < r1; r++) {
      const float *xs = x + r * channels;
      int c = 0;
      for (; c + 4 <= channels; c += 4) {
        wasm_v128_store(partial + c, wasm_f32x4_add(wasm_v128_load(partial + c), wasm_v128_load(xs + c)));
      }
      for (; c < channels; c++) partial[c] += xs[c];
    }
    add_into(total, partial, channels);
  }
}

/* total[c] = Σ_r (x[r, c] − mean[c])²; partial holds `channels` floats of scratch. */
static void sum_squared_deviations(const float *x, const float *mean, int rows, int channels, float *total,
                                   float *partial) {
  fill_zero(total, channels);
  for (int r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
    const int r1 = min_int(rows, r0 + BLOCK_ROWS);
    fill_zero(partial, channels);
    for (int r = r0; r < r1; r++) {
      const float *xs = x + r * channels;
      int c = 0;
      for (; c + 4 <= channels; c += 4) {
        const v128_t d = wasm_f32x4_sub(wasm_v128_load(xs + c), wasm_v128_load(mean + c));
        wasm_v128_store(partial + c, wasm_f32x4_add(wasm_v128_load(partial + c), wasm_f32x4_mul(d, d)));
      }
      for (; c < channels; c++) {
        const float d = xs[c] - mean[c];
        partial[c] += d * d;
      }
    }
    add_into(total, partial, channels);
  }
}

/* ---------- forward ---------- */

/* y = (x − mean) · scale / √(variance + ε) + offset, where mean and variance (biased, as tfjs's
 * moments gives it) are the batch's own per-channel statistics and are written out too. offset 0
 * means absent. work holds 2·channels floats. */
void EXPORT(batch_norm_train)(const float *x, const float *scale, const float *offset, float epsilon, float *y,
                              float *mean, float *variance, int rows, int channels, float *work) {
  float *partial = work, *gain = work + channels;
  const float inv_rows = 1.0f / (float)rows;
  sum_columns(x, rows, channels, mean, partial);
  for (int c = 0; c < channels; c++) mean[c] *= inv_rows;
  sum_squared_deviations(x, mean, rows, channels, variance, partial);
  for (int c = 0; c < channels; c++) {
    variance[c] *= inv_rows;
    gain[c] = scale[c] / __builtin_sqrtf(variance[c] + epsilon);
  }
  normalize_rows(x, mean, gain, offset, y, rows, channels);
}

/* ---------- backward ---------- */

/* With x̂ = (x − mean) · invstd and invstd = 1/√(variance + ε):
 *   doffset = Σ dy,  dscale = Σ dy · x̂,  dx = scale · invstd · (dy − doffset/N − x̂ · dscale/N).
 * The last two terms of dx are the gradient through the batch mean and variance; the statistics
 * the layer hands to its moving averages feed no loss, so this is the whole gradient. dx is
 * computed as a·dy + k·(x − mean) + b with per-channel a, k, b. work holds 3·channels floats.
 *
 * With `gain` (not 0), dy is the gradient of ReLU6 applied to the layer's output y = (x − mean) ·
 * gain + offset (gain = scale · invstd, as batch_norm_train computes them): each dy is first
 * masked to where 0 < y ≤ 6 (a NaN y passes nothing), exactly what clip_grad would have made of
 * it, so the results are the same bits as clip_grad followed by this gradient, in one pass less. */
static inline __attribute__((always_inline)) void batch_norm_grad(
    const float *x, const float *dy, const float *mean, const float *variance, const float *scale, float epsilon,
    float *dx, float *dscale, float *doffset, int rows, int channels, float *work, const float *gain,
    const float *offset) {
  float *partial_dy = work, *partial_dyxc = work + channels, *total_dyxc = work + 2 * channels;
  const v128_t zero = wasm_f32x4_splat(0.0f), six = wasm_f32x4_splat(6.0f);
#define MASKED(G, D, C)                                                                                         \
  (gain ? wasm_v128_and(G, wasm_v128_and(wasm_f32x4_gt(relu_input(D, C), zero), wasm_f32x4_le(relu_input(D, C), six))) : G)
#define relu_input(D, C) \
  (offset ? wasm_f32x4_add(wasm_f32x4_mul(D, wasm_v128_load(gain + C)), wasm_v128_load(offset + C)) : wasm_f32x4_mul(D, wasm_v128_load(gain + C)))
  fill_zero(doffset, channels);
  fill_zero(total_dyxc, channels);
  for (int r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
    const int r1 = min_int(rows, r0 + BLOCK_ROWS);
    fill_zero(partial_dy, channels);
    fill_zero(partial_dyxc, channels);
    for (int r = r0; r < r1; r++) {
      const float *xs = x + r * channels, *gs = dy + r * channels;
      int c = 0;
      for (; c + 4 <= channels; c += 4) {
        const v128_t d = wasm_f32x4_sub(wasm_v128_load(xs + c), wasm_v128_load(mean + c));
        const v128_t g = MASKED(wasm_v128_load(gs + c), d, c);
        wasm_v128_store(partial_dy + c, wasm_f32x4_add(wasm_v128_load(partial_dy + c), g));
        wasm_v128_store(partial_dyxc + c, wasm_f32x4_add(wasm_v128_load(partial_dyxc + c), wasm_f32x4_mul(g, d)));
      }
      for (; c < channels; c++) {
        const float d = xs[c] - mean[c];
        float g = gs[c];
        if (gain) {
          const float y = d * gain[c] + (offset ? offset[c] : 0.0f);
          if (!(y > 0.0f && y <= 6.0f)) g = 0.0f;
        }
        partial_dy[c] += g;
        partial_dyxc[c] += g * d;
      }
    }
    add_into(doffset, partial_dy, channels);
    add_into(total_dyxc, partial_dyxc, channels);
  }
  // the scratch now holds the coefficients: a in partial_dy, k in partial_dyxc, b in total_dyxc
  const float inv_rows = 1.0f / (float)rows;
  for (int c = 0; c < channels; c++) {
    const float invstd = 1.0f / __builtin_sqrtf(variance[c] + epsilon);
    const float a = scale[c] * invstd;
    dscale[c] = total_dyxc[c] * invstd;
    partial_dy[c] = a;
    partial_dyxc[c] = -a * invstd * dscale[c] * inv_rows;
    total_dyxc[c] = -a * doffset[c] * inv_rows;
  }
  const float *ka = partial_dy, *kk = partial_dyxc, *kb = total_dyxc;
  for (int r = 0; r < rows; r++) {
    const float *xs = x + r * channels, *gs = dy + r * channels;
    float *out = dx + r * channels;
    int c = 0;
    for (; c + 4 <= channels; c += 4) {
      const v128_t d = wasm_f32x4_sub(wasm_v128_load(xs + c), wasm_v128_load(mean + c));
      v128_t v = wasm_f32x4_mul(wasm_v128_load(ka + c), MASKED(wasm_v128_load(gs + c), d, c));
      v = wasm_f32x4_add(v, wasm_f32x4_mul(wasm_v128_load(kk + c), d));
      wasm_v128_store(out + c, wasm_f32x4_add(v, wasm_v128_load(kb + c)));
    }
    for (; c < channels; c++) {
      const float d = xs[c] - mean[c];
      float g = gs[c];
      if (gain) {
        const float y = d * gain[c] + (offset ? offset[c] : 0.0f);
        if (!(y > 0.0f && y <= 6.0f)) g = 0.0f;
      }
      out[c] = ka[c] * g + kk[c] * d + kb[c];
    }
  }
#undef MASKED
#undef relu_input
}

void EXPORT(batch_norm_train_grad)(const float *x, const float *dy, const float *mean, const float *variance,
                                   const float *scale, float epsilon, float *dx, float *dscale, float *doffset,
                                   int rows, int channels, float *work) {
  batch_norm_grad(x, dy, mean, variance, scale, epsilon, dx, dscale, doffset, rows, channels, work, 0, 0);
}

/* ---------- BatchNorm followed by ReLU6 ---------- */

/* The gradient of z = ReLU6(y) for y the output batch_norm_train made from x (with the batch
 * statistics' own gradient, as batch_norm_train_grad), given dz: the ReLU6 mask is applied inside
 * the BatchNorm gradient's two passes (batch_norm_grad), y recomputed from x with the forward
 * pass's operations. offset 0 means absent; work holds 4·channels floats. */
void EXPORT(batch_norm_relu6_grad)(const float *x, const float *dz, const float *mean, const float *variance,
                                   const float *scale, const float *offset, float epsilon, float *dx, float *dscale,
                                   float *doffset, int rows, int channels, float *work) {
  float *gain = work + 3 * channels;
  // as batch_norm_train computes it
  for (int c = 0; c < channels; c++) gain[c] = scale[c] / __builtin_sqrtf(variance[c] + epsilon);
  batch_norm_grad(x, dz, mean, variance, scale, epsilon, dx, dscale, doffset, rows, channels, work, gain, offset);
}
