/*
 * One pass of torch 1.13's _single_tensor_adam / _single_tensor_adamw over a parameter, for the
 * grouped optimizer (src/engine/optimizer.ts). The tf-op route makes ten full-size tensors per
 * parameter per step (a quarter of a small MLP's step on wasm); this reads p, g, m, v once and
 * writes p', m', v' once. Every element goes through the same float32 operations in the same
 * order as optimizer.ts's ops (wasm has no fused multiply-add, so nothing is contracted), so the
 * result equals that route bit for bit; the scalars arrive already rounded to float32 as tf.scalar
 * would round them. Same rules as conv.c: no static data, no shadow stack.
 */
#include "common.h"

/* m, v: the previous moments, or 0 on the parameter's first step (fresh zero state, which the
 * op route skips: 0·β + x is exactly x). decay: multiply p by `keep` first (AdamW's decoupled
 * decay); l2: add l2·p to the gradient (Adam's coupled decay); either flag 0 skips it. */
void EXPORT(adam_step)(const float *p, const float *g, const float *m, const float *v, float *p_out, float *m_out,
                       float *v_out, int n, float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
                       float eps, float neg_step_size, float bias_correction2_sqrt, int decay, float keep, int l2,
                       float l2_factor) {
  const v128_t b1 = wasm_f32x4_splat(beta1), omb1 = wasm_f32x4_splat(one_minus_beta1);
  const v128_t b2 = wasm_f32x4_splat(beta2), omb2 = wasm_f32x4_splat(one_minus_beta2);
  const v128_t ve = wasm_f32x4_splat(eps), step = wasm_f32x4_splat(neg_step_size);
  const v128_t bc2 = wasm_f32x4_splat(bias_correction2_sqrt), vkeep = wasm_f32x4_splat(keep);
  const v128_t vl2 = wasm_f32x4_splat(l2_factor);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t p0 = wasm_v128_load(p + i);
    v128_t gi = wasm_v128_load(g + i);
    const v128_t pi = decay ? wasm_f32x4_mul(p0, vkeep) : p0;
    if (l2) gi = wasm_f32x4_add(gi, wasm_f32x4_mul(p0, vl2));
    v128_t mi = wasm_f32x4_mul(gi, omb1);
    if (m) mi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), b1), mi);
    v128_t vi = wasm_f32x4_mul(wasm_f32x4_mul(gi, omb2), gi);
    if (v) vi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), b2), vi);
    const v128_t denom = wasm_f32x4_add(wasm_f32x4_div(wasm_f32x4_sqrt(vi), bc2), ve);
    wasm_v128_store(p_out + i, wasm_f32x4_add(pi, wasm_f32x4_div(wasm_f32x4_mul(mi, step), denom)));
    wasm_v128_store(m_out + i, mi);
    wasm_v128_store(v_out + i, vi);
  }
  for (; i < n; i++) {
    const float p0 = p[i];
    float gi = g[i];
    const float pi = decay ? p0 * keep : p0;
    if (l2) gi = gi + p0 * l2_factor;
    float mi = gi * one_minus_beta1;
    if (m) mi = m[i] * beta1 + mi;
    float vi = (gi * one_minus_beta2) * gi;
    if (v) vi = v[i] * beta2 + vi;
    const float denom = __builtin_sqrtf(vi) / bias_correction2_sqrt + eps;
    p_out[i] = pi + (mi * neg_step_size) / denom;
    m_out[i] = mi;
    v_out[i] = vi;
  }
}

/* torch 1.13's _single_tensor_sgd (dampening 0) in one pass: d = g (+ l2·p); with momentum,
 * buf = buf·momentum + d (buf = d on the first step, torch's clone) and d = buf, or d + buf·momentum
 * for Nesterov; p' = p + d·(−lr). buf 0 means no previous buffer; buf_out is written only when
 * momentum is on. */
void EXPORT(sgd_step)(const float *p, const float *g, const float *buf, float *p_out, float *buf_out, int n,
                      float neg_lr, int l2, float l2_factor, int use_momentum, float momentum, int nesterov) {
  const v128_t vlr = wasm_f32x4_splat(neg_lr), vl2 = wasm_f32x4_splat(l2_factor), vm = wasm_f32x4_splat(momentum);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t pi = wasm_v128_load(p + i);
    v128_t d = wasm_v128_load(g + i);
    if (l2) d = wasm_f32x4_add(d, wasm_f32x4_mul(pi, vl2));
    if (use_momentum) {
      const v128_t b = buf ? wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(buf + i), vm), d) : d;
      wasm_v128_store(buf_out + i, b);
      d = nesterov ? wasm_f32x4_add(d, wasm_f32x4_mul(b, vm)) : b;
    }
    wasm_v128_store(p_out + i, wasm_f32x4_add(pi, wasm_f32x4_mul(d, vlr)));
  }
  for (; i < n; i++) {
    const float pi = p[i];
    float d = g[i];
    if (l2) d = d + pi * l2_factor;
    if (use_momentum) {
      const float b = buf ? buf[i] * momentum + d : d;
      buf_out[i] = b;
      d = nesterov ? d + b * momentum : b;
    }
    p_out[i] = pi + d * neg_lr;
  }
}
