/*
 * Convolution gradients for the tfjs wasm backend, in wasm SIMD128. Built by
 * scripts/build-wasm.mjs into dist/kernels/conv.wasm and loaded by ../native.ts.
 *
 * The module imports the tfjs wasm module's own memory: every pointer below is a byte offset
 * into that heap (a tensor's memoryOffset, or a block from its malloc), so inputs and outputs
 * are never copied. The code must therefore own no linear memory at all: no static data, no
 * address-taken locals (they would live on a shadow stack). The build links with a zero-size
 * stack at address 0, so any shadow-stack use would wrap below 0 and trap instead of silently
 * writing into tfjs's heap.
 *
 * All tensors are NHWC. The forward convolution reads input pixel o·s + k·d − pad for output
 * pixel o and filter tap k (stride s, dilation d) on each spatial axis; taps that land outside
 * the input read zero.
 *
 * Both ordinary-conv gradients are matrix products over im2col columns, done a chunk of output
 * pixels at a time so the packed operands stay in cache:
 *   filter: dW[(i,j,ci), co] = Σ_p col[p, (i,j,ci)] · dy[p, co]        (colᵀ · dY)
 *   input:  dcol[p, (i,j,ci)] = Σ_co dy[p, co] · W[(i,j,ci), co]        (dY · Wᵀ), then col2im
 * The product's inner kernel computes a 4×8 block of the result with 8 SIMD accumulators:
 * V8 maps wasm SIMD onto SSE registers (16 of them) and there is no fused multiply-add.
 */
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name))) name

enum { MR = 4, NR = 8 };

static inline int round_up(int n, int m) { return (n + m - 1) / m * m; }
static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int max_int(int a, int b) { return a > b ? a : b; }

/*
 * c[0..4)[0..8) (row stride ldc) = (accumulate ? c : 0) + Σ_k a[k][0..4) ⊗ b[k][0..8):
 * a is a packed panel of 4 rows, b one of 8 columns, both k-major.
 */
static inline void block_4x8(int k, const float *restrict a, const float *restrict b, float *restrict c, int ldc,
                             int accumulate) {
  v128_t c00, c01, c10, c11, c20, c21, c30, c31;
  if (accumulate) {
    c00 = wasm_v128_load(c), c01 = wasm_v128_load(c + 4);
    c10 = wasm_v128_load(c + ldc), c11 = wasm_v128_load(c + ldc + 4);
    c20 = wasm_v128_load(c + 2 * ldc), c21 = wasm_v128_load(c + 2 * ldc + 4);
    c30 = wasm_v128_load(c + 3 * ldc), c31 = wasm_v128_load(c + 3 * ldc + 4);
  } else {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = wasm_f32x4_splat(0.0f);
  }
  for (int p = 0; p < k; p++, a += MR, b += NR) {
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    const v128_t a0 = wasm_v128_load32_splat(a), a1 = wasm_v128_load32_splat(a + 1);
    const v128_t a2 = wasm_v128_load32_splat(a + 2), a3 = wasm_v128_load32_splat(a + 3);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a0, b0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a0, b1));
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a1, b0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a1, b1));
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a2, b0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a2, b1));
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a3, b0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a3, b1));
  }
  wasm_v128_store(c, c00), wasm_v128_store(c + 4, c01);
  wasm_v128_store(c + ldc, c10), wasm_v128_store(c + ldc + 4, c11);
  wasm_v128_store(c + 2 * ldc, c20), wasm_v128_store(c + 2 * ldc + 4, c21);
  wasm_v128_store(c + 3 * ldc, c30), wasm_v128_store(c + 3 * ldc + 4, c31);
}

static void zero(float *p, int n) {
  for (int i = 0; i < n; i++) p[i] = 0.0f;
}

/* Output pixels per chunk: enough to amortise packing, few enough that a packed operand of
 * `width` floats per pixel stays within ~256 KB of L2. */
static inline int chunk_pixels(int width) { return max_int(16, min_int(512, 65536 / width)); }

/* ---------- Conv2DBackpropFilter ---------- */

int EXPORT(conv2d_filter_grad_work)(int taps, int out_c) {
  const int m = round_up(taps, MR), n = round_up(out_c, NR);
  return chunk_pixels(m) * (m + n) + m * n;
}

/* dw [fh, fw, in_c, out_c] from x [batch, in_h, in_w, in_c] and dy [batch, out_h, out_w, out_c];
 * work holds conv2d_filter_grad_work(fh·fw·in_c, out_c) floats. */
void EXPORT(conv2d_filter_grad)(const float *x, const float *dy, float *dw, float *work, int batch, int in_h,
                                int in_w, int in_c, int out_h, int out_w, int out_c, int fh, int fw, int sh, int sw,
                                int dh, int dw_, int top, int left) {
  const int m = fh * fw * in_c, mp = round_up(m, MR), np = round_up(out_c, NR);
  const int chunk = chunk_pixels(mp), pixels = batch * out_h * out_w;
  float *apack = work, *bpack = work + chunk * mp, *acc = bpack + chunk * np;
  zero(acc, mp * np);
  for (int p0 = 0; p0 < pixels; p0 += chunk) {
    const int pc = min_int(chunk, pixels - p0);
    // im2col straight into 4-row panels: column (i, j, ci) of pixel q goes to panel ⌊r/4⌋, slot r mod 4
    for (int q = 0; q < pc; q++) {
      const int p = p0 + q, n = p / (out_h * out_w), oh = p / out_w % out_h, ow = p % out_w;
      float *dst = apack + q * MR;
      for (int i = 0; i < fh; i++) {
        const int h = oh * sh + i * dh - top;
        for (int j = 0; j < fw; j++) {
          const int w = ow * sw + j * dw_ - left, r0 = (i * fw + j) * in_c;
          const int inside = h >= 0 && h < in_h && w >= 0 && w < in_w;
          const float *src = x + ((n * in_h + h) * in_w + w) * in_c;
          for (int c = 0; c < in_c; c++) {
            const int r = r0 + c;
            dst[(r / MR) * pc * MR + r % MR] = inside ? src[c] : 0.0f;
          }
        }
      }
      for (int r = m; r < mp; r++) dst[(r / MR) * pc * MR + r % MR] = 0.0f;
    }
    for (int q = 0; q < pc; q++) {
      const float *src = dy + (p0 + q) * out_c;
      for (int c = 0; c < np; c++) bpack[(c / NR) * pc * NR + q * NR + c % NR] = c < out_c ? src[c] : 0.0f;
    }
    for (int nb = 0; nb < np / NR; nb++) {
      for (int mb = 0; mb < mp / MR; mb++) {
        block_4x8(pc, apack + mb * pc * MR, bpack + nb * pc * NR, acc + mb * MR * np + nb * NR, np, 1);
      }
    }
  }
  for (int r = 0; r < m; r++) {
    for (int c = 0; c < out_c; c++) dw[r * out_c + c] = acc[r * np + c];
  }
}

/* ---------- Conv2DBackpropInput ---------- */

int EXPORT(conv2d_input_grad_work)(int taps, int out_c) {
  const int n = round_up(taps, NR);
  const int chunk = round_up(chunk_pixels(n), MR);
  return n * out_c + chunk * out_c + chunk * n;
}

/* dx [batch, in_h, in_w, in_c] from dy [batch, out_h, out_w, out_c] and filter [fh, fw, in_c, out_c];
 * work holds conv2d_input_grad_work(fh·fw·in_c, out_c) floats. */
void EXPORT(conv2d_input_grad)(const float *dy, const float *filter, float *dx, float *work, int batch, int in_h,
                               int in_w, int in_c, int out_h, int out_w, int out_c, int fh, int fw, int sh, int sw,
                               int dh, int dw_, int top, int left) {
  const int taps = fh * fw * in_c, np = round_up(taps, NR);
  const int chunk = round_up(chunk_pixels(np), MR), pixels = batch * out_h * out_w;
  float *bpack = work, *apack = bpack + np * out_c, *cols = apack + chunk * out_c;
  // Wᵀ in 8-column panels, once: panel ⌊t/8⌋ holds W[t, co] at [co][t mod 8]
  for (int t = 0; t < np; t++) {
    for (int co = 0; co < out_c; co++) {
      bpack[(t / NR) * out_c * NR + co * NR + t % NR] = t < taps ? filter[t * out_c + co] : 0.0f;
    }
  }
  zero(dx, batch * in_h * in_w * in_c);
  for (int p0 = 0; p0 < pixels; p0 += chunk) {
    const int pc = min_int(chunk, pixels - p0), pcp = round_up(pc, MR);
    // dy rows in 4-pixel panels: panel ⌊q/4⌋ holds dy[q, co] at [co][q mod 4]
    for (int q = 0; q < pcp; q++) {
      const float *src = dy + (p0 + q) * out_c;
      float *dst = apack + (q / MR) * out_c * MR + q % MR;
      if (q < pc) {
        for (int co = 0; co < out_c; co++) dst[co * MR] = src[co];
      } else {
        for (int co = 0; co < out_c; co++) dst[co * MR] = 0.0f;
      }
    }
    for (int mb = 0; mb < pcp / MR; mb++) {
      for (int nb = 0; nb < np / NR; nb++) {
        block_4x8(out_c, apack + mb * out_c * MR, bpack + nb * out_c * NR, cols + mb * MR * np + nb * NR, np, 0);
      }
    }
    // col2im: each tap's column slice adds into the input pixel it read
    for (int q = 0; q < pc; q++) {
      const int p = p0 + q, n = p / (out_h * out_w), oh = p / out_w % out_h, ow = p % out_w;
      for (int i = 0; i < fh; i++) {
        const int h = oh * sh + i * dh - top;
        if (h < 0 || h >= in_h) continue;
        for (int j = 0; j < fw; j++) {
          const int w = ow * sw + j * dw_ - left;
          if (w < 0 || w >= in_w) continue;
          const float *src = cols + q * np + (i * fw + j) * in_c;
          float *dst = dx + ((n * in_h + h) * in_w + w) * in_c;
          int c = 0;
          for (; c + 4 <= in_c; c += 4) {
            wasm_v128_store(dst + c, wasm_f32x4_add(wasm_v128_load(dst + c), wasm_v128_load(src + c)));
          }
          for (; c < in_c; c++) dst[c] += src[c];
        }
      }
    }
  }
}

/* ---------- depthwise ---------- */

/* First and one-past-last output index o with 0 ≤ o·s + offset < size. */
static inline int first_inside(int offset, int s) { return offset >= 0 ? 0 : (-offset + s - 1) / s; }
static inline int end_inside(int offset, int s, int size, int out) {
  return size - offset <= 0 ? 0 : min_int(out, (size - offset + s - 1) / s);
}

/* dw [fh, fw, c, mult] from x [batch, in_h, in_w, c] and dy [batch, out_h, out_w, c·mult]. Each
 * tap's accumulator stays in a register along an output row. */
void EXPORT(depthwise_filter_grad)(const float *x, const float *dy, float *dw, int batch, int in_h, int in_w,
                                   int channels, int mult, int out_h, int out_w, int fh, int fw, int sh, int sw,
                                   int dh, int dw_, int top, int left) {
  const int oc = channels * mult;
  zero(dw, fh * fw * oc);
  for (int n = 0; n < batch; n++) {
    for (int oh = 0; oh < out_h; oh++) {
      const float *dyrow = dy + (n * out_h + oh) * out_w * oc;
      for (int i = 0; i < fh; i++) {
        const int h = oh * sh + i * dh - top;
        if (h < 0 || h >= in_h) continue;
        const float *xrow = x + (n * in_h + h) * in_w * channels;
        for (int j = 0; j < fw; j++) {
          const int offset = j * dw_ - left;
          const int lo = first_inside(offset, sw), hi = end_inside(offset, sw, in_w, out_w);
          float *acc = dw + (i * fw + j) * oc;
          if (mult == 1) {
            int c = 0;
            for (; c + 4 <= channels; c += 4) {
              v128_t a = wasm_v128_load(acc + c);
              for (int ow = lo; ow < hi; ow++) {
                const v128_t xv = wasm_v128_load(xrow + (ow * sw + offset) * channels + c);
                a = wasm_f32x4_add(a, wasm_f32x4_mul(xv, wasm_v128_load(dyrow + ow * oc + c)));
              }
              wasm_v128_store(acc + c, a);
            }
            for (; c < channels; c++) {
              float a = acc[c];
              for (int ow = lo; ow < hi; ow++) a += xrow[(ow * sw + offset) * channels + c] * dyrow[ow * oc + c];
              acc[c] = a;
            }
          } else {
            for (int ow = lo; ow < hi; ow++) {
              const float *xs = xrow + (ow * sw + offset) * channels;
              const float *g = dyrow + ow * oc;
              for (int c = 0; c < channels; c++) {
                for (int k = 0; k < mult; k++) acc[c * mult + k] += xs[c] * g[c * mult + k];
              }
            }
          }
        }
      }
    }
  }
}

/* dx [batch, in_h, in_w, c] from dy [batch, out_h, out_w, c·mult] and filter [fh, fw, c, mult]. */
void EXPORT(depthwise_input_grad)(const float *dy, const float *filter, float *dx, int batch, int in_h, int in_w,
                                  int channels, int mult, int out_h, int out_w, int fh, int fw, int sh, int sw,
                                  int dh, int dw_, int top, int left) {
  const int oc = channels * mult;
  zero(dx, batch * in_h * in_w * channels);
  for (int n = 0; n < batch; n++) {
    for (int oh = 0; oh < out_h; oh++) {
      const float *dyrow = dy + (n * out_h + oh) * out_w * oc;
      for (int i = 0; i < fh; i++) {
        const int h = oh * sh + i * dh - top;
        if (h < 0 || h >= in_h) continue;
        float *dxrow = dx + (n * in_h + h) * in_w * channels;
        for (int j = 0; j < fw; j++) {
          const int offset = j * dw_ - left;
          const int lo = first_inside(offset, sw), hi = end_inside(offset, sw, in_w, out_w);
          const float *f = filter + (i * fw + j) * oc;
          if (mult == 1) {
            int c = 0;
            for (; c + 4 <= channels; c += 4) {
              const v128_t fv = wasm_v128_load(f + c);
              for (int ow = lo; ow < hi; ow++) {
                float *d = dxrow + (ow * sw + offset) * channels + c;
                wasm_v128_store(d, wasm_f32x4_add(wasm_v128_load(d), wasm_f32x4_mul(fv, wasm_v128_load(dyrow + ow * oc + c))));
              }
            }
            for (; c < channels; c++) {
              for (int ow = lo; ow < hi; ow++) dxrow[(ow * sw + offset) * channels + c] += f[c] * dyrow[ow * oc + c];
            }
          } else {
            for (int ow = lo; ow < hi; ow++) {
              float *d = dxrow + (ow * sw + offset) * channels;
              const float *g = dyrow + ow * oc;
              for (int c = 0; c < channels; c++) {
                float s = 0.0f;
                for (int k = 0; k < mult; k++) s += g[c * mult + k] * f[c * mult + k];
                d[c] += s;
              }
            }
          }
        }
      }
    }
  }
}

/* ---------- FusedBatchNorm (forward) ---------- */

/* y = (x − mean) · scale / √(variance + ε) + offset over x seen as [rows, channels], every
 * parameter of `channels` values; offset or scale 0 means absent. gain holds `channels` floats
 * of scratch. The stock wasm kernel takes 6 ms on a 64×28×28×32 activation; this is one pass. */
void EXPORT(batch_norm)(const float *x, const float *mean, const float *variance, const float *offset,
                        const float *scale, float epsilon, float *y, int rows, int channels, float *gain) {
  for (int c = 0; c < channels; c++) gain[c] = (scale ? scale[c] : 1.0f) / __builtin_sqrtf(variance[c] + epsilon);
  for (int r = 0; r < rows; r++) {
    const float *xs = x + r * channels;
    float *ys = y + r * channels;
    int c = 0;
    for (; c + 4 <= channels; c += 4) {
      v128_t v = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xs + c), wasm_v128_load(mean + c)), wasm_v128_load(gain + c));
      if (offset) v = wasm_f32x4_add(v, wasm_v128_load(offset + c));
      wasm_v128_store(ys + c, v);
    }
    for (; c < channels; c++) ys[c] = (xs[c] - mean[c]) * gain[c] + (offset ? offset[c] : 0.0f);
  }
}
