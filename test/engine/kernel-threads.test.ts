/**
 * The conv kernels split over the kernel threads (src/engine/kernels/threads.ts) against the
 * stock cpu backend: forward (with bias and fused activations, dilated too), filter and input
 * gradients of Conv2D and DepthwiseConv2D, on batches that split evenly and unevenly. References
 * are computed on cpu first from the same Float32Arrays; no tensor moves across backends.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/engine/backend.ts';
import { startThreads } from '../../src/engine/kernels/native.ts';
import { sharedCopies, splitBatch } from '../../src/engine/kernels/split-call.ts';
import { activeAddon } from '../../src/engine/kernels/native-addon.ts';
import {
  kernelThreadCount,
  kernelThreadStatus,
  kernelThreads,
  stopKernelThreads,
  useKernelThreads,
} from '../../src/engine/kernels/threads.ts';
import { assertClose, matMulAndGradients, randomValues, size, type Results } from './numeric.ts';

type Activation = 'linear' | 'relu' | 'relu6';

interface Case {
  name: string;
  kind: 'conv2d' | 'depthwise';
  batch: number;
  size: [number, number];
  inChannels: number;
  /** conv2d: output channels; depthwise: channel multiplier. */
  outChannels: number;
  filter: [number, number];
  strides: number;
  pad: 'same' | 'valid' | tf.backend_util.ExplicitPadding;
  /** Forward only: tfjs's cpu gradients refuse dilations. */
  dilation: number;
  activation: Activation;
}

function cases(): Case[] {
  const out: Case[] = [];
  const shapes: Array<Pick<Case, 'batch' | 'size' | 'inChannels' | 'outChannels'>> = [
    { batch: 2, size: [9, 9], inChannels: 3, outChannels: 8 },
    { batch: 3, size: [8, 7], inChannels: 5, outChannels: 6 },
    { batch: 5, size: [6, 6], inChannels: 8, outChannels: 13 },
  ];
  const pads: Case['pad'][] = ['same', 'valid', [[0, 0], [1, 2], [2, 0], [0, 0]]];
  const activations: Activation[] = ['linear', 'relu', 'relu6'];
  let i = 0;
  for (const kind of ['conv2d', 'depthwise'] as const) {
    for (const strides of [1, 2]) {
      for (const pad of pads) {
        for (const filter of [[3, 3], [1, 1], [2, 3]] as Array<[number, number]>) {
          const s = shapes[i % shapes.length]!;
          const activation = activations[i % activations.length]!;
          // explicit padding with dilation is not a combination tfjs-layers makes; keep it simple
          const dilation = strides === 1 && typeof pad === 'string' && i % 2 === 0 ? 2 : 1;
          i++;
          const outChannels = kind === 'depthwise' ? 1 + (i % 2) : s.outChannels;
          out.push({
            name: `${kind} ${s.batch}×${s.size.join('×')}×${s.inChannels} filter ${filter.join('×')}→${outChannels} ` +
              `stride ${strides} pad ${JSON.stringify(pad)} dilation ${dilation} ${activation}`,
            kind, ...s, outChannels, filter, strides, pad, dilation, activation,
          });
        }
      }
    }
  }
  return out;
}

/** Forward (dilated, with bias and activation) and both gradients of Σ conv(x, f) ⊙ w (undilated). */
function results(c: Case, seed: number): Results {
  return tf.tidy(() => {
    const xShape: [number, number, number, number] = [c.batch, c.size[0], c.size[1], c.inChannels];
    const fShape: [number, number, number, number] = [c.filter[0], c.filter[1], c.inChannels, c.outChannels];
    const x = tf.tensor4d(randomValues(size(xShape), seed), xShape);
    const f = tf.tensor4d(randomValues(size(fShape), seed + 1), fShape);
    const outChannels = c.kind === 'conv2d' ? c.outChannels : c.inChannels * c.outChannels;
    const bias = tf.tensor1d(randomValues(outChannels, seed + 2));
    const conv = (xs: tf.Tensor4D, fs: tf.Tensor4D, dilation: number): tf.Tensor4D =>
      c.kind === 'conv2d'
        ? tf.conv2d(xs, fs, c.strides, c.pad, 'NHWC', dilation)
        : tf.depthwiseConv2d(xs, fs, c.strides, c.pad, 'NHWC', dilation);
    const y = c.kind === 'conv2d'
      ? tf.fused.conv2d({ x, filter: f, strides: c.strides, pad: c.pad, dilations: c.dilation, bias, activation: c.activation })
      // (explicit padding works at run time; the fused depthwise op's type does not list it)
      : tf.fused.depthwiseConv2d({ x, filter: f, strides: c.strides, pad: c.pad as 'same', dilations: c.dilation, bias, activation: c.activation });
    const yShape = conv(x, f, 1).shape;
    const weight = tf.tensor(randomValues(size(yShape), seed + 3), yShape);
    const [dx, df] = tf.grads((xs: tf.Tensor, fs: tf.Tensor) =>
      tf.sum(tf.mul(conv(xs as tf.Tensor4D, fs as tf.Tensor4D, 1), weight)))([x, f]);
    return {
      y: y.dataSync() as Float32Array,
      // without bias or activation: the plain kernels (the engine's own depthwise forward, natively)
      plain: conv(x, f, c.dilation).dataSync() as Float32Array,
      dx: dx!.dataSync() as Float32Array,
      dFilter: df!.dataSync() as Float32Array,
    };
  });
}

interface MatMulCase {
  /** Leading batch axes ([] for one product, as a Dense layer makes). */
  batch: number[];
  m: number;
  k: number;
  n: number;
  transposeA: boolean;
  transposeB: boolean;
}

const MATMUL_CASES: MatMulCase[] = [[], [3], [2, 5]].flatMap((batch, b) =>
  [[false, false], [true, false], [false, true], [true, true]].map(([transposeA, transposeB], t) => ({
    // one product: rows split when m ≥ n, columns split otherwise; both with every transpose
    batch, m: [9, 6, 13][b]! + (t % 2) * 9, k: [7, 12, 5][b]!, n: [11, 9, 4][b]! + 2 * t, transposeA: transposeA!, transposeB: transposeB!,
  })));

/** The case's product and gradients (its stored shapes follow from m, k, n and the transposes). */
function matMulResults(c: MatMulCase, seed: number): Results {
  const aShape = [...c.batch, ...(c.transposeA ? [c.k, c.m] : [c.m, c.k])];
  const bShape = [...c.batch, ...(c.transposeB ? [c.n, c.k] : [c.k, c.n])];
  return matMulAndGradients(aShape, bShape, c.transposeA, c.transposeB, seed);
}

const CASES = cases();
let reference: Results[] = [];
let threaded: Results[] = [];
let matMulReference: Results[] = [];
let matMulThreaded: Results[] = [];
let matMulPosted = 0;
let posted = 0;
/** Floats of dy a gradient's second kernel found in the shared memory, left there by its first. */
let reused = 0;
let copied = 0;
let threadsUp = 0;
/** Threads up when selectBackend returned, before anything waited for them. */
let upAtSelect = 0;
/** Odd batches over 3 and 7 kernel threads (this machine's count is 1 per extra core). */
const MANY_LANES = [3, 7];
const ODD_BATCHES = [5, 6, 7, 9, 10, 17];
const oddCases = (): Case[] => ODD_BATCHES.flatMap((batch, i) => {
  const base = CASES[(5 * i) % CASES.length]!;
  const matching = CASES.find((c, j) => j > 12 && c.kind !== base.kind && c.pad === base.pad) ?? base;
  return [base, matching].map((c) => ({ ...c, batch, name: `${c.name} batch ${batch}` }));
});
let oddReference: Results[] = [];
let oddMatMul: MatMulCase[] = [];
let oddMatMulReference: Results[] = [];
const manyLanes: Array<{ lanes: number; up: number; conv: Results[]; matMul: Results[] }> = [];
const takeBackRuns: Array<{ lanes: number; up: number; conv: Results[]; matMul: Results[]; takenBack: number }> = [];

before(async () => {
  assert.ok(await tf.setBackend('cpu'));
  reference = CASES.map((c, i) => results(c, 100 * i));
  matMulReference = MATMUL_CASES.map((c, i) => matMulResults(c, 7000 + 10 * i));
  oddReference = oddCases().map((c, i) => results(c, 300 + 100 * i));
  // products whose split side (rows when m ≥ n, else columns) has an odd length
  oddMatMul = ODD_BATCHES.flatMap((len, i) => [
    { batch: [], m: len + 8, k: 6, n: len, transposeA: i % 2 === 0, transposeB: false },
    { batch: [], m: len, k: 5, n: len + 9, transposeA: false, transposeB: i % 2 === 1 },
    { batch: [len], m: 4, k: 3, n: 5, transposeA: false, transposeB: true },
  ]);
  oddMatMulReference = oddMatMul.map((c, i) => matMulResults(c, 9000 + 10 * i));
  await selectBackend('wasm', { trainableClassNames: ['Conv2D', 'DepthwiseConv2D'] });
  upAtSelect = kernelThreads()?.ready() ?? 0;
  threadsUp = (await kernelThreads()?.started()) ?? 0;
  // split every call, however small: the cases are small so that cpu can compute them
  useKernelThreads(true, { minWork: 0 });
  const before = kernelThreads()?.posted ?? 0;
  const reusedBefore = sharedCopies.reused;
  const copiedBefore = sharedCopies.copied;
  try {
    threaded = CASES.map((c, i) => results(c, 100 * i));
    posted = (kernelThreads()?.posted ?? 0) - before;
    reused = sharedCopies.reused - reusedBefore;
    copied = sharedCopies.copied - copiedBefore;
    matMulThreaded = MATMUL_CASES.map((c, i) => matMulResults(c, 7000 + 10 * i));
    matMulPosted = (kernelThreads()?.posted ?? 0) - before - posted;
  } finally {
    useKernelThreads(true);
  }
  // the same kernels over more threads than this machine has cores: every split shape occurs
  for (const lanes of MANY_LANES) {
    await stopKernelThreads();
    startThreads(lanes);
    const up = (await kernelThreads()?.started()) ?? 0;
    useKernelThreads(true, { minWork: 0 });
    try {
      manyLanes.push({
        lanes,
        up,
        conv: oddCases().map((c, i) => results(c, 300 + 100 * i)),
        matMul: oddMatMul.map((c, i) => matMulResults(c, 9000 + 10 * i)),
      });
    } finally {
      useKernelThreads(true);
    }
    // again, with this thread taking back every call no kernel thread has started yet; the calls
    // do not wake the threads (as when they wait for a core), so some are taken back however fast
    // this machine wakes a thread
    useKernelThreads(true, { minWork: 0, takeBackAfterMs: 0, wake: false });
    const takenBefore = kernelThreads()?.takenBack ?? 0;
    try {
      takeBackRuns.push({
        lanes,
        up,
        conv: oddCases().map((c, i) => results(c, 300 + 100 * i)),
        matMul: oddMatMul.map((c, i) => matMulResults(c, 9000 + 10 * i)),
        takenBack: (kernelThreads()?.takenBack ?? 0) - takenBefore,
      });
    } finally {
      useKernelThreads(true);
    }
  }
  await stopKernelThreads();
  startThreads();
  await kernelThreads()?.started();
});

after(() => useKernelThreads(true));

test('a batch splits into parts that cover it once, in order, none empty, this thread taking the smallest', () => {
  for (let batch = 2; batch <= 60; batch++) {
    for (let lanes = 1; lanes < Math.min(batch, 9); lanes++) {
      const { mine, parts } = splitBatch(batch, lanes);
      assert.ok(mine >= 1 && parts.length === lanes, `${batch}/${lanes}`);
      let next = mine;
      for (const p of parts) {
        assert.equal(p.start, next, `${batch}/${lanes}: part starts where the previous ended`);
        assert.ok(p.images >= mine && p.images <= mine + 1, `${batch}/${lanes}: part of ${p.images} images beside ${mine}`);
        next += p.images;
      }
      assert.equal(next, batch, `${batch}/${lanes}: parts end at the batch's end`);
    }
  }
});

test('LAYERWISE_KERNEL_THREADS sets the thread count; anything else falls back to one per extra core', () => {
  assert.equal(kernelThreadCount({ LAYERWISE_KERNEL_THREADS: '3' }).count, 3);
  assert.equal(kernelThreadCount({ LAYERWISE_KERNEL_THREADS: '0' }).count, 0);
  const fallback = Math.min(7, availableParallelism() - 1);
  for (const bad of ['-1', 'two', '1.5', '']) assert.equal(kernelThreadCount({ LAYERWISE_KERNEL_THREADS: bad }).count, fallback, bad);
});

test('over 3 and 7 threads, odd batches and odd product sides split correctly (conv, depthwise, rows, columns, products)', () => {
  assert.equal(manyLanes.length, MANY_LANES.length);
  for (const run of manyLanes) {
    assert.equal(run.up, run.lanes, `${run.lanes} threads should have come up`);
    oddCases().forEach((c, i) => {
      for (const [name, expected] of Object.entries(oddReference[i]!)) {
        assertClose(run.conv[i]![name]!, expected, `${run.lanes} threads, ${c.name}: ${name}`);
      }
    });
    oddMatMul.forEach((c, i) => {
      for (const [name, expected] of Object.entries(oddMatMulReference[i]!)) {
        assertClose(run.matMul[i]![name]!, expected, `${run.lanes} threads, [${c.batch.join(',')}] ${c.m}×${c.k}·${c.k}×${c.n}: ${name}`);
      }
    });
  }
});

test('calls taken back from kernel threads that had not started them give the same bits (conv, depthwise, rows, columns, products)', () => {
  assert.equal(takeBackRuns.length, MANY_LANES.length);
  takeBackRuns.forEach((run, r) => {
    assert.ok(run.takenBack > 0, `${run.lanes} threads: no call was taken back`);
    const split = manyLanes[r]!;
    run.conv.forEach((res, i) => {
      for (const [name, values] of Object.entries(res)) assert.deepEqual(values, split.conv[i]![name], `${run.lanes} threads, conv case ${i}: ${name}`);
    });
    run.matMul.forEach((res, i) => {
      for (const [name, values] of Object.entries(res)) assert.deepEqual(values, split.matMul[i]![name], `${run.lanes} threads, product case ${i}: ${name}`);
    });
  });
});

test('kernel threads are up when selectBackend returns (every step splits alike), and the reason says so', { skip: availableParallelism() < 2 ? 'one core: no kernel threads' : false }, () => {
  assert.ok(threadsUp >= 1, kernelThreadStatus().note);
  assert.equal(upAtSelect, threadsUp);
  assert.match(kernelThreadStatus().note, /split over \d+ threads/);
});

test('split conv and depthwise kernels match cpu: forward (bias, ReLU, ReLU6, dilation) and both gradients', () => {
  // every case splits its forward conv (conv2d only), filter and input gradients
  assert.ok(posted >= CASES.length * 2, `only ${posted} calls went to a kernel thread`);
  if (activeAddon() !== undefined) {
    // native kernel threads work in tfjs's heap, in place
    assert.equal(copied + reused, 0, 'native kernel threads should need no copies');
  } else {
    // the filter gradient reads the threads' parts of dy where the input gradient left them
    assert.ok(reused > 0, 'no gradient found its dy in the shared memory');
  }
  CASES.forEach((c, i) => {
    for (const [name, expected] of Object.entries(reference[i]!)) assertClose(threaded[i]![name]!, expected, `${c.name}: ${name}`);
  });
});

test('split matrix products match cpu: one product split by rows, many by product, every transpose, and their gradients', () => {
  assert.ok(matMulPosted >= MATMUL_CASES.length * 3, `only ${matMulPosted} products went to a kernel thread`);
  MATMUL_CASES.forEach((c, i) => {
    const what = `[${c.batch.join(',')}] ${c.m}×${c.k}·${c.k}×${c.n} transposes ${c.transposeA}/${c.transposeB}`;
    for (const [name, expected] of Object.entries(matMulReference[i]!)) assertClose(matMulThreaded[i]![name]!, expected, `${what}: ${name}`);
  });
});

test('a kernel that traps in a thread is reported as an error, and the thread keeps working', () => {
  const threads = kernelThreads();
  assert.ok(threads !== undefined && threads.ready() >= 1);
  // a pointer far past the end of the shared memory traps (memory access out of bounds)
  threads.post('depthwise_input_grad', [2 ** 31, 2 ** 31, 2 ** 31, 1, 4, 4, 1, 1, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1]);
  assert.throws(() => threads.join(false), /a kernel thread failed: .*out of bounds/);
  assert.ok(threads.ready() >= 1);
  useKernelThreads(true, { minWork: 0 });
  try {
    const again = results(CASES[0]!, 0);
    assertClose(again.dFilter!, reference[0]!.dFilter!, 'after a failure');
  } finally {
    useKernelThreads(true);
  }
});
