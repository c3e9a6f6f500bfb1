/*
 * The wasm_simd128.h intrinsics the kernels use, on x86-64 SSE (SSE4.1 for rounding), so the
 * same C compiles into the native addon (napi.c) as into the wasm modules. Each function keeps
 * its wasm meaning where SSE differs: min/max propagate NaN, trunc_sat saturates and sends NaN
 * to 0, andnot is a & ~b, bitselect takes the mask last.
 */
#ifndef LAYERWISE_SIMD128_X86_H
#define LAYERWISE_SIMD128_X86_H

#include <immintrin.h>

typedef __m128 v128_t;

#define SIMD static inline __attribute__((always_inline))

SIMD v128_t wasm_v128_load(const void *p) { return _mm_loadu_ps((const float *)p); }
SIMD void wasm_v128_store(void *p, v128_t v) { _mm_storeu_ps((float *)p, v); }
SIMD v128_t wasm_v128_load32_splat(const void *p) { return _mm_set1_ps(*(const float *)p); }
SIMD v128_t wasm_f32x4_splat(float x) { return _mm_set1_ps(x); }
SIMD v128_t wasm_i32x4_splat(int x) { return _mm_castsi128_ps(_mm_set1_epi32(x)); }

SIMD v128_t wasm_f32x4_add(v128_t a, v128_t b) { return _mm_add_ps(a, b); }
SIMD v128_t wasm_f32x4_sub(v128_t a, v128_t b) { return _mm_sub_ps(a, b); }
SIMD v128_t wasm_f32x4_mul(v128_t a, v128_t b) { return _mm_mul_ps(a, b); }
SIMD v128_t wasm_f32x4_div(v128_t a, v128_t b) { return _mm_div_ps(a, b); }
SIMD v128_t wasm_f32x4_sqrt(v128_t a) { return _mm_sqrt_ps(a); }
SIMD v128_t wasm_f32x4_abs(v128_t a) { return _mm_and_ps(a, _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff))); }
SIMD v128_t wasm_f32x4_nearest(v128_t a) { return _mm_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

/* SSE's min/max return the second operand when either is NaN; wasm's return NaN */
SIMD v128_t wasm_f32x4_max(v128_t a, v128_t b) {
  const v128_t nan = _mm_cmpunord_ps(a, b);
  return _mm_or_ps(_mm_andnot_ps(nan, _mm_max_ps(a, b)), _mm_and_ps(nan, _mm_add_ps(a, b)));
}
SIMD v128_t wasm_f32x4_min(v128_t a, v128_t b) {
  const v128_t nan = _mm_cmpunord_ps(a, b);
  return _mm_or_ps(_mm_andnot_ps(nan, _mm_min_ps(a, b)), _mm_and_ps(nan, _mm_add_ps(a, b)));
}

SIMD v128_t wasm_f32x4_gt(v128_t a, v128_t b) { return _mm_cmpgt_ps(a, b); }
SIMD v128_t wasm_f32x4_ge(v128_t a, v128_t b) { return _mm_cmpge_ps(a, b); }
SIMD v128_t wasm_f32x4_le(v128_t a, v128_t b) { return _mm_cmple_ps(a, b); }

SIMD v128_t wasm_v128_and(v128_t a, v128_t b) { return _mm_and_ps(a, b); }
SIMD v128_t wasm_v128_andnot(v128_t a, v128_t b) { return _mm_andnot_ps(b, a); }
SIMD v128_t wasm_v128_bitselect(v128_t a, v128_t b, v128_t mask) {
  return _mm_or_ps(_mm_and_ps(mask, a), _mm_andnot_ps(mask, b));
}

SIMD float wasm_f32x4_extract_lane_(v128_t v, int lane) {
  float lanes[4];
  _mm_storeu_ps(lanes, v);
  return lanes[lane];
}
#define wasm_f32x4_extract_lane(v, lane) wasm_f32x4_extract_lane_((v), (lane))

SIMD v128_t wasm_i32x4_add(v128_t a, v128_t b) {
  return _mm_castsi128_ps(_mm_add_epi32(_mm_castps_si128(a), _mm_castps_si128(b)));
}
SIMD v128_t wasm_i32x4_shl(v128_t a, int bits) {
  return _mm_castsi128_ps(_mm_sll_epi32(_mm_castps_si128(a), _mm_cvtsi32_si128(bits & 31)));
}
/* cvttps gives INT_MIN for NaN and out-of-range lanes: NaN → 0, too large → INT_MAX as wasm */
SIMD v128_t wasm_i32x4_trunc_sat_f32x4(v128_t a) {
  const __m128i t = _mm_cvttps_epi32(a);
  const __m128i big = _mm_castps_si128(_mm_cmpge_ps(a, _mm_set1_ps(2147483648.0f)));
  const __m128i ordered = _mm_castps_si128(_mm_cmpord_ps(a, a));
  return _mm_castsi128_ps(_mm_and_si128(ordered, _mm_xor_si128(t, big)));
}

#undef SIMD
#endif
