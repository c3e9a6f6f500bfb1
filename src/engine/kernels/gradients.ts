/**
 * Gradient formulas replacing tfjs 4.22's for ops whose stock gradients are fine on paper
 * but slow on every backend, and ruinous on wasm:
 * - Tile: the stock gradient adds up one slice of dy per repetition. LayerNormalization tiles its
 *   scale and offset over batch × sequence, so a [32, 32, 64] activation meant 1024 Slice and
 *   1024 Add kernels per layer: 0.23 s of a 0.4 s transformer step. Here: one reshape and one Sum.
 * - ClipByValue (ReLU with maxValue, i.e. ReLU6) and Relu6: the stock gradients build boolean
 *   masks with GreaterEqual, LessEqual, LogicalAnd, Where and Cast, each 5–12 ms on a
 *   64×28×28×32 activation on wasm (bool kernels take a slow path there), against 0.2–0.6 ms for
 *   Sub, Step and Mul. Here the mask is built from those. For finite x, `min − x` is exactly 0
 *   only when x = min and has the sign of the true difference, so 1 − step(min − x) is x ≥ min
 *   exactly as GreaterEqual has it. (A NaN input gives a NaN gradient instead of 0.) On wasm
 *   one SIMD pass replaces all of these (CLIP_GRADIENT_KERNEL; a NaN input gives 0 there, as
 *   tfjs's clip gradient does; its ReLU6 gradient would give NaN).
 * - FusedBatchNorm (BatchNormalization and LayerNormalization): the stock gradient makes about
 *   ten full-size tensors (a tiled rsqrt, dy·scale, (x − mean) and products of them) before its
 *   four reductions. Here a reduction comes first wherever the factor is constant along the
 *   reduced axes (the mean's gradient needs no full-size tensor at all), leaving five full-size
 *   element-wise ops when every input needs a gradient and one when only x does (a frozen layer).
 * - Sum and Mean: the stock gradients build a full-size `ones(x.shape)` in a JS loop, upload it,
 *   and multiply (and for Mean divide) it by dy: BatchNormalization's moments take two Mean
 *   gradients over the whole activation, and on the separable model the ones loop alone was 18 %
 *   of the step. Here dy is spread with one Tile (a memmove on wasm).
 * - Relu: on wasm the same one-pass masked gradient instead of Cast, Step and Multiply.
 * Gradients are registered for every backend (tfjs has no per-backend gradients); all are the
 * same functions up to float32 rounding, checked against the stock ones in
 * test/engine/kernels.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type {
  ClipByValueAttrs, FusedBatchNormAttrs, GradConfig, MeanAttrs, NamedAttrMap, SumAttrs, Tensor, TileAttrs,
} from '@tensorflow/tfjs';

const tileGradient: GradConfig = {
  kernelName: tf.Tile,
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved as [Tensor];
    const { reps } = attrs as unknown as TileAttrs;
    return {
      x: () => {
        // dy[r0·s0 + i0, r1·s1 + i1, …] seen as [r0, s0, r1, s1, …]: sum over every r axis
        const split: number[] = [];
        const repAxes: number[] = [];
        x.shape.forEach((size, i) => {
          repAxes.push(split.length);
          split.push(reps[i]!, size);
        });
        return tf.reshape(tf.sum(tf.reshape(dy as Tensor, split), repAxes), x.shape);
      },
    };
  },
};

/** 1 where min ≤ x ≤ max, else 0, from arithmetic kernels only. */
function insideMask(x: Tensor, min: number, max: number): Tensor {
  const belowMin = tf.step(tf.sub(tf.scalar(min, x.dtype), x));
  const aboveMax = tf.step(tf.sub(x, tf.scalar(max, x.dtype)));
  // both cannot be 1 at once when min ≤ max
  return tf.sub(tf.scalar(1, x.dtype), tf.add(belowMin, aboveMax));
}

/**
 * A kernel (registered on wasm by index.ts) that computes dy where x is inside the bounds and
 * 0 elsewhere in one pass; backends without it run the composed masks below.
 */
export const CLIP_GRADIENT_KERNEL = 'LayerwiseClipGradient';

export interface ClipGradientAttrs {
  min: number;
  max: number;
  /** x must exceed min rather than reach it (ReLU6 at 0). */
  minExclusive: boolean;
}

function fusedMaskedGradient(dy: Tensor, x: Tensor, attrs: ClipGradientAttrs): Tensor | undefined {
  const usable = dy.dtype === 'float32' && x.dtype === 'float32' && tf.util.arraysEqual(dy.shape, x.shape) &&
    tf.getKernel(CLIP_GRADIENT_KERNEL, tf.getBackend()) !== undefined;
  return usable ? (tf.engine().runKernel(CLIP_GRADIENT_KERNEL, { x, dy }, { ...attrs }) as Tensor) : undefined;
}

const clipByValueGradient: GradConfig = {
  kernelName: tf.ClipByValue,
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved as [Tensor];
    const { clipValueMin, clipValueMax } = attrs as unknown as ClipByValueAttrs;
    return {
      x: () =>
        fusedMaskedGradient(dy as Tensor, x, { min: clipValueMin, max: clipValueMax, minExclusive: false }) ??
        tf.mul(dy as Tensor, insideMask(tf.cast(x, 'float32'), clipValueMin, clipValueMax)),
    };
  },
};

const relu6Gradient: GradConfig = {
  kernelName: tf.Relu6,
  inputsToSave: ['x'],
  // stock: (x ≤ 6) · step(x), i.e. 0 at x = 0 (step(0) = 0), 1 at x = 6
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [x] = saved as [Tensor];
    return {
      x: () => {
        const fused = fusedMaskedGradient(dy as Tensor, x, { min: 0, max: 6, minExclusive: true });
        if (fused !== undefined) return fused;
        const xf = tf.cast(x, 'float32');
        const notAbove = tf.sub(tf.scalar(1), tf.step(tf.sub(xf, tf.scalar(6))));
        return tf.mul(dy as Tensor, tf.mul(notAbove, tf.step(xf)));
      },
    };
  },
};

/** `t` summed over the axes it was broadcast along to reach `xShape`, shaped as `shape`. */
function sumTo(t: Tensor, shape: readonly number[], xShape: readonly number[]): Tensor {
  const axes = tf.backend_util.getReductionAxes(shape as number[], xShape as number[]);
  return tf.reshape(axes.length > 0 ? tf.sum(t, axes) : t, shape as number[]);
}

/**
 * Σ (full · factor) down to `shape`: the reduction first, then a product of small tensors, when
 * the factor does not vary along any reduced axis; else the product first.
 */
function sumOfProduct(full: Tensor, factor: Tensor, shape: readonly number[], xShape: readonly number[]): Tensor {
  const reduced = tf.backend_util.getReductionAxes(shape as number[], xShape as number[]);
  const offset = xShape.length - factor.shape.length;
  const varies = reduced.some((axis) => (factor.shape[axis - offset] ?? 1) > 1);
  if (varies) return sumTo(tf.mul(full, factor), shape, xShape);
  return tf.reshape(tf.mul(sumTo(full, shape, xShape), factor), shape as number[]);
}

const fusedBatchNormGradient: GradConfig = {
  kernelName: tf.FusedBatchNorm,
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const { varianceEpsilon } = attrs as unknown as FusedBatchNormAttrs;
    const [x, mean, variance, scale] = saved as [Tensor, Tensor, Tensor, Tensor | undefined];
    const g = dy as Tensor;
    const s = scale ?? tf.scalar(1);
    const rsqrt = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
    const gain = tf.mul(s, rsqrt);
    // Σ dy·(x − mean) is what both the scale's and the variance's gradient reduce
    const dyTimesCentred = (): Tensor => tf.mul(g, tf.sub(x, mean));
    return {
      x: () => tf.reshape(tf.mul(g, gain), x.shape),
      mean: () => sumOfProduct(g, tf.neg(gain), mean.shape, x.shape),
      variance: () => sumOfProduct(dyTimesCentred(), tf.mul(tf.mul(tf.square(rsqrt), gain), tf.scalar(-0.5)), mean.shape, x.shape),
      scale: () => sumOfProduct(dyTimesCentred(), rsqrt, mean.shape, x.shape),
      offset: () => sumTo(g, mean.shape, x.shape),
    };
  },
};

const reluGradient: GradConfig = {
  kernelName: tf.Relu,
  inputsToSave: ['x'],
  // stock: dy · step(x), i.e. 0 at x = 0; a Cast and a Step and a Multiply on wasm
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [x] = saved as [Tensor];
    return {
      x: () =>
        fusedMaskedGradient(dy as Tensor, x, { min: 0, max: Infinity, minExclusive: true }) ??
        tf.mul(dy as Tensor, tf.step(tf.cast(x, 'float32'))),
    };
  },
};

/** dy, reshaped with the reduced axes kept as size 1, spread back over x's shape. */
function spreadOverReducedAxes(dy: Tensor, xShape: readonly number[], axis: number | number[]): Tensor {
  const expanded = xShape.slice();
  for (const a of tf.util.parseAxisParam(axis, xShape as number[])) expanded[a] = 1;
  return tf.broadcastTo(tf.reshape(dy, expanded), xShape as number[]);
}

const sumGradient: GradConfig = {
  kernelName: tf.Sum,
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved as [Tensor];
    const { axis } = attrs as unknown as SumAttrs;
    return { x: () => spreadOverReducedAxes(dy as Tensor, x.shape, axis) };
  },
};

const meanGradient: GradConfig = {
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved as [Tensor];
    const { axis } = attrs as unknown as MeanAttrs;
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const count = tf.util.sizeFromShape(tf.backend_util.computeOutAndReduceShapes(x.shape, axes)[1]);
    // dividing before spreading rounds each element exactly as tfjs's (dy · 1) / count does
    return { x: () => spreadOverReducedAxes(tf.div(dy as Tensor, tf.scalar(count)), x.shape, axis) };
  },
};

export const GRADIENTS: readonly GradConfig[] = [
  tileGradient, clipByValueGradient, relu6Gradient, reluGradient, fusedBatchNormGradient, sumGradient, meanGradient,
];
