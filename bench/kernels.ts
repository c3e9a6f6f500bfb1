/**
 * The engine's conv and product kernels one at a time on the shapes of the real architectures
 * (bench/speed.ts --models mobilenet96, encoder; the depthwise forward is XNNPACK's, the rest
 * the engine's), on one thread, each repeated and timed by its fastest run: on a machine shared
 * with other work the fastest of many runs is the figure that other work moves least, so two
 * builds of the kernels can be compared by running this after each (the whole-model bench's
 * steps/s spread 2× within minutes under load).
 *
 * Each shape is timed with the native AVX2 kernels (native-addon.ts; linux-x64) and, right after,
 * with the wasm ones, so both see the same machine; the totals print as ms and GFLOP/s.
 *
 * Run: npx tsx bench/kernels.ts [--reps 15] [--threads] [--no-native]
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/engine/backend.ts';
import { activeAddon, useNativeAddon } from '../src/engine/kernels/native-addon.ts';
import { useKernelThreads } from '../src/engine/kernels/threads.ts';

const argv = process.argv.slice(2);
const reps = Number(argv[argv.indexOf('--reps') + 1] ?? 15) || 15;

/** MobileNetV2's 1×1 convolutions at 96 px, batch 16: [height = width, in, out]. */
const POINTWISE: Array<[number, number, number]> = [
  [48, 32, 16], [48, 16, 96], [24, 96, 24], [24, 24, 144], [24, 144, 24], [12, 144, 32], [12, 32, 192], [12, 192, 32],
  [6, 192, 64], [6, 64, 384], [6, 384, 64], [6, 384, 96], [6, 96, 576], [6, 576, 96], [3, 576, 160], [3, 160, 960],
  [3, 960, 160], [3, 960, 320], [3, 320, 1280],
];
/**
 * MobileNetV2's 3×3 depthwise convolutions at 96 px, batch 16: [input height = width, channels, stride, how many].
 * Keras pads the stride-2 ones with ZeroPadding2D and runs them 'valid'.
 */
const DEPTHWISE: Array<[number, number, 1 | 2, number]> = [
  [48, 32, 1, 1], [49, 96, 2, 1], [24, 144, 1, 1], [25, 144, 2, 1], [12, 192, 1, 2], [13, 192, 2, 1],
  [6, 384, 1, 4], [6, 576, 1, 2], [7, 576, 2, 1], [3, 960, 1, 3],
];
/** The encoder's products (rows = batch 16 × seq 128): [m, k, n]. */
const PRODUCTS: Array<[number, number, number]> = [[2048, 256, 256], [2048, 256, 1024], [2048, 1024, 256]];

function fastest(run: () => tf.Tensor): number {
  run().dispose();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    run().dispose();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

type Group = 'forward' | 'inputGrad' | 'filterGrad' | 'depthwise' | 'depthwiseInputGrad' | 'depthwiseFilterGrad' | 'product' | 'productGrads';
const variants = argv.includes('--no-native') || activeAddon() === undefined ? ['wasm'] : ['native', 'wasm'];
const totals = new Map<string, { ms: number; flops: number }>();

/** Times `run` (`flops` multiply-adds × 2, `count` times) with each kernel variant in turn. */
function measure(group: Group, multiplyAdds: number, run: () => tf.Tensor, count = 1): void {
  for (const variant of variants) {
    useNativeAddon(variant === 'native');
    const key = `${group} ${variant}`;
    const t = totals.get(key) ?? { ms: 0, flops: 0 };
    t.ms += count * fastest(run);
    t.flops += count * 2 * multiplyAdds;
    totals.set(key, t);
  }
}

async function main(): Promise<void> {
  await selectBackend('wasm', { trainableClassNames: ['Conv2D', 'Dense'] });
  useKernelThreads(argv.includes('--threads'));
  for (const [size, inC, outC] of POINTWISE) {
    const x = tf.randomNormal([16, size, size, inC]) as tf.Tensor4D;
    const f = tf.randomNormal([1, 1, inC, outC]) as tf.Tensor4D;
    const dy = tf.randomNormal([16, size, size, outC]) as tf.Tensor4D;
    const work = 16 * size * size * inC * outC;
    measure('forward', work, () => tf.conv2d(x, f, 1, 'same'));
    measure('inputGrad', work, () => tf.conv2dTranspose(dy, f, x.shape, 1, 'same'));
    measure('filterGrad', work, () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy },
      { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', filterShape: f.shape }) as tf.Tensor);
    tf.dispose([x, f, dy]);
  }
  for (const [size, channels, stride, count] of DEPTHWISE) {
    const pad = stride === 1 ? 'same' : 'valid';
    const x = tf.randomNormal([16, size, size, channels]) as tf.Tensor4D;
    const f = tf.randomNormal([3, 3, channels, 1]) as tf.Tensor4D;
    const y = tf.depthwiseConv2d(x, f, stride, pad);
    const dy = tf.randomNormal(y.shape) as tf.Tensor4D;
    const attrs = { strides: [stride, stride], pad, dilations: 1 };
    const work = y.size * 9;
    measure('depthwise', work, () => tf.depthwiseConv2d(x, f, stride, pad), count);
    measure('depthwiseInputGrad', work, () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: f },
      { ...attrs, inputShape: x.shape }) as tf.Tensor, count);
    measure('depthwiseFilterGrad', work, () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy },
      { ...attrs, filterShape: f.shape }) as tf.Tensor, count);
    tf.dispose([x, f, y, dy]);
  }
  for (const [m, k, n] of PRODUCTS) {
    const a = tf.randomNormal([m, k]) as tf.Tensor2D;
    const b = tf.randomNormal([k, n]) as tf.Tensor2D;
    const dy = tf.randomNormal([m, n]) as tf.Tensor2D;
    measure('product', m * k * n, () => tf.matMul(a, b));
    measure('productGrads', m * k * n, () => tf.matMul(dy, b, false, true));
    measure('productGrads', m * k * n, () => tf.matMul(a, dy, true, false));
    tf.dispose([a, b, dy]);
  }
  console.log(`fastest of ${reps}, summed over the shapes (${argv.includes('--threads') ? 'kernel threads on' : 'one thread'}):`);
  for (const [key, t] of totals) console.log(`  ${key.padEnd(28)} ${t.ms.toFixed(2).padStart(9)} ms ${(t.flops / t.ms / 1e6).toFixed(1).padStart(7)} GFLOP/s`);
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
