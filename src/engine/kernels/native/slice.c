/*
 * Slice of a rank-4 (or padded lower-rank) tensor of 4-byte values: the gradient of every
 * ZeroPadding2D (a Keras MobileNetV2 pads before each stride-2 depthwise convolution). The stock
 * wasm kernel copies each innermost row through a JS subarray: ~37k of them for a
 * 16×48×48×96 slice. Loaded into the same module as conv.c (see common.h for its rules).
 */
#include "common.h"

/* out [s0, s1, s2, s3] = x [d0, d1, d2, d3][b0 + i, b1 + j, b2 + k, b3 + l]. */
void EXPORT(slice4)(const float *x, float *out, int d1, int d2, int d3, int b0, int b1, int b2, int b3, int s0,
                    int s1, int s2, int s3) {
  for (int i = 0; i < s0; i++) {
    for (int j = 0; j < s1; j++) {
      const float *src = x + (((b0 + i) * d1 + b1 + j) * d2 + b2) * d3 + b3;
      for (int k = 0; k < s2; k++, src += d3, out += s3) {
        int l = 0;
        for (; l + 4 <= s3; l += 4) wasm_v128_store(out + l, wasm_v128_load(src + l));
        for (; l < s3; l++) out[l] = src[l];
      }
    }
  }
}
