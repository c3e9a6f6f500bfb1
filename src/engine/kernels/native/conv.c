/*
 * Training kernels for the tfjs wasm backend, in wasm SIMD128: convolution gradients, and the
 * element-wise, BatchNorm and max-pool kernels a CNN step spends its remaining time in. Built by
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
 * The product's inner kernel computes an MR×NR block of the result. In wasm, 4×8 with 8 SIMD
 * accumulators: V8 maps wasm SIMD onto SSE registers (16 of them) and there is no fused
 * multiply-add. Natively with AVX2 (the Node-API addon, napi.c), 6×16 with 12 ymm accumulators
 * and FMA: twice the width and one instruction per multiply-add, as OpenBLAS's sgemm on Haswell
 * and Zen. Everything else below is written for any MR and NR.
 */
#include "common.h"

#if defined(__AVX2__) && defined(__FMA__)
enum { MR = 6, NR = 16 };

/* One row of the block: c_r0, c_r1 += a_r · b0, b1 */
#define ROW_FMA(r, av) c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0), c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1)
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DECLARE(r) __m256 c##r##0, c##r##1;
#define ZERO(r) c##r##0 = c##r##1 = _mm256_setzero_ps();
#define LOAD(r) c##r##0 = _mm256_loadu_ps(c + r * ldc), c##r##1 = _mm256_loadu_ps(c + r * ldc + 8);
#define STORE(r) _mm256_storeu_ps(c + r * ldc, c##r##0), _mm256_storeu_ps(c + r * ldc + 8, c##r##1);

/*
 * c[0..6)[0..16) (row stride ldc) = (accumulate ? c : 0) + Σ_k a[k][0..6) ⊗ b[k][0..16):
 * a is a packed panel of 6 rows, b one of 16 columns, both k-major.
 */
static inline void block(int k, const float *restrict a, const float *restrict b, float *restrict c, int ldc,
                         int accumulate) {
  ROWS(DECLARE)
  if (accumulate) {
    ROWS(LOAD)
  } else {
    ROWS(ZERO)
  }
  for (int p = 0; p < k; p++, a += MR, b += NR) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    ROW_FMA(0, _mm256_broadcast_ss(a));
    ROW_FMA(1, _mm256_broadcast_ss(a + 1));
    ROW_FMA(2, _mm256_broadcast_ss(a + 2));
    ROW_FMA(3, _mm256_broadcast_ss(a + 3));
    ROW_FMA(4, _mm256_broadcast_ss(a + 4));
    ROW_FMA(5, _mm256_broadcast_ss(a + 5));
  }
  ROWS(STORE)
}

/*
 * block with the 6 rows of a read where they lie (row r at a + r·lda, k-contiguous) instead of
 * from a packed panel: the same operations in the same order, so the same bits, without the pass
 * that packs a. Rows past `rows` (a last partial panel) repeat row 0; their results are garbage
 * the caller never reads.
 */
static inline void block_rows(int k, const float *restrict a, int lda, int rows, const float *restrict b,
                              float *restrict c, int ldc) {
  const float *a0 = a, *a1 = rows > 1 ? a + lda : a, *a2 = rows > 2 ? a + 2 * lda : a;
  const float *a3 = rows > 3 ? a + 3 * lda : a, *a4 = rows > 4 ? a + 4 * lda : a, *a5 = rows > 5 ? a + 5 * lda : a;
  ROWS(DECLARE)
  ROWS(ZERO)
  for (int p = 0; p < k; p++, b += NR) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    ROW_FMA(0, _mm256_broadcast_ss(a0 + p));
    ROW_FMA(1, _mm256_broadcast_ss(a1 + p));
    ROW_FMA(2, _mm256_broadcast_ss(a2 + p));
    ROW_FMA(3, _mm256_broadcast_ss(a3 + p));
    ROW_FMA(4, _mm256_broadcast_ss(a4 + p));
    ROW_FMA(5, _mm256_broadcast_ss(a5 + p));
  }
  ROWS(STORE)
}

#undef ROW_FMA
#undef ROWS
#undef DECLARE
#undef ZERO
#undef LOAD
#undef STORE
#else
enum { MR = 4, NR = 8 };

/*
 * c[0..4)[0..8) (row stride ldc) = (accumulate ? c : 0) + Σ_k a[k][0..4) ⊗ b[k][0..8):
 * a is a packed panel of 4 rows, b one of 8 columns, both k-major.
 */
static inline void block(int k, const float *restrict a, const float *restrict b, float *restrict c, int ldc,
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

/*
 * block with the 4 rows of a read where they lie (row r at a + r·lda, k-contiguous) instead of
 * from a packed panel: the same operations in the same order, so the same bits, without the pass
 * that packs a. For operands already row-major over k: a 1×1 convolution's input pixels, the
 * output gradient's pixels in the input gradient. Rows past `rows` (a last partial panel) repeat
 * row 0; their results are garbage the caller never reads.
 */
static inline void block_rows(int k, const float *restrict a, int lda, int rows, const float *restrict b,
                              float *restrict c, int ldc) {
  const float *a0 = a, *a1 = rows > 1 ? a + lda : a, *a2 = rows > 2 ? a + 2 * lda : a, *a3 = rows > 3 ? a + 3 * lda : a;
  v128_t c00, c01, c10, c11, c20, c21, c30, c31;
  c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = wasm_f32x4_splat(0.0f);
  for (int p = 0; p < k; p++, b += NR) {
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    const v128_t v0 = wasm_v128_load32_splat(a0 + p), v1 = wasm_v128_load32_splat(a1 + p);
    const v128_t v2 = wasm_v128_load32_splat(a2 + p), v3 = wasm_v128_load32_splat(a3 + p);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(v0, b0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(v0, b1));
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(v1, b0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(v1, b1));
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(v2, b0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(v2, b1));
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(v3, b0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(v3, b1));
  }
  wasm_v128_store(c, c00), wasm_v128_store(c + 4, c01);
  wasm_v128_store(c + ldc, c10), wasm_v128_store(c + ldc + 4, c11);
  wasm_v128_store(c + 2 * ldc, c20), wasm_v128_store(c + 2 * ldc + 4, c21);
  wasm_v128_store(c + 3 * ldc, c30), wasm_v128_store(c + 3 * ldc + 4, c31);
}
#endif

/* op(a) rows [row0, row0 + rows) into MR-row panels (panel ⌊r/MR⌋ holds op(a)[row0 + r, p] at
 * [p][r mod MR], rows past the end zero); a is m × k, or k × m when trans_a. Both loop orders
 * read a along its rows, so a transposed operand costs no strided reads. */
static void pack_rows(const float *a, float *apack, int m, int k, int trans_a, int row0, int rows) {
  const int mp = round_up(rows, MR);
  if (trans_a) {
    for (int p = 0; p < k; p++) {
      const float *src = a + p * m + row0;
      for (int r = 0; r < mp; r++) apack[(r / MR) * k * MR + p * MR + r % MR] = r < rows ? src[r] : 0.0f;
    }
  } else {
    for (int r = 0; r < mp; r++) {
      float *dst = apack + (r / MR) * k * MR + r % MR;
      if (r < rows) {
        const float *src = a + (row0 + r) * k;
        for (int p = 0; p < k; p++) dst[p * MR] = src[p];
      } else {
        for (int p = 0; p < k; p++) dst[p * MR] = 0.0f;
      }
    }
  }
}

/* Columns [col0, col0 + cols) of op(b) (k × n; b is n × k when trans_b) into NR-column panels:
 * panel ⌊j/NR⌋ holds op(b)[p, col0 + j] at [p][j mod NR], columns past the end zero. Reads b
 * along its rows either way. */
static void pack_columns(const float *b, float *bpack, int k, int n, int trans_b, int col0, int cols) {
  const int np = round_up(cols, NR);
  if (trans_b) {
    for (int j = 0; j < np; j++) {
      float *dst = bpack + (j / NR) * k * NR + j % NR;
      if (j < cols) {
        const float *src = b + (col0 + j) * k;
        for (int p = 0; p < k; p++) dst[p * NR] = src[p];
      } else {
        for (int p = 0; p < k; p++) dst[p * NR] = 0.0f;
      }
    }
  } else {
    for (int p = 0; p < k; p++) {
      const float *src = b + p * n + col0;
      for (int j = 0; j < np; j++) bpack[(j / NR) * k * NR + p * NR + j % NR] = j < cols ? src[j] : 0.0f;
    }
  }
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
  fill_zero(acc, mp * np);
  for (int p0 = 0; p0 < pixels; p0 += chunk) {
    const int pc = min_int(chunk, pixels - p0);
    // im2col straight into MR-row panels: column (i, j, ci) of pixel q goes to panel ⌊r/MR⌋, slot r mod MR;
    // the pixel's (n, oh, ow) are stepped, not divided out
    int n = p0 / (out_h * out_w), oh = p0 / out_w % out_h, ow = p0 % out_w;
    for (int q = 0; q < pc; q++) {
      float *dst = apack + q * MR;
      for (int i = 0; i < fh; i++) {
        const int h = oh * sh + i * dh - top;
        for (int j = 0; j < fw; j++) {
          const int w = ow * sw + j * dw_ - left, r0 = (i * fw + j) * in_c;
          const int inside = h >= 0 && h < in_h && w >= 0 && w < in_w;
          // outside the image: x's first pixel is read for nothing, never an address outside x
          const float *src = x + (inside ? ((n * in_h + h) * in_w + w) * in_c : 0);
          int c = 0;
          if (MR == 4 || in_c < MR) {
            // a channel at a time: with MR = 4 the division is a shift, and with fewer channels than a
            // panel slot a loop per slot costs more than it saves (the example's 28×28×1: 2×)
            if (MR == 4 && r0 % MR == 0) {
              // 4 channels fill one panel slot: one vector each
              for (; c + MR <= in_c; c += MR) {
                wasm_v128_store(dst + ((r0 + c) / MR) * pc * MR, inside ? wasm_v128_load(src + c) : wasm_f32x4_splat(0.0f));
              }
            }
            for (; c < in_c; c++) {
              const int r = r0 + c;
              dst[(r / MR) * pc * MR + r % MR] = inside ? src[c] : 0.0f;
            }
            continue;
          }
          // a panel slot at a time: one division per tap, not per channel (MobileNetV2's 1×1 filter
          // gradients natively: 43.6 → 51.0 GFLOP/s)
          float *d = dst + (r0 / MR) * pc * MR;
          for (int slot = r0 % MR; c < in_c; slot = 0, d += pc * MR) {
            const int take = min_int(MR - slot, in_c - c);
            // at most MR floats: a vectorised loop's set-up and checks would cost more than it saves
#pragma clang loop vectorize(disable)
            for (int t = 0; t < take; t++) d[slot + t] = inside ? src[c + t] : 0.0f;
            c += take;
          }
        }
      }
      for (int r = m; r < mp; r++) dst[(r / MR) * pc * MR + r % MR] = 0.0f;
      if (++ow == out_w) {
        ow = 0;
        if (++oh == out_h) oh = 0, n++;
      }
    }
    for (int q = 0; q < pc; q++) {
      const float *src = dy + (p0 + q) * out_c;
      int c = 0;
      for (; c + NR <= out_c; c += NR) {
        float *dst = bpack + (c / NR) * pc * NR + q * NR;
        for (int v = 0; v < NR; v += 4) wasm_v128_store(dst + v, wasm_v128_load(src + c + v));
      }
      if (c < out_c) {
        // the last panel's columns, the rest of it zero (out_c = 8 with NR = 16: half of it)
        float *dst = bpack + (c / NR) * pc * NR + q * NR;
        int t = 0;
        for (; c + t + 4 <= out_c; t += 4) wasm_v128_store(dst + t, wasm_v128_load(src + c + t));
        for (; c + t < out_c; t++) dst[t] = src[c + t];
        for (; t < NR; t++) dst[t] = 0.0f;
      }
    }
    for (int nb = 0; nb < np / NR; nb++) {
      for (int mb = 0; mb < mp / MR; mb++) {
        block(pc, apack + mb * pc * MR, bpack + nb * pc * NR, acc + mb * MR * np + nb * NR, np, 1);
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
  return n * out_c + chunk * n;
}

/* dx [batch, in_h, in_w, in_c] from dy [batch, out_h, out_w, out_c] and filter [fh, fw, in_c, out_c];
 * work holds conv2d_input_grad_work(fh·fw·in_c, out_c) floats. */
void EXPORT(conv2d_input_grad)(const float *dy, const float *filter, float *dx, float *work, int batch, int in_h,
                               int in_w, int in_c, int out_h, int out_w, int out_c, int fh, int fw, int sh, int sw,
                               int dh, int dw_, int top, int left) {
  const int taps = fh * fw * in_c, np = round_up(taps, NR);
  const int chunk = round_up(chunk_pixels(np), MR), pixels = batch * out_h * out_w;
  float *bpack = work, *cols = bpack + np * out_c;
  // Wᵀ in NR-column panels, once: panel ⌊t/NR⌋ holds W[t, co] at [co][t mod NR]
  for (int t = 0; t < np; t++) {
    for (int co = 0; co < out_c; co++) {
      bpack[(t / NR) * out_c * NR + co * NR + t % NR] = t < taps ? filter[t * out_c + co] : 0.0f;
    }
  }
  fill_zero(dx, batch * in_h * in_w * in_c);
  for (int p0 = 0; p0 < pixels; p0 += chunk) {
    const int pc = min_int(chunk, pixels - p0), pcp = round_up(pc, MR);
    // dy's pixel rows are the product's rows as they lie: no packing
    for (int mb = 0; mb < pcp / MR; mb++) {
      const float *rows = dy + (p0 + mb * MR) * out_c;
      for (int nb = 0; nb < np / NR; nb++) {
        block_rows(out_c, rows, out_c, pc - mb * MR, bpack + nb * out_c * NR, cols + mb * MR * np + nb * NR, np);
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

/* ---------- Conv2D forward ---------- */

int EXPORT(conv2d_forward_work)(int taps, int out_c) {
  const int np = round_up(out_c, NR);
  const int chunk = round_up(chunk_pixels(taps + np), MR);
  return taps * np + chunk * taps + chunk * np;
}

/* y [batch, out_h, out_w, out_c] = act(conv(x, filter) + bias) from x [batch, in_h, in_w, in_c] and
 * filter [fh, fw, in_c, out_c] as the product im2col(x) · W, a chunk of output pixels at a time;
 * bias 0 means none; act 0 = linear, 1 = ReLU, 2 = ReLU6. work holds
 * conv2d_forward_work(fh·fw·in_c, out_c) floats. XNNPACK does the same product on one thread;
 * this one exists so the kernel thread (threads.ts) can take half of the batch. */
void EXPORT(conv2d_forward)(const float *x, const float *filter, const float *bias, float *y, float *work, int act,
                            int batch, int in_h, int in_w, int in_c, int out_h, int out_w, int out_c, int fh, int fw,
                            int sh, int sw, int dh, int dw_, int top, int left) {
  const int taps = fh * fw * in_c, np = round_up(out_c, NR);
  const int chunk = round_up(chunk_pixels(taps + np), MR), pixels = batch * out_h * out_w;
  float *bpack = work, *apack = bpack + taps * np, *cols = apack + chunk * taps;
  // W [taps, out_c] in NR-column panels, once
  pack_columns(filter, bpack, taps, out_c, 0, 0, out_c);
  const v128_t lo = wasm_f32x4_splat(0.0f), six = wasm_f32x4_splat(6.0f);
  // a 1×1 convolution with stride 1 and no padding: its im2col is x itself, read as it lies
  const int pointwise = fh == 1 && fw == 1 && sh == 1 && sw == 1 && top == 0 && left == 0 && in_h == out_h && in_w == out_w;
  for (int p0 = 0; p0 < pixels; p0 += chunk) {
    const int pc = min_int(chunk, pixels - p0), pcp = round_up(pc, MR);
    if (pointwise) {
      for (int mb = 0; mb < pcp / MR; mb++) {
        const float *rows = x + (p0 + mb * MR) * in_c;
        for (int nb = 0; nb < np / NR; nb++) {
          block_rows(taps, rows, in_c, pc - mb * MR, bpack + nb * taps * NR, cols + mb * MR * np + nb * NR, np);
        }
      }
    }
    // im2col in MR-pixel panels: panel ⌊q/MR⌋ holds col[q, t] at [t][q mod MR]
    for (int q = 0; q < (pointwise ? 0 : pcp); q++) {
      float *dst = apack + (q / MR) * taps * MR + q % MR;
      if (q >= pc) {
        for (int t = 0; t < taps; t++) dst[t * MR] = 0.0f;
        continue;
      }
      const int p = p0 + q, n = p / (out_h * out_w), oh = p / out_w % out_h, ow = p % out_w;
      for (int i = 0; i < fh; i++) {
        const int h = oh * sh + i * dh - top;
        for (int j = 0; j < fw; j++) {
          const int w = ow * sw + j * dw_ - left;
          float *d = dst + (i * fw + j) * in_c * MR;
          if (h < 0 || h >= in_h || w < 0 || w >= in_w) {
            for (int c = 0; c < in_c; c++) d[c * MR] = 0.0f;
          } else {
            const float *src = x + ((n * in_h + h) * in_w + w) * in_c;
            for (int c = 0; c < in_c; c++) d[c * MR] = src[c];
          }
        }
      }
    }
    for (int mb = 0; mb < (pointwise ? 0 : pcp / MR); mb++) {
      for (int nb = 0; nb < np / NR; nb++) {
        block(taps, apack + mb * taps * MR, bpack + nb * taps * NR, cols + mb * MR * np + nb * NR, np, 0);
      }
    }
    for (int q = 0; q < pc; q++) {
      const float *src = cols + q * np;
      float *dst = y + (p0 + q) * out_c;
      int c = 0;
      for (; c + 4 <= out_c; c += 4) {
        v128_t v = wasm_v128_load(src + c);
        if (bias) v = wasm_f32x4_add(v, wasm_v128_load(bias + c));
        if (act >= 1) v = wasm_f32x4_max(v, lo);
        if (act == 2) v = wasm_f32x4_min(v, six);
        wasm_v128_store(dst + c, v);
      }
      for (; c < out_c; c++) {
        float v = src[c] + (bias ? bias[c] : 0.0f);
        if (act >= 1 && v < 0.0f) v = 0.0f;
        if (act == 2 && v > 6.0f) v = 6.0f;
        dst[c] = v;
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
  fill_zero(dw, fh * fw * oc);
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
#if defined(__AVX2__) && defined(__FMA__)
            // 32 channels at once: four independent sums hide the FMA latency one sum would wait on
            for (; c + 32 <= channels; c += 32) {
              __m256 a0 = _mm256_loadu_ps(acc + c), a1 = _mm256_loadu_ps(acc + c + 8);
              __m256 a2 = _mm256_loadu_ps(acc + c + 16), a3 = _mm256_loadu_ps(acc + c + 24);
              for (int ow = lo; ow < hi; ow++) {
                const float *xs = xrow + (ow * sw + offset) * channels + c, *g = dyrow + ow * oc + c;
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xs), _mm256_loadu_ps(g), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xs + 8), _mm256_loadu_ps(g + 8), a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xs + 16), _mm256_loadu_ps(g + 16), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xs + 24), _mm256_loadu_ps(g + 24), a3);
              }
              _mm256_storeu_ps(acc + c, a0), _mm256_storeu_ps(acc + c + 8, a1);
              _mm256_storeu_ps(acc + c + 16, a2), _mm256_storeu_ps(acc + c + 24, a3);
            }
            for (; c + 8 <= channels; c += 8) {
              __m256 a = _mm256_loadu_ps(acc + c);
              for (int ow = lo; ow < hi; ow++) {
                a = _mm256_fmadd_ps(_mm256_loadu_ps(xrow + (ow * sw + offset) * channels + c), _mm256_loadu_ps(dyrow + ow * oc + c), a);
              }
              _mm256_storeu_ps(acc + c, a);
            }
#endif
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

/* y [batch, out_h, out_w, c·mult] = depthwise conv of x [batch, in_h, in_w, c] with filter [fh, fw, c, mult]:
 * each output's taps summed in row-major tap order in a register. XNNPACK's wasm kernel runs on one
 * thread at ~11 GFLOP/s on MobileNetV2's shapes; natively this one splits over the kernel threads. */
void EXPORT(depthwise_forward)(const float *x, const float *filter, float *y, int batch, int in_h, int in_w,
                               int channels, int mult, int out_h, int out_w, int fh, int fw, int sh, int sw,
                               int dh, int dw_, int top, int left) {
  const int oc = channels * mult;
  for (int n = 0; n < batch; n++) {
    for (int oh = 0; oh < out_h; oh++) {
      const float *ximage = x + n * in_h * in_w * channels;
      float *yrow = y + (n * out_h + oh) * out_w * oc;
      for (int ow = 0; ow < out_w; ow++) {
        float *out = yrow + ow * oc;
        int c = 0;
        if (mult == 1) {
#if defined(__AVX2__) && defined(__FMA__)
          for (; c + 16 <= channels; c += 16) {
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            for (int i = 0; i < fh; i++) {
              const int h = oh * sh + i * dh - top;
              if (h < 0 || h >= in_h) continue;
              for (int j = 0; j < fw; j++) {
                const int w = ow * sw + j * dw_ - left;
                if (w < 0 || w >= in_w) continue;
                const float *xs = ximage + (h * in_w + w) * channels + c, *f = filter + (i * fw + j) * oc + c;
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xs), _mm256_loadu_ps(f), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xs + 8), _mm256_loadu_ps(f + 8), a1);
              }
            }
            _mm256_storeu_ps(out + c, a0), _mm256_storeu_ps(out + c + 8, a1);
          }
#endif
          for (; c + 4 <= channels; c += 4) {
            v128_t a = wasm_f32x4_splat(0.0f);
            for (int i = 0; i < fh; i++) {
              const int h = oh * sh + i * dh - top;
              if (h < 0 || h >= in_h) continue;
              for (int j = 0; j < fw; j++) {
                const int w = ow * sw + j * dw_ - left;
                if (w < 0 || w >= in_w) continue;
                a = wasm_f32x4_add(a, wasm_f32x4_mul(wasm_v128_load(ximage + (h * in_w + w) * channels + c),
                                                     wasm_v128_load(filter + (i * fw + j) * oc + c)));
              }
            }
            wasm_v128_store(out + c, a);
          }
        }
        // what is left: every channel when mult > 1, the last few otherwise
        for (; c < channels; c++) {
          for (int k = 0; k < mult; k++) {
            float a = 0.0f;
            for (int i = 0; i < fh; i++) {
              const int h = oh * sh + i * dh - top;
              if (h < 0 || h >= in_h) continue;
              for (int j = 0; j < fw; j++) {
                const int w = ow * sw + j * dw_ - left;
                if (w < 0 || w >= in_w) continue;
                a += ximage[(h * in_w + w) * channels + c] * filter[(i * fw + j) * oc + c * mult + k];
              }
            }
            out[c * mult + k] = a;
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
  fill_zero(dx, batch * in_h * in_w * channels);
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
#if defined(__AVX2__) && defined(__FMA__)
            for (; c + 8 <= channels; c += 8) {
              const __m256 fv = _mm256_loadu_ps(f + c);
              for (int ow = lo; ow < hi; ow++) {
                float *d = dxrow + (ow * sw + offset) * channels + c;
                _mm256_storeu_ps(d, _mm256_fmadd_ps(fv, _mm256_loadu_ps(dyrow + ow * oc + c), _mm256_loadu_ps(d)));
              }
            }
#endif
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
  normalize_rows(x, mean, gain, offset, y, rows, channels);
}

/* ---------- element-wise Add, Sub, Mul, Div with the broadcasts training makes ---------- */

/* How an operand of a [rows, channels] result is laid out: the full tensor, one value per
 * channel (a bias, BatchNorm's statistics), one value per row (LayerNormalization's), or one. */
enum { FULL = 0, PER_CHANNEL = 1, PER_ROW = 2, SCALAR = 3 };
enum { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3 };

/* One body per operation, so that the operation is a constant in the inner loop. The stock
 * kernels compute every element's broadcast index with divisions: 1.3–3 ms per 2M values. */
#define BINARY_BODY(NAME, VOP, SOP)                                                                  \
  static void NAME(const float *a, const float *b, float *out, int rows, int channels, int a_mode,   \
                   int b_mode) {                                                                      \
    for (int r = 0; r < rows; r++) {                                                                  \
      const float *ar = a_mode == FULL ? a + r * channels : a_mode == PER_CHANNEL ? a : a + (a_mode == PER_ROW ? r : 0); \
      const float *br = b_mode == FULL ? b + r * channels : b_mode == PER_CHANNEL ? b : b + (b_mode == PER_ROW ? r : 0); \
      const int a_vec = a_mode <= PER_CHANNEL, b_vec = b_mode <= PER_CHANNEL;                        \
      float *o = out + r * channels;                                                                  \
      const v128_t as = wasm_v128_load32_splat(ar), bs = wasm_v128_load32_splat(br);                 \
      int c = 0;                                                                                      \
      if (a_vec && b_vec) {                                                                           \
        for (; c + 4 <= channels; c += 4) wasm_v128_store(o + c, VOP(wasm_v128_load(ar + c), wasm_v128_load(br + c))); \
      } else if (a_vec) {                                                                             \
        for (; c + 4 <= channels; c += 4) wasm_v128_store(o + c, VOP(wasm_v128_load(ar + c), bs));  \
      } else if (b_vec) {                                                                             \
        for (; c + 4 <= channels; c += 4) wasm_v128_store(o + c, VOP(as, wasm_v128_load(br + c)));  \
      } else {                                                                                        \
        const v128_t v = VOP(as, bs);                                                                 \
        for (; c + 4 <= channels; c += 4) wasm_v128_store(o + c, v);                                  \
      }                                                                                               \
      for (; c < channels; c++) {                                                                     \
        const float x = ar[a_vec ? c : 0], y = br[b_vec ? c : 0];                                     \
        o[c] = SOP;                                                                                   \
      }                                                                                               \
    }                                                                                                 \
  }

BINARY_BODY(binary_add, wasm_f32x4_add, x + y)
BINARY_BODY(binary_sub, wasm_f32x4_sub, x - y)
BINARY_BODY(binary_mul, wasm_f32x4_mul, x * y)
BINARY_BODY(binary_div, wasm_f32x4_div, x / y)

/* out [rows, channels] = a op b, each operand laid out as its mode says. */
void EXPORT(binary)(int op, const float *a, const float *b, float *out, int rows, int channels, int a_mode,
                    int b_mode) {
  if (op == OP_ADD) binary_add(a, b, out, rows, channels, a_mode, b_mode);
  else if (op == OP_SUB) binary_sub(a, b, out, rows, channels, a_mode, b_mode);
  else if (op == OP_MUL) binary_mul(a, b, out, rows, channels, a_mode, b_mode);
  else binary_div(a, b, out, rows, channels, a_mode, b_mode);
}

/* ---------- MaxPoolGrad ---------- */

/* dx [batch, in_h, in_w, c] for a max pool's dy [batch, out_h, out_w, c]: each window's dy goes
 * to its first strict maximum in row-major order, taps outside the input skipped, a window of
 * NaNs dropped (the cpu backend's rule; the stock wasm kernel sends all-negative windows to
 * element 0). */
void EXPORT(max_pool_grad)(const float *x, const float *dy, float *dx, int batch, int in_h, int in_w, int channels,
                           int out_h, int out_w, int fh, int fw, int sh, int sw, int dh, int dw_, int top,
                           int left) {
  fill_zero(dx, batch * in_h * in_w * channels);
  const int plain2x2 = fh == 2 && fw == 2 && sh == 2 && sw == 2 && dh == 1 && dw_ == 1 && top == 0 && left == 0 &&
                       out_h * 2 <= in_h && out_w * 2 <= in_w;
  const int row = in_w * channels;
  for (int n = 0; n < batch; n++) {
    for (int oh = 0; oh < out_h; oh++) {
      for (int ow = 0; ow < out_w; ow++) {
        const float *g = dy + ((n * out_h + oh) * out_w + ow) * channels;
        if (plain2x2) {
          // the windows do not overlap: each input element gets its window's dy or 0
          const int ia = (n * in_h + 2 * oh) * row + 2 * ow * channels, ib = ia + channels, id = ia + row,
                    ie = id + channels;
          int c = 0;
          for (; c + 4 <= channels; c += 4) {
            const v128_t va = wasm_v128_load(x + ia + c), vb = wasm_v128_load(x + ib + c);
            const v128_t vd = wasm_v128_load(x + id + c), ve = wasm_v128_load(x + ie + c);
            // running maximum from −∞ with strict >, as the scalar rule: NaN never wins
            v128_t best = wasm_f32x4_splat(-__builtin_inff());
            const v128_t ma = wasm_f32x4_gt(va, best);
            best = wasm_v128_bitselect(va, best, ma);
            const v128_t mb = wasm_f32x4_gt(vb, best);
            best = wasm_v128_bitselect(vb, best, mb);
            const v128_t md = wasm_f32x4_gt(vd, best);
            best = wasm_v128_bitselect(vd, best, md);
            const v128_t me = wasm_f32x4_gt(ve, best);
            // the last tap that raised the maximum wins
            const v128_t wd = wasm_v128_andnot(md, me), wb = wasm_v128_andnot(wasm_v128_andnot(mb, md), me);
            const v128_t wa = wasm_v128_andnot(wasm_v128_andnot(wasm_v128_andnot(ma, mb), md), me);
            const v128_t gv = wasm_v128_load(g + c);
            wasm_v128_store(dx + ia + c, wasm_v128_and(gv, wa));
            wasm_v128_store(dx + ib + c, wasm_v128_and(gv, wb));
            wasm_v128_store(dx + id + c, wasm_v128_and(gv, wd));
            wasm_v128_store(dx + ie + c, wasm_v128_and(gv, me));
          }
          for (; c < channels; c++) {
            float best = -__builtin_inff();
            int at = -1;
            if (x[ia + c] > best) best = x[ia + c], at = ia + c;
            if (x[ib + c] > best) best = x[ib + c], at = ib + c;
            if (x[id + c] > best) best = x[id + c], at = id + c;
            if (x[ie + c] > best) at = ie + c;
            if (at >= 0) dx[at] = g[c];
          }
          continue;
        }
        const int h0 = oh * sh - top, w0 = ow * sw - left;
        for (int c = 0; c < channels; c++) {
          float best = -__builtin_inff();
          int at = -1;
          for (int i = 0; i < fh; i++) {
            const int h = h0 + i * dh;
            if (h < 0 || h >= in_h) continue;
            for (int j = 0; j < fw; j++) {
              const int w = w0 + j * dw_;
              if (w < 0 || w >= in_w) continue;
              const int index = ((n * in_h + h) * in_w + w) * channels + c;
              if (x[index] > best) best = x[index], at = index;
            }
          }
          if (at >= 0) dx[at] += g[c];
        }
      }
    }
  }
}

/* ---------- ClipByValue / Relu6 gradient ---------- */

/* dx = dy where lo ≤ x ≤ hi (lo < x when lo_strict), else 0; a NaN x passes nothing. One pass
 * instead of the five to six full-size mask kernels the composed gradient runs. */
void EXPORT(clip_grad)(const float *x, const float *dy, float *dx, int n, float lo, float hi, int lo_strict) {
  const v128_t vlo = wasm_f32x4_splat(lo), vhi = wasm_f32x4_splat(hi);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t v = wasm_v128_load(x + i);
    const v128_t above_lo = lo_strict ? wasm_f32x4_gt(v, vlo) : wasm_f32x4_ge(v, vlo);
    const v128_t inside = wasm_v128_and(above_lo, wasm_f32x4_le(v, vhi));
    wasm_v128_store(dx + i, wasm_v128_and(wasm_v128_load(dy + i), inside));
  }
  for (; i < n; i++) {
    const int inside = (lo_strict ? x[i] > lo : x[i] >= lo) && x[i] <= hi;
    dx[i] = inside ? dy[i] : 0.0f;
  }
}

/* ---------- batched matrix product ---------- */

int EXPORT(batch_matmul_work)(int m, int k, int n) {
  const int mp = round_up(m, MR), np = round_up(n, NR);
  return mp * k + k * np + mp * np;
}

/* out[b] (m × n) = op(a[b]) · op(b[b]) for `batch` pairs, where op(a) is m × k (a stored k × m
 * when trans_a) and op(b) k × n (b stored n × k when trans_b). Both operands are packed into
 * the MR×NR block kernel's panels, so transposes cost nothing extra; work holds
 * batch_matmul_work(m, k, n) floats. tfjs's wasm BatchMatMul runs batched products (attention's
 * QKᵀ and its gradients) as a scalar loop: ~1.4 GFLOP/s on 128 products of 32×16 by 16×32. */
void EXPORT(batch_matmul)(const float *a, const float *b, float *out, float *work, int batch, int m, int k, int n,
                          int trans_a, int trans_b) {
  const int mp = round_up(m, MR), np = round_up(n, NR);
  float *apack = work, *bpack = apack + mp * k, *c = bpack + k * np;
  for (int t = 0; t < batch; t++) {
    const float *at = a + t * m * k, *bt = b + t * k * n;
    float *o = out + t * m * n;
    if (trans_a) pack_rows(at, apack, m, k, trans_a, 0, m);
    pack_columns(bt, bpack, k, n, trans_b, 0, n);
    for (int mb = 0; mb < mp / MR; mb++) {
      for (int nb = 0; nb < np / NR; nb++) {
        float *cb = c + mb * MR * np + nb * NR;
        if (trans_a) block(k, apack + mb * k * MR, bpack + nb * k * NR, cb, np, 0);
        else block_rows(k, at + mb * MR * k, k, m - mb * MR, bpack + nb * k * NR, cb, np);
      }
    }
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) o[i * n + j] = c[i * np + j];
    }
  }
}

int EXPORT(matmul_part_work)(int rows, int k, int cols) {
  const int mp = round_up(rows, MR), np = round_up(cols, NR);
  return mp * k + k * np + mp * np;
}

/* The block rows [row0, row0 + rows) × columns [col0, col0 + cols) of op(a) · op(b) (one
 * product, shapes as in batch_matmul) into out, which points at the block's first element and
 * has rows ldo floats apart: the part of a Dense layer's product that one thread computes
 * (native.ts splits the side whose operand is cheaper to pack twice). work holds
 * matmul_part_work(rows, k, cols) floats. */
void EXPORT(matmul_part)(const float *a, const float *b, float *out, float *work, int m, int k, int n, int trans_a,
                         int trans_b, int row0, int rows, int col0, int cols, int ldo) {
  const int mp = round_up(rows, MR), np = round_up(cols, NR);
  float *apack = work, *bpack = apack + mp * k, *c = bpack + k * np;
  // an untransposed a is read as it lies (block_rows), a transposed one packed
  if (trans_a) pack_rows(a, apack, m, k, trans_a, row0, rows);
  pack_columns(b, bpack, k, n, trans_b, col0, cols);
  for (int mb = 0; mb < mp / MR; mb++) {
    for (int nb = 0; nb < np / NR; nb++) {
      float *cb = c + mb * MR * np + nb * NR;
      if (trans_a) block(k, apack + mb * k * MR, bpack + nb * k * NR, cb, np, 0);
      else block_rows(k, a + (row0 + mb * MR) * k, k, rows - mb * MR, bpack + nb * k * NR, cb, np);
    }
  }
  for (int r = 0; r < rows; r++) {
    for (int j = 0; j < cols; j++) out[r * ldo + j] = c[r * np + j];
  }
}
