/*
 * GELU, x · Φ(x) with Φ the standard normal CDF (tfjs-layers' 'gelu' activation, the erf form),
 * forward and gradient each as one pass. tfjs-layers computes it as five ops (div, erf, add, mul,
 * mul) and the tape differentiates each: Exp, Erf, Square, Neg and half a dozen multiplies over the
 * full [batch, seq, 4·hidden] tensor per layer and step, the largest element-wise cost of a BERT
 * encoder on wasm. Loaded into the same module as conv.c (see common.h for its rules).
 *
 * Φ(x) = 1 − q/2 for x ≥ 0 and q/2 for x < 0, with q = erfc(|x|/√2) from Abramowitz–Stegun 7.1.26
 * (the formula tfjs's cpu Erf uses; absolute error ≤ 1.5e-7), taken directly rather than as
 * 1 + erf so that Φ keeps its digits for negative x. The gradient is the exact derivative
 * Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π), as the tape's Erf gradient is exact.
 */
#include "common.h"

static inline v128_t splat(float v) { return wasm_f32x4_splat(v); }

/* e^x for float32 lanes: Cody–Waite reduction by ln 2 and Cephes' expf polynomial (relative
 * error ~1e-7); x is clamped to [−87.3, 88.3], so lanes below give ~1e-38 instead of 0. */
static inline v128_t exp4(v128_t x) {
  x = wasm_f32x4_max(wasm_f32x4_min(x, splat(88.3762626647949f)), splat(-87.3365447504f));
  const v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, splat(-2.12194440e-4f)));
  v128_t p = splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), r), splat(1.0f));
  const v128_t scale = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, scale);
}

/* Φ(x) and φ(x) for four lanes. */
static inline void normal4(v128_t x, v128_t *cdf, v128_t *pdf) {
  const v128_t e = exp4(wasm_f32x4_mul(wasm_f32x4_mul(x, x), splat(-0.5f)));
  const v128_t v = wasm_f32x4_mul(wasm_f32x4_abs(x), splat(0.70710678118654752f));
  const v128_t t = wasm_f32x4_div(splat(1.0f), wasm_f32x4_add(splat(1.0f), wasm_f32x4_mul(splat(0.3275911f), v)));
  v128_t p = splat(1.061405429f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(-1.453152027f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(1.421413741f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(-0.284496736f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, t), splat(0.254829592f));
  const v128_t half_q = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_mul(p, t), e), splat(0.5f));
  // NaN lanes: the comparison is false, and half_q is NaN already
  *cdf = wasm_v128_bitselect(wasm_f32x4_sub(splat(1.0f), half_q), half_q, wasm_f32x4_ge(x, splat(0.0f)));
  *pdf = wasm_f32x4_mul(e, splat(0.39894228040143268f));
}

/* The same for one value, through the vector code so that tails round exactly as the body. */
static inline void normal1(float x, float *cdf, float *pdf) {
  v128_t c, d;
  normal4(wasm_f32x4_splat(x), &c, &d);
  *cdf = wasm_f32x4_extract_lane(c, 0);
  *pdf = wasm_f32x4_extract_lane(d, 0);
}

/* y = x · Φ(x) over n values. */
void EXPORT(gelu)(const float *x, float *y, int n) {
  int i = 0;
  v128_t cdf, pdf;
  for (; i + 4 <= n; i += 4) {
    const v128_t v = wasm_v128_load(x + i);
    normal4(v, &cdf, &pdf);
    wasm_v128_store(y + i, wasm_f32x4_mul(v, cdf));
  }
  for (; i < n; i++) {
    float c, d;
    normal1(x[i], &c, &d);
    y[i] = x[i] * c;
  }
}

/* dx = dy · (Φ(x) + x · φ(x)) over n values. */
void EXPORT(gelu_grad)(const float *x, const float *dy, float *dx, int n) {
  int i = 0;
  v128_t cdf, pdf;
  for (; i + 4 <= n; i += 4) {
    const v128_t v = wasm_v128_load(x + i);
    normal4(v, &cdf, &pdf);
    wasm_v128_store(dx + i, wasm_f32x4_mul(wasm_v128_load(dy + i), wasm_f32x4_add(cdf, wasm_f32x4_mul(v, pdf))));
  }
  for (; i < n; i++) {
    float c, d;
    normal1(x[i], &c, &d);
    dx[i] = dy[i] * (c + x[i] * d);
  }
}
