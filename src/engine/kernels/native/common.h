/*
 * What every kernel file here shares. All of them are compiled into one wasm module
 * (scripts/build-wasm.mjs) that imports the tfjs wasm heap as its memory: no static data, no
 * address-taken locals (the build links a zero-size shadow stack at address 0). The same files
 * also compile natively for x86-64 with AVX2 and FMA (napi.c, the Node-API addon): the wasm
 * SIMD intrinsics map onto SSE there (simd128_x86.h), and the products' inner blocks have AVX2
 * versions (conv.c).
 */
#ifndef LAYERWISE_COMMON_H
#define LAYERWISE_COMMON_H

#if defined(__wasm__)
#include <wasm_simd128.h>
#define EXPORT(name) __attribute__((export_name(#name))) name
#else
#include "simd128_x86.h"
/* the addon exports only its Node-API entry (napi.c); kernels are called through its table */
#define EXPORT(name) name
#endif

/* Rows a column sum adds into one partial sum before folding it into the total: float32 sums
 * of thousands of rows lose digits otherwise. */
enum { BLOCK_ROWS = 64 };

static inline int round_up(int n, int m) { return (n + m - 1) / m * m; }
static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int max_int(int a, int b) { return a > b ? a : b; }

static inline void fill_zero(float *p, int n) {
  for (int i = 0; i < n; i++) p[i] = 0.0f;
}

/* total[c] += partial[c] */
static inline void add_into(float *total, const float *partial, int channels) {
  int c = 0;
  for (; c + 4 <= channels; c += 4) {
    wasm_v128_store(total + c, wasm_f32x4_add(wasm_v128_load(total + c), wasm_v128_load(partial + c)));
  }
  for (; c < channels; c++) total[c] += partial[c];
}

/* y[r, c] = (x[r, c] − mean[c]) · gain[c] + offset[c] over x seen as [rows, channels] (offset 0:
 * none): BatchNorm's last pass, with gain = scale / √(variance + ε) already folded. */
static inline void normalize_rows(const float *x, const float *mean, const float *gain, const float *offset, float *y,
                                  int rows, int channels) {
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

#endif
