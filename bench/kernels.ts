/**
 * The engine's conv and product kernels one at a time on the shapes of the real architectures
 * (bench/speed.ts --models mobilenet96, encoder; the depthwise forward is XNNPACK's, the rest
 * the engine's), on one thread, each repeated and timed by its fastest run: on a machine shared
 * with other work the fastest of many runs is the figure that other work moves least, so two
 * builds of the kernels can be compared by running this after each (the whole-model bench's
 * steps/s spread 2× within minutes under load).
 *
 * Run: npx tsx bench/kernels.ts [--reps 15] [--threads]
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/engine/backend.ts';
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

async function main(): Promise<void> {
  await selectBackend('wasm', { trainableClassNames: ['Conv2D', 'Dense'] });
  useKernelThreads(argv.includes('--threads'));
  const totals = { forward: 0, inputGrad: 0, filterGrad: 0, depthwise: 0, depthwiseInputGrad: 0, depthwiseFilterGrad: 0, product: 0, productGrads: 0 };
  for (const [size, inC, outC] of POINTWISE) {
    const x = tf.randomNormal([16, size, size, inC]) as tf.Tensor4D;
    const f = tf.randomNormal([1, 1, inC, outC]) as tf.Tensor4D;
    const dy = tf.randomNormal([16, size, size, outC]) as tf.Tensor4D;
    totals.forward += fastest(() => tf.conv2d(x, f, 1, 'same'));
    totals.inputGrad += fastest(() => tf.conv2dTranspose(dy, f, x.shape, 1, 'same'));
    totals.filterGrad += fastest(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy },
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
    totals.depthwise += count * fastest(() => tf.depthwiseConv2d(x, f, stride, pad));
    totals.depthwiseInputGrad += count * fastest(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: f },
      { ...attrs, inputShape: x.shape }) as tf.Tensor);
    totals.depthwiseFilterGrad += count * fastest(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy },
      { ...attrs, filterShape: f.shape }) as tf.Tensor);
    tf.dispose([x, f, y, dy]);
  }
  for (const [m, k, n] of PRODUCTS) {
    const a = tf.randomNormal([m, k]) as tf.Tensor2D;
    const b = tf.randomNormal([k, n]) as tf.Tensor2D;
    const dy = tf.randomNormal([m, n]) as tf.Tensor2D;
    totals.product += fastest(() => tf.matMul(a, b));
    totals.productGrads += fastest(() => tf.matMul(dy, b, false, true)) + fastest(() => tf.matMul(a, dy, true, false));
    tf.dispose([a, b, dy]);
  }
  const line = Object.entries(totals).map(([k, ms]) => `${k} ${ms.toFixed(2)} ms`).join(', ');
  console.log(`fastest of ${reps}, summed over the shapes (${argv.includes('--threads') ? 'kernel threads on' : 'one thread'}): ${line}`);
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
