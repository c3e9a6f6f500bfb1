/**
 * MaxPoolGrad for wasm. The stock wasm kernel (tfjs 4.22) starts each window's running maximum
 * at FLT_MIN, the smallest *positive* float, with position 0: a window whose values are all ≤ 0
 * (every window of a ReLU'd dead region, most windows after a BatchNorm) sends its gradient to
 * element 0 of the whole tensor instead of to the window's maximum. This is the cpu backend's
 * rule — first strict maximum in row-major window order, padding skipped — as one pass in JS;
 * the work is tiny next to the convolutions around it.
 */
import type * as tf from '@tensorflow/tfjs';

type Conv2DInfo = tf.backend_util.Conv2DInfo;

/** dx for NHWC `x` and `dy` of a max pool described by `info` (from computePool2DInfo). */
export function maxPoolGradient(x: Float32Array, dy: Float32Array, info: Conv2DInfo): Float32Array {
  const { batchSize, inHeight, inWidth, outHeight, outWidth, inChannels: channels } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const dx = new Float32Array(x.length);
  const best = new Float32Array(channels);
  const at = new Int32Array(channels);
  let dyIndex = 0;
  for (let n = 0; n < batchSize; n++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        best.fill(Number.NEGATIVE_INFINITY);
        at.fill(-1);
        for (let i = 0; i < filterHeight; i++) {
          const h = oh * strideHeight - top + i * dilationHeight;
          if (h < 0 || h >= inHeight) continue;
          for (let j = 0; j < filterWidth; j++) {
            const w = ow * strideWidth - left + j * dilationWidth;
            if (w < 0 || w >= inWidth) continue;
            const base = ((n * inHeight + h) * inWidth + w) * channels;
            for (let c = 0; c < channels; c++) {
              const v = x[base + c]!;
              if (v > best[c]!) {
                best[c] = v;
                at[c] = base + c;
              }
            }
          }
        }
        for (let c = 0; c < channels; c++, dyIndex++) {
          const target = at[c]!;
          // a window of NaNs has no maximum; cpu drops its gradient too
          if (target >= 0) dx[target] = dx[target]! + dy[dyIndex]!;
        }
      }
    }
  }
  return dx;
}
