/**
 * The wasm training kernels (src/engine/kernels) against the stock cpu backend. Every case is
 * computed twice from the same Float32Arrays: first on cpu (all cases), then on wasm, never
 * moving a tensor across backends. cpu's conv backprop kernels ignore dilations, so dilated
 * cases take their reference from the undilated kernel with a zero-spread filter (a dilated
 * conv is exactly that).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { TRAINING_KERNEL_NAMES, registerTrainingKernels } from '../../src/engine/kernels/index.ts';
import { nativeKernelStatus, useNativeKernels } from '../../src/engine/kernels/native.ts';
import { addonUnsupported } from '../../src/engine/kernels/native-addon.ts';
import { assertClose, assertNoLeaks, matMulAndGradients, randomValues, RTOL, size, wasmDir, type Results } from './numeric.ts';

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;
interface ConvCase {
  name: string;
  kind: 'conv2d' | 'depthwise' | 'separable';
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  /** conv2d: output channels; depthwise and separable: channel multiplier. */
  outChannels: number;
  filter: [number, number];
  strides: number;
  pad: Pad;
}

interface DilatedCase {
  name: string;
  kernel: string;
  depthwise: boolean;
  batch: number;
  size: [number, number];
  inChannels: number;
  outChannels: number;
  filter: [number, number];
  dilation: number;
  pad: 'same' | 'valid';
}

// ---------- the matrix ----------

function convCases(): ConvCase[] {
  const out: ConvCase[] = [];
  const filters: Array<[number, number]> = [[3, 3], [2, 3], [1, 1]];
  const sizes: Array<[number, number]> = [[7, 7], [8, 6]];
  const pads: Pad[] = ['same', 'valid'];
  // batch and channel counts cycle with the case index so every value meets every stride/pad
  const shapes = [
    { batch: 1, inChannels: 1, outChannels: 2 },
    { batch: 3, inChannels: 3, outChannels: 5 },
    { batch: 2, inChannels: 4, outChannels: 1 },
  ];
  let i = 0;
  for (const kind of ['conv2d', 'depthwise'] as const) {
    for (const strides of [1, 2]) {
      for (const pad of pads) {
        for (const filter of filters) {
          for (const [height, width] of sizes) {
            const s = shapes[i++ % shapes.length]!;
            const outChannels = kind === 'depthwise' ? 1 + (i % 2) : s.outChannels;
            out.push({
              name: `${kind} ${s.batch}×${height}×${width}×${s.inChannels} filter ${filter.join('×')}→${outChannels} stride ${strides} ${pad}`,
              kind, batch: s.batch, height, width, inChannels: s.inChannels, outChannels, filter, strides, pad,
            });
          }
        }
      }
    }
  }
  const explicit: tf.backend_util.ExplicitPadding = [[0, 0], [1, 2], [0, 1], [0, 0]];
  out.push(
    { name: 'conv2d explicit padding stride 1', kind: 'conv2d', batch: 2, height: 6, width: 5, inChannels: 2, outChannels: 3, filter: [3, 3], strides: 1, pad: explicit },
    { name: 'conv2d explicit padding stride 2', kind: 'conv2d', batch: 2, height: 7, width: 6, inChannels: 3, outChannels: 2, filter: [3, 2], strides: 2, pad: explicit },
    { name: 'depthwise explicit padding stride 2', kind: 'depthwise', batch: 1, height: 7, width: 6, inChannels: 3, outChannels: 2, filter: [3, 3], strides: 2, pad: explicit },
    { name: 'separable same stride 1', kind: 'separable', batch: 2, height: 6, width: 6, inChannels: 3, outChannels: 2, filter: [3, 3], strides: 1, pad: 'same' },
    { name: 'separable valid stride 2', kind: 'separable', batch: 3, height: 7, width: 8, inChannels: 2, outChannels: 1, filter: [3, 3], strides: 2, pad: 'valid' },
    { name: 'conv2d larger (batch 8, 16→24 channels)', kind: 'conv2d', batch: 8, height: 12, width: 12, inChannels: 16, outChannels: 24, filter: [3, 3], strides: 1, pad: 'same' },
    // the SIMD kernels' edges: channel counts off their 4-wide vectors and 4×8 blocks, several
    // pixel chunks with a partial last one, multipliers above 1
    { name: 'conv2d 5→11 channels stride 2 same', kind: 'conv2d', batch: 3, height: 10, width: 9, inChannels: 5, outChannels: 11, filter: [3, 3], strides: 2, pad: 'same' },
    { name: 'conv2d 3→32 channels, 1300 pixels', kind: 'conv2d', batch: 4, height: 19, width: 17, inChannels: 3, outChannels: 32, filter: [3, 3], strides: 1, pad: 'same' },
    { name: 'conv2d 1×1 9→17 channels', kind: 'conv2d', batch: 2, height: 9, width: 7, inChannels: 9, outChannels: 17, filter: [1, 1], strides: 1, pad: 'valid' },
    // at or above 512 multiply-adds per output pixel the native forward is the engine's own (below: XNNPACK):
    // an odd column panel, and taps of fewer channels than a panel slot
    { name: 'conv2d 1×1 24→33 channels (own native forward)', kind: 'conv2d', batch: 3, height: 9, width: 7, inChannels: 24, outChannels: 33, filter: [1, 1], strides: 1, pad: 'valid' },
    { name: 'conv2d 7→19 channels stride 2 same (own native forward)', kind: 'conv2d', batch: 2, height: 11, width: 10, inChannels: 7, outChannels: 19, filter: [3, 3], strides: 2, pad: 'same' },
    { name: 'depthwise 6 channels stride 1 same', kind: 'depthwise', batch: 2, height: 9, width: 9, inChannels: 6, outChannels: 1, filter: [3, 3], strides: 1, pad: 'same' },
    { name: 'depthwise 6 channels stride 2 same', kind: 'depthwise', batch: 2, height: 9, width: 10, inChannels: 6, outChannels: 1, filter: [3, 3], strides: 2, pad: 'same' },
    { name: 'depthwise 5 channels ×3 stride 2 valid', kind: 'depthwise', batch: 1, height: 8, width: 8, inChannels: 5, outChannels: 3, filter: [3, 2], strides: 2, pad: 'valid' },
    // 32 + 8 + 4 + 1 channels: every width of the native depthwise gradients' channel loops
    { name: 'depthwise 45 channels stride 1 same', kind: 'depthwise', batch: 2, height: 7, width: 6, inChannels: 45, outChannels: 1, filter: [3, 3], strides: 1, pad: 'same' },
    { name: 'depthwise 45 channels stride 2 valid', kind: 'depthwise', batch: 2, height: 9, width: 8, inChannels: 45, outChannels: 1, filter: [3, 3], strides: 2, pad: 'valid' },
  );
  return out;
}

function dilatedCases(): DilatedCase[] {
  const out: DilatedCase[] = [];
  for (const kernel of [
    tf.Conv2DBackpropFilter,
    tf.Conv2DBackpropInput,
    tf.DepthwiseConv2dNativeBackpropFilter,
    tf.DepthwiseConv2dNativeBackpropInput,
  ]) {
    const depthwise = kernel.startsWith('Depthwise');
    for (const pad of ['same', 'valid'] as const) {
      out.push({
        name: `${kernel} dilation 2 ${pad}`,
        kernel, depthwise, batch: 2, size: [9, 8], inChannels: 3, outChannels: depthwise ? 2 : 4,
        filter: [3, 2], dilation: 2, pad,
      });
    }
    // 8 channels, multiplier 1: the depthwise SIMD path
    out.push({
      name: `${kernel} dilation 3 same, 8 channels`,
      kernel, depthwise, batch: 2, size: [10, 9], inChannels: 8, outChannels: depthwise ? 1 : 6,
      filter: [3, 3], dilation: 3, pad: 'same',
    });
  }
  return out;
}

interface PoolCase {
  name: string;
  op: 'max' | 'avg';
  shape: [number, number, number, number];
  filter: number;
  strides: number;
  pad: 'same' | 'valid';
  /** Clamp the input at 0 first, as after a ReLU: windows of tied zeros. */
  relu: boolean;
}

function poolCases(): PoolCase[] {
  const out: PoolCase[] = [];
  const shapes: Array<[number, number, number, number]> = [[2, 7, 6, 3], [1, 8, 8, 2]];
  let i = 0;
  for (const op of ['max', 'avg'] as const) {
    for (const filter of [2, 3]) {
      for (const strides of [1, 2]) {
        for (const pad of ['same', 'valid'] as const) {
          const shape = shapes[i % 2]!;
          const relu = op === 'max' && i % 3 === 0;
          i++;
          out.push({ name: `${op}Pool ${shape.join('×')} ${filter}×${filter} stride ${strides} ${pad}${relu ? ' after relu' : ''}`, op, shape, filter, strides, pad, relu });
        }
      }
    }
  }
  // channels past one SIMD vector, with a remainder, for the SIMD max-pool gradient
  for (const [filter, strides, pad] of [[2, 2, 'valid'], [2, 2, 'same'], [3, 2, 'same'], [2, 1, 'valid']] as const) {
    for (const relu of [false, true]) {
      const shape: [number, number, number, number] = [2, 6, 9, 6];
      out.push({ name: `maxPool ${shape.join('×')} ${filter}×${filter} stride ${strides} ${pad}${relu ? ' after relu' : ''}`, op: 'max', shape, filter, strides, pad, relu });
    }
  }
  return out;
}

interface TileCase {
  shape: number[];
  reps: number[];
  dtype: 'float32' | 'int32' | 'bool';
}

const TILE_CASES: TileCase[] = [
  { shape: [], reps: [], dtype: 'float32' },
  { shape: [3], reps: [4], dtype: 'float32' },
  { shape: [2, 3], reps: [2, 1], dtype: 'int32' },
  { shape: [2, 3], reps: [1, 3], dtype: 'bool' },
  { shape: [1, 1, 1, 5], reps: [2, 3, 4, 1], dtype: 'float32' },
  { shape: [2, 1, 3, 2], reps: [1, 3, 2, 2], dtype: 'float32' },
  { shape: [2, 2, 1, 2, 3], reps: [2, 1, 3, 1, 2], dtype: 'int32' },
  { shape: [2, 0, 3], reps: [2, 2, 2], dtype: 'float32' },
  { shape: [2, 3, 1], reps: [2, 1, 4], dtype: 'float32' },
  { shape: [3, 1], reps: [1, 5], dtype: 'bool' },
];

// ---------- deterministic inputs ----------

/** For depthwise and separable cases the last axis is the channel multiplier. */
function filterShape(c: ConvCase): [number, number, number, number] {
  return [c.filter[0], c.filter[1], c.inChannels, c.outChannels];
}

// ---------- computations (run once per backend) ----------

/** y, dx and every filter gradient of Σ (y ⊙ r) for a fixed random r, so dy is not uniform. */
function convGradients(c: ConvCase, seed: number): Results {
  return tf.tidy(() => {
    const xShape = [c.batch, c.height, c.width, c.inChannels];
    const x = tf.tensor4d(randomValues(size(xShape), seed), xShape as [number, number, number, number]);
    const fShape = filterShape(c);
    const f = tf.tensor4d(randomValues(size(fShape), seed + 1), fShape);
    const pointShape: [number, number, number, number] = [1, 1, c.inChannels * c.outChannels, 3];
    const pointwise = tf.tensor4d(randomValues(size(pointShape), seed + 2), pointShape);
    const forward = (xs: tf.Tensor4D, fs: tf.Tensor4D, ps: tf.Tensor4D): tf.Tensor4D => {
      switch (c.kind) {
        case 'conv2d':
          return tf.conv2d(xs, fs, c.strides, c.pad);
        case 'depthwise':
          return tf.depthwiseConv2d(xs, fs, c.strides, c.pad);
        case 'separable':
          return tf.separableConv2d(xs, fs, ps, c.strides, c.pad as 'same' | 'valid');
      }
    };
    const yShape = forward(x, f, pointwise).shape;
    const weight = tf.tensor(randomValues(size(yShape), seed + 3), yShape);
    const loss = (xs: tf.Tensor, fs: tf.Tensor, ps: tf.Tensor = pointwise): tf.Tensor =>
      tf.sum(tf.mul(forward(xs as tf.Tensor4D, fs as tf.Tensor4D, ps as tf.Tensor4D), weight));
    // only the separable conv reads the pointwise filter; tf.grads refuses unused inputs
    const [dx, df, dp] = c.kind === 'separable'
      ? tf.grads(loss)([x, f, pointwise])
      : tf.grads((xs: tf.Tensor, fs: tf.Tensor) => loss(xs, fs))([x, f]);
    const out: Results = {
      y: forward(x, f, pointwise).dataSync() as Float32Array,
      dx: dx!.dataSync() as Float32Array,
      dFilter: df!.dataSync() as Float32Array,
    };
    if (c.kind === 'separable') out.dPointwise = dp!.dataSync() as Float32Array;
    return out;
  });
}

function poolGradient(c: PoolCase, seed: number): Float32Array {
  return tf.tidy(() => {
    const raw = tf.tensor4d(randomValues(size(c.shape), seed), c.shape);
    const x = c.relu ? tf.relu(raw) : raw;
    const pool = (t: tf.Tensor4D): tf.Tensor4D =>
      c.op === 'max' ? tf.maxPool(t, c.filter, c.strides, c.pad) : tf.avgPool(t, c.filter, c.strides, c.pad);
    const y = pool(x);
    const weight = tf.tensor(randomValues(y.size, seed + 1), y.shape);
    return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(pool(t as tf.Tensor4D), weight)))(x).dataSync() as Float32Array;
  });
}

function tileValuesOn(c: TileCase, seed: number): number[] {
  return tf.tidy(() => {
    const raw = tf.tensor(randomValues(size(c.shape), seed).map((v) => Math.round(v * 50)), c.shape);
    const x = c.dtype === 'bool' ? tf.greater(raw, 0) : tf.cast(raw, c.dtype);
    return Array.from(tf.tile(x, c.reps).dataSync());
  });
}

/** Both Conv2D backprop kernels called directly on channels-first (NCHW) data, stride 2, same. */
function channelsFirstGradients(seed: number): Results {
  return tf.tidy(() => {
    const xShape: [number, number, number, number] = [2, 3, 7, 6];
    const fShape: [number, number, number, number] = [3, 2, 3, 4];
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NCHW' };
    const dyShape: [number, number, number, number] = [2, 4, 4, 3];
    const x = tf.tensor4d(randomValues(size(xShape), seed), xShape);
    const dy = tf.tensor4d(randomValues(size(dyShape), seed + 1), dyShape);
    const filter = tf.tensor4d(randomValues(size(fShape), seed + 2), fShape);
    const dFilter = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { ...attrs, filterShape: fShape }) as tf.Tensor;
    const dx = tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter }, { ...attrs, inputShape: xShape }) as tf.Tensor;
    return { dFilter: dFilter.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array };
  });
}

/** A max pool over windows that are entirely negative: the case stock wasm gets wrong. */
function negativeWindowsGradient(): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d([-4, -1, -3, -2, -5, -6, -7, -8], [1, 2, 4, 1]);
    return tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid')))(x).dataSync() as Float32Array;
  });
}

function spreadFilter(values: Float32Array, shape: [number, number, number, number], d: number): {
  values: Float32Array;
  shape: [number, number, number, number];
} {
  const [fh, fw, ci, co] = shape;
  const eh = (fh - 1) * d + 1;
  const ew = (fw - 1) * d + 1;
  const out = new Float32Array(eh * ew * ci * co);
  const inner = ci * co;
  for (let i = 0; i < fh; i++) {
    for (let j = 0; j < fw; j++) {
      out.set(values.subarray((i * fw + j) * inner, (i * fw + j + 1) * inner), (i * d * ew + j * d) * inner);
    }
  }
  return { values: out, shape: [eh, ew, ci, co] };
}

/** Gradient of an undilated, zero-spread filter read back at the dilated taps (`shape`: the dilated filter's). */
function pickDilatedTaps(values: Float32Array, shape: [number, number, number, number], d: number): Float32Array {
  const [fh, fw, ci, co] = shape;
  const ew = (fw - 1) * d + 1;
  const inner = ci * co;
  const out = new Float32Array(fh * fw * inner);
  for (let i = 0; i < fh; i++) {
    for (let j = 0; j < fw; j++) {
      out.set(values.subarray((i * d * ew + j * d) * inner, (i * d * ew + j * d + 1) * inner), (i * fw + j) * inner);
    }
  }
  return out;
}

function dilatedGradient(c: DilatedCase, seed: number, reference: boolean): Float32Array {
  return tf.tidy(() => {
    const [fh, fw] = c.filter;
    const multiplier = c.depthwise ? c.outChannels : 1;
    const fShape: [number, number, number, number] = c.depthwise
      ? [fh, fw, c.inChannels, multiplier]
      : [fh, fw, c.inChannels, c.outChannels];
    const xShape: [number, number, number, number] = [c.batch, c.size[0], c.size[1], c.inChannels];
    const info = tf.backend_util.computeConv2DInfo(xShape, fShape, 1, c.dilation, c.pad, undefined, c.depthwise);
    const dy = tf.tensor4d(randomValues(size(info.outShape), seed), info.outShape);
    const fValues = randomValues(size(fShape), seed + 1);
    const spread = spreadFilter(fValues, fShape, c.dilation);
    const x = tf.tensor4d(randomValues(size(xShape), seed + 2), xShape);
    const dilations = reference ? 1 : c.dilation;
    const common = { strides: 1, pad: c.pad, dilations, dataFormat: 'NHWC' };
    const isFilter = c.kernel.endsWith('Filter');
    let result: tf.Tensor;
    if (isFilter) {
      result = tf.engine().runKernel(c.kernel, { x, dy }, { ...common, filterShape: reference ? spread.shape : fShape }) as tf.Tensor;
    } else {
      const filter = reference ? tf.tensor4d(spread.values, spread.shape) : tf.tensor4d(fValues, fShape);
      result = tf.engine().runKernel(c.kernel, { dy, filter }, { ...common, inputShape: xShape }) as tf.Tensor;
    }
    const values = result.dataSync() as Float32Array;
    return isFilter && reference ? pickDilatedTaps(values, fShape, c.dilation) : values;
  });
}

/**
 * A small network with one layer of each class the kernels serve; gradients of the loss with
 * respect to every trainable weight, from the same initial weights on each backend.
 */
function buildNetwork(): tf.LayersModel {
  const L = tf.layers;
  const input = L.input({ shape: [8, 8, 3] });
  let h = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv' }).apply(input) as tf.SymbolicTensor;
  h = L.batchNormalization({ name: 'bn' }).apply(h) as tf.SymbolicTensor;
  h = L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', name: 'depthwise' }).apply(h) as tf.SymbolicTensor;
  h = L.separableConv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', name: 'separable' }).apply(h) as tf.SymbolicTensor;
  h = L.maxPooling2d({ poolSize: 2, strides: 1, name: 'maxpool' }).apply(h) as tf.SymbolicTensor;
  h = L.averagePooling2d({ poolSize: 2, strides: 1, name: 'avgpool' }).apply(h) as tf.SymbolicTensor;
  const flat = L.flatten({ name: 'flatten' }).apply(h) as tf.SymbolicTensor;
  const pooled = L.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
  let z = L.concatenate({ name: 'concat' }).apply([flat, pooled]) as tf.SymbolicTensor;
  z = L.dense({ units: 8, activation: 'relu', name: 'dense' }).apply(z) as tf.SymbolicTensor;
  // seeded: tfjs draws dropout masks in JS, so both backends drop the same units
  z = L.dropout({ rate: 0.25, seed: 7, name: 'dropout' }).apply(z) as tf.SymbolicTensor;
  const out = L.dense({ units: 3, name: 'out' }).apply(z) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setWeights(model.weights.map((w, k) => tf.tensor(randomValues(size(w.shape as number[]), 100 + k).map((v) => v * 0.5), w.shape as number[])));
  return model;
}

function networkGradients(): Results {
  const model = buildNetwork();
  const out = tf.tidy(() => {
    const x = tf.tensor4d(randomValues(4 * 8 * 8 * 3, 5), [4, 8, 8, 3]);
    const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      variables,
    );
    const results: Results = {};
    model.trainableWeights.forEach((w, k) => {
      results[w.originalName] = grads[variables[k]!.name]!.dataSync() as Float32Array;
    });
    return results;
  });
  model.dispose();
  return out;
}


// ---------- matmul, reductions, replaced gradients ----------

interface MatMulCase {
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

const MATMUL_CASES: MatMulCase[] = [
  { a: [5, 7], b: [7, 3], transposeA: false, transposeB: false },
  { a: [5, 7], b: [3, 7], transposeA: false, transposeB: true },
  { a: [7, 5], b: [7, 3], transposeA: true, transposeB: false },
  { a: [7, 5], b: [3, 7], transposeA: true, transposeB: true },
  { a: [4, 6, 5], b: [4, 6, 2], transposeA: true, transposeB: false },
  { a: [2, 3, 6, 5], b: [2, 3, 4, 5], transposeA: false, transposeB: true },
  // batched, sizes off the SIMD kernel's 4×8 blocks (tfjs's gradient refuses broadcast batches)
  { a: [3, 9, 13], b: [3, 13, 10], transposeA: false, transposeB: false },
  { a: [2, 2, 17, 6], b: [2, 2, 9, 17], transposeA: true, transposeB: true },
  { a: [1, 9], b: [9, 1], transposeA: false, transposeB: false },
  { a: [9, 1], b: [1, 9], transposeA: true, transposeB: true },
  { a: [64, 100], b: [100, 48], transposeA: false, transposeB: false },
  // tall operands take the split transpose (rows ≥ 1024, a multiple of 64)
  { a: [1024, 24], b: [1024, 40], transposeA: true, transposeB: false },
  { a: [16, 40], b: [2048, 40], transposeA: false, transposeB: true },
];

/** The product and both operand gradients of Σ (a·b ⊙ r), and the fused Dense forward with and without a bias. */
function matMulResults(c: MatMulCase, seed: number): Results {
  const results = matMulAndGradients(c.a, c.b, c.transposeA, c.transposeB, seed);
  return tf.tidy(() => {
    // a Dense layer's forward: the fused product with a bias per output column, and without
    const a = tf.tensor(randomValues(size(c.a), seed), c.a);
    const b = tf.tensor(randomValues(size(c.b), seed + 1), c.b);
    const columns = c.transposeB ? c.b[c.b.length - 2]! : c.b[c.b.length - 1]!;
    const bias = tf.tensor1d(randomValues(columns, seed + 3));
    const fused = (withBias: boolean) =>
      tf.fused.matMul({ a, b, transposeA: c.transposeA, transposeB: c.transposeB, bias: withBias ? bias : undefined }).dataSync() as Float32Array;
    return { ...results, fused: fused(true), fusedNoBias: fused(false) };
  });
}

interface ReduceCase {
  shape: number[];
  axes: number[];
  keepDims: boolean;
}

// leading, middle and trailing blocks, size-1 axes in between, two blocks (stock path), everything
const REDUCE_CASES: ReduceCase[] = [
  { shape: [6, 5, 4, 3], axes: [0, 1, 2], keepDims: false },
  { shape: [6, 5, 4, 3], axes: [0, 1, 2], keepDims: true },
  { shape: [6, 5, 4, 3], axes: [1, 2], keepDims: false },
  { shape: [6, 5, 4, 3], axes: [0], keepDims: true },
  { shape: [6, 5, 4, 3], axes: [3], keepDims: false },
  { shape: [6, 5, 4, 3], axes: [0, 3], keepDims: false },
  { shape: [6, 5, 4, 3], axes: [0, 1, 2, 3], keepDims: false },
  { shape: [1, 5, 1, 3], axes: [0, 1], keepDims: false },
  { shape: [4, 1, 7], axes: [1, 0], keepDims: true },
  { shape: [3, 1], axes: [1], keepDims: false },
  { shape: [300, 50], axes: [0], keepDims: false },
  { shape: [64, 10], axes: [-2], keepDims: false },
];

function reduceResults(c: ReduceCase, seed: number): Results {
  return tf.tidy(() => {
    const x = tf.tensor(randomValues(size(c.shape), seed), c.shape);
    const sum = tf.sum(x, c.axes, c.keepDims);
    const mean = tf.mean(x, c.axes, c.keepDims);
    const weight = tf.tensor(randomValues(sum.size, seed + 1), sum.shape);
    const through = (f: (t: tf.Tensor) => tf.Tensor) => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), weight)))(x).dataSync() as Float32Array;
    return {
      sum: sum.dataSync() as Float32Array,
      mean: mean.dataSync() as Float32Array,
      sumGrad: through((t) => tf.sum(t, c.axes, c.keepDims)),
      meanGrad: through((t) => tf.mean(t, c.axes, c.keepDims)),
      shape: Float32Array.from([...sum.shape, -1, ...mean.shape]),
    };
  });
}

/** Operand shapes for the element-wise kernels: every broadcast the SIMD kernel takes, and others. */
const BINARY_CASES: Array<[number[], number[]]> = [
  [[5, 4, 3, 6], [5, 4, 3, 6]],
  [[5, 4, 3, 6], [6]],
  [[6], [5, 4, 3, 6]],
  [[1, 1, 1, 6], [5, 4, 3, 6]],
  [[5, 4, 3, 1], [5, 4, 3, 6]],
  [[5, 4, 3, 6], [4, 3, 1]],
  [[], [5, 4, 3, 6]],
  [[5, 4, 3, 6], [1]],
  [[4, 3], [3]],
  [[7], [7]],
  [[3, 1], [1, 3]],
  [[5, 1, 3, 6], [5, 4, 3, 6]],
  [[2, 0, 3], [3]],
];
const BINARY_OPS = ['add', 'sub', 'mul', 'div'] as const;

function binaryResults(seed: number): Results {
  return tf.tidy(() => {
    const out: Results = {};
    BINARY_CASES.forEach(([sa, sb], i) => {
      const a = tf.tensor(randomValues(size(sa), seed + 2 * i), sa);
      // away from 0, so that a quotient is not a huge number that hides nothing
      const b = tf.tensor(randomValues(size(sb), seed + 2 * i + 1).map((v) => v + Math.sign(v) * 0.5), sb);
      for (const op of BINARY_OPS) {
        const y = tf[op](a, b);
        out[`[${sa}] ${op} [${sb}]`] = Float32Array.from([...y.shape, -1, ...(y.dataSync() as Float32Array)]);
      }
    });
    return out;
  });
}

interface TileGradCase {
  shape: number[];
  reps: number[];
}

const TILE_GRAD_CASES: TileGradCase[] = [
  { shape: [3], reps: [4] },
  { shape: [2, 3], reps: [3, 2] },
  { shape: [1, 1, 4], reps: [5, 3, 1] },
  { shape: [5, 3, 1], reps: [1, 1, 4] },
  { shape: [2, 1, 3, 2], reps: [2, 3, 1, 2] },
];

function tileGradient(c: TileGradCase, seed: number): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor(randomValues(size(c.shape), seed), c.shape);
    const outShape = c.shape.map((d, i) => d * c.reps[i]!);
    const weight = tf.tensor(randomValues(size(outShape), seed + 1), outShape);
    return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.tile(t, c.reps), weight)))(x).dataSync() as Float32Array;
  });
}

/** Clip and ReLU6 gradients on values that include both bounds exactly. */
function clipGradients(seed: number): Results {
  return tf.tidy(() => {
    const values = randomValues(200, seed).map((v) => v * 8);
    values.set([0, 6, -1, 1, 0.5, -0.5, 2.5, 2.5, 8, -8], 0);
    const x = tf.tensor1d(values);
    const weight = tf.tensor1d(randomValues(200, seed + 1));
    const through = (f: (t: tf.Tensor) => tf.Tensor) => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), weight)))(x).dataSync() as Float32Array;
    return {
      clip: through((t) => tf.clipByValue(t, -0.5, 2.5)),
      clipAtZero: through((t) => tf.clipByValue(t, 0, 6)),
      relu6: through((t) => tf.relu6(t)),
      relu: through((t) => tf.relu(t)),
      reluThenClip: through((t) => tf.clipByValue(tf.relu(t), 0, 6)),
    };
  });
}

interface BatchNormCase {
  x: number[];
  /** Shape of mean, variance, scale and offset. */
  param: number[];
}

// per-channel parameters, and full-shape ones as LayerNormalization passes them (the only two
// forms tfjs's own gradient supports)
const BATCH_NORM_CASES: BatchNormCase[] = [
  { x: [6, 5, 4, 3], param: [3] },
  { x: [7, 4], param: [4] },
  { x: [3, 5, 4], param: [3, 5, 4] },
  // per-channel parameters over SIMD-width channels plus a remainder: the SIMD forward kernel
  { x: [4, 3, 3, 10], param: [10] },
];

/** Gradients of Σ (batchNorm(x, mean, variance, offset, scale) ⊙ r) with respect to all five inputs. */
function batchNormGradients(c: BatchNormCase, seed: number): Results {
  return tf.tidy(() => {
    const x = tf.tensor(randomValues(size(c.x), seed).map((v) => 3 * v + 1), c.x);
    const param = (k: number, shift = 0): tf.Tensor => tf.tensor(randomValues(size(c.param), seed + k).map((v) => v + shift), c.param);
    const mean = param(1);
    const variance = tf.abs(param(2, 1.5));
    const offset = param(3);
    const scale = param(4, 1);
    const weight = tf.tensor(randomValues(size(c.x), seed + 5), c.x);
    // (no case without a scale: tfjs's own gradient then fails, saving the missing input)
    const grads = tf.grads((...t: tf.Tensor[]) => tf.sum(tf.mul(tf.batchNorm(t[0]!, t[1]!, t[2]!, t[3]!, t[4]!, 1e-3), weight)))([
      x, mean, variance, offset, scale,
    ]);
    const names = ['x', 'mean', 'variance', 'offset', 'scale'];
    const y = tf.batchNorm(x, mean, variance, offset, scale, 1e-3).dataSync() as Float32Array;
    const yNoParams = tf.batchNorm(x, mean, variance, undefined, undefined, 1e-3).dataSync() as Float32Array;
    return { ...Object.fromEntries(grads.map((g, i) => [names[i]!, g.dataSync() as Float32Array])), y, yNoParams };
  });
}

/**
 * A transformer-style block: Dense on 3-D input, attention products with transposes,
 * LayerNormalization (whose tiled scale exercises the Tile gradient), ReLU6, mean pooling.
 */
function attentionGradients(): Results {
  const L = tf.layers;
  const input = L.input({ shape: [6, 8] });
  const q = L.dense({ units: 8, name: 'q' }).apply(input) as tf.SymbolicTensor;
  const norm = L.layerNormalization({ name: 'norm' }).apply(q) as tf.SymbolicTensor;
  const act = L.reLU({ maxValue: 6, name: 'relu6' }).apply(norm) as tf.SymbolicTensor;
  const pooled = L.globalAveragePooling1d({ name: 'pool' }).apply(act) as tf.SymbolicTensor;
  const out = L.dense({ units: 3, name: 'out' }).apply(pooled) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setWeights(model.weights.map((w, k) => tf.tensor(randomValues(size(w.shape as number[]), 300 + k).map((v) => v * 2), w.shape as number[])));
  const results = tf.tidy(() => {
    const x = tf.tensor3d(randomValues(4 * 6 * 8, 8), [4, 6, 8]);
    const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 1], 'int32'), 3);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(() => {
      const h = model.apply(x, { training: true }) as tf.Tensor;
      // an attention-like product on top, through transposed matmuls
      const scores = tf.matMul(tf.reshape(h, [4, 3, 1]), tf.reshape(h, [4, 3, 1]), false, true);
      return tf.losses.softmaxCrossEntropy(labels, tf.add(h, tf.sum(scores, 2))) as tf.Scalar;
    }, variables);
    const r: Results = {};
    model.trainableWeights.forEach((w, k) => {
      r[w.originalName] = grads[variables[k]!.name]!.dataSync() as Float32Array;
    });
    return r;
  });
  model.dispose();
  return results;
}

// ---------- comparison ----------

// ---------- the two phases ----------

const CONV_CASES = convCases();
const DILATED_CASES = dilatedCases();
const POOL_CASES = poolCases();
interface Phase {
  conv: Results[];
  channelsFirst: Results;
  dilated: Float32Array[];
  pool: Float32Array[];
  tile: number[][];
  network: Results;
  matMul: Results[];
  reduce: Results[];
  tileGrad: Float32Array[];
  clip: Results;
  attention: Results;
  batchNorm: Results[];
  binary: Results;
}
const empty = (): Phase => ({
  conv: [], channelsFirst: {}, dilated: [], pool: [], tile: [], network: {},
  matMul: [], reduce: [], tileGrad: [], clip: {}, attention: {}, batchNorm: [], binary: {},
});
const computeExtras = (phase: Phase): void => {
  phase.matMul = MATMUL_CASES.map((c, i) => matMulResults(c, 40 * i));
  phase.reduce = REDUCE_CASES.map((c, i) => reduceResults(c, 60 * i));
  phase.tileGrad = TILE_GRAD_CASES.map((c, i) => tileGradient(c, 90 * i));
  phase.clip = clipGradients(17);
  phase.attention = attentionGradients();
  phase.batchNorm = BATCH_NORM_CASES.map((c, i) => batchNormGradients(c, 500 + 10 * i));
  phase.binary = binaryResults(700);
};
const cpu = empty();
const wasm = empty();
/** The conv cases again on wasm with the SIMD kernels switched off: the fallback path. */
const composed = empty();
let stockWasmLacked: string[] = [];
let stockMaxPoolGrad: Float32Array = new Float32Array();

before(async () => {
  assert.ok(await tf.setBackend('cpu'));
  cpu.conv = CONV_CASES.map((c, i) => convGradients(c, 1000 * i));
  cpu.channelsFirst = channelsFirstGradients(11);
  cpu.dilated = DILATED_CASES.map((c, i) => dilatedGradient(c, 50 * i, true));
  cpu.pool = POOL_CASES.map((c, i) => poolGradient(c, 70 * i));
  cpu.tile = TILE_CASES.map((c, i) => tileValuesOn(c, 30 * i));
  cpu.network = networkGradients();
  // before registerTrainingKernels: these references come from tfjs's own gradient formulas
  computeExtras(cpu);

  setWasmPaths(wasmDir + path.sep);
  assert.ok(await tf.setBackend('wasm'));
  stockWasmLacked = TRAINING_KERNEL_NAMES.filter((k) => tf.getKernel(k, 'wasm') === undefined);
  stockMaxPoolGrad = negativeWindowsGradient();
  registerTrainingKernels();
  wasm.conv = CONV_CASES.map((c, i) => convGradients(c, 1000 * i));
  wasm.channelsFirst = channelsFirstGradients(11);
  wasm.dilated = DILATED_CASES.map((c, i) => dilatedGradient(c, 50 * i, false));
  wasm.pool = POOL_CASES.map((c, i) => poolGradient(c, 70 * i));
  wasm.tile = TILE_CASES.map((c, i) => tileValuesOn(c, 30 * i));
  wasm.network = networkGradients();
  computeExtras(wasm);
  useNativeKernels(false);
  try {
    composed.conv = CONV_CASES.map((c, i) => convGradients(c, 1000 * i));
    composed.dilated = DILATED_CASES.map((c, i) => dilatedGradient(c, 50 * i, false));
    composed.network = networkGradients();
    composed.clip = clipGradients(17);
  } finally {
    useNativeKernels(true);
  }
});

test('the SIMD conv kernels are built and in use (npm run build compiles them), natively where the CPU allows', () => {
  const status = nativeKernelStatus();
  assert.ok(status.loaded, status.loaded ? '' : status.problem);
  // linux-x64 with AVX2 and FMA runs the addon unless LAYERWISE_NATIVE=0 (run this file both ways)
  const unsupported = addonUnsupported();
  if (unsupported === undefined) assert.ok('file' in status.addon, JSON.stringify(status.addon));
  else assert.deepEqual(status.addon, { problem: unsupported });
});

test('the native kernels are for linux-x64 CPUs with AVX2 and FMA, and LAYERWISE_NATIVE=0 switches them off', () => {
  const cpu = (flags: string) => (): string => `processor\t: 0\nflags\t\t: ${flags}\n`;
  assert.equal(addonUnsupported({}, 'linux', 'x64', cpu('sse4_2 avx avx2 fma bmi2')), undefined);
  assert.equal(addonUnsupported({ LAYERWISE_NATIVE: '0' }, 'linux', 'x64', cpu('avx2 fma')), 'native kernels switched off (LAYERWISE_NATIVE=0)');
  assert.equal(addonUnsupported({}, 'linux', 'x64', cpu('sse4_2 avx')), 'the CPU lacks avx2 and fma');
  assert.equal(addonUnsupported({}, 'linux', 'x64', cpu('avx2')), 'the CPU lacks fma');
  assert.match(addonUnsupported({}, 'darwin', 'arm64', cpu('avx2 fma')) ?? '', /darwin-arm64/);
  assert.match(addonUnsupported({}, 'linux', 'x64', () => { throw new Error('EACCES'); }) ?? '', /cpuinfo.*EACCES/);
});

test('stock wasm lacks the conv filter gradients this module exists for', () => {
  // if a tfjs upgrade adds them, compare ours with theirs before keeping ours
  assert.deepEqual(stockWasmLacked.sort(), [
    'Conv2DBackpropFilter',
    'DepthwiseConv2dNativeBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    // the engine's own one-pass clip gradient, no tfjs kernel
    'LayerwiseClipGradient',
  ]);
});

test('stock wasm MaxPoolGrad misroutes all-negative windows, ours does not', () => {
  // windows [-4,-1,-5,-6] and [-3,-2,-7,-8]: maxima -1 (index 1) and -2 (index 3)
  const expected = [0, 1, 0, 1, 0, 0, 0, 0];
  // if a tfjs upgrade fixes the stock kernel, compare its speed with ours before keeping ours
  assert.notDeepEqual(Array.from(stockMaxPoolGrad), expected);
  assert.deepEqual(Array.from(negativeWindowsGradient()), expected);
});

test('registerTrainingKernels is idempotent and installs every kernel on wasm', () => {
  const before = TRAINING_KERNEL_NAMES.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc);
  registerTrainingKernels();
  registerTrainingKernels();
  const after = TRAINING_KERNEL_NAMES.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc);
  assert.ok(before.every((f) => f !== undefined));
  assert.deepEqual(after, before);
});

test('conv2d, depthwise and separable gradients match cpu over strides, paddings, shapes', () => {
  assert.equal(tf.getBackend(), 'wasm');
  CONV_CASES.forEach((c, i) => {
    for (const [name, expected] of Object.entries(cpu.conv[i]!)) {
      assertClose(wasm.conv[i]![name]!, expected, `${c.name}: ${name}`);
    }
  });
});

test('with the SIMD kernels off, the composed conv gradients match cpu too', () => {
  CONV_CASES.forEach((c, i) => {
    for (const [name, expected] of Object.entries(cpu.conv[i]!)) {
      assertClose(composed.conv[i]![name]!, expected, `composed ${c.name}: ${name}`);
    }
  });
  DILATED_CASES.forEach((c, i) => assertClose(composed.dilated[i]!, cpu.dilated[i]!, `composed ${c.name}`));
  for (const name of Object.keys(cpu.network)) assertClose(composed.network[name]!, cpu.network[name]!, `composed ${name}`);
});

test('conv2d backprop kernels on NCHW data match cpu', () => {
  for (const [name, expected] of Object.entries(cpu.channelsFirst)) {
    assertClose(wasm.channelsFirst[name]!, expected, `NCHW ${name}`);
  }
});

test('dilated kernels match the undilated cpu kernel with a zero-spread filter', () => {
  DILATED_CASES.forEach((c, i) => assertClose(wasm.dilated[i]!, cpu.dilated[i]!, c.name));
});

test('max and average pool gradients match cpu, including tied and negative windows', () => {
  POOL_CASES.forEach((c, i) => assertClose(wasm.pool[i]!, cpu.pool[i]!, c.name));
});

test('tile matches cpu exactly for every rank, dtype and repeat pattern', () => {
  TILE_CASES.forEach((c, i) => {
    assert.deepEqual(wasm.tile[i], cpu.tile[i], `tile ${c.dtype} [${c.shape.join(', ')}] by [${c.reps.join(', ')}]`);
  });
  assert.ok(cpu.tile.some((v) => v.length > 50), 'the cases include a sizeable output');
});

test('a network of Conv2D, BatchNorm, Depthwise, Separable, pooling, Dense, Dropout layers: same weight gradients', () => {
  const names = Object.keys(cpu.network).sort();
  assert.deepEqual(Object.keys(wasm.network).sort(), names);
  assert.ok(names.length >= 12, `expected every trainable weight, got ${names.join(', ')}`);
  for (const name of names) assertClose(wasm.network[name]!, cpu.network[name]!, name);
});

test('BatchMatMul with every transpose combination, batched and 2-D, and its gradients match cpu', () => {
  MATMUL_CASES.forEach((c, i) => {
    for (const [name, expected] of Object.entries(cpu.matMul[i]!)) {
      assertClose(wasm.matMul[i]![name]!, expected, `matMul [${c.a}]${c.transposeA ? 'ᵀ' : ''}·[${c.b}]${c.transposeB ? 'ᵀ' : ''}: ${name}`);
    }
  });
});

test('Sum and Mean over leading, middle, trailing, split and size-1 axes match cpu', () => {
  REDUCE_CASES.forEach((c, i) => {
    const what = `[${c.shape}] over [${c.axes}]${c.keepDims ? ' keepDims' : ''}`;
    assert.deepEqual(Array.from(wasm.reduce[i]!.shape!), Array.from(cpu.reduce[i]!.shape!), `${what}: shapes`);
    assertClose(wasm.reduce[i]!.sum!, cpu.reduce[i]!.sum!, `${what}: sum`);
    assertClose(wasm.reduce[i]!.mean!, cpu.reduce[i]!.mean!, `${what}: mean`);
  });
});

test('Sum and Mean gradients (replaced) match tfjs\'s own', () => {
  REDUCE_CASES.forEach((c, i) => {
    const what = `[${c.shape}] over [${c.axes}]${c.keepDims ? ' keepDims' : ''}`;
    // dy spread over the reduced axes, divided by the count for Mean: no sums, so exactly equal
    assert.deepEqual(wasm.reduce[i]!.sumGrad, cpu.reduce[i]!.sumGrad, `${what}: sum gradient`);
    assert.deepEqual(wasm.reduce[i]!.meanGrad, cpu.reduce[i]!.meanGrad, `${what}: mean gradient`);
  });
});

test('Add, Sub, Multiply and RealDiv equal cpu bit for bit for every broadcast', () => {
  const names = Object.keys(cpu.binary);
  assert.equal(names.length, BINARY_CASES.length * BINARY_OPS.length);
  for (const name of names) assert.deepEqual(wasm.binary[name], cpu.binary[name], name);
});

test('a same-dtype Cast shares the buffer safely; other casts still convert', () => {
  const x = tf.tensor1d([1.5, -2.25, 3]);
  const same = tf.cast(x, 'float32');
  same.dispose();
  assert.deepEqual(Array.from(x.dataSync()), [1.5, -2.25, 3]);
  const asInt = tf.cast(x, 'int32');
  assert.equal(asInt.dtype, 'int32');
  assert.deepEqual(Array.from(asInt.dataSync()), [1, -2, 3]);
  tf.dispose([x, asInt]);
});

test('the replaced Tile gradient matches tfjs\'s own', () => {
  TILE_GRAD_CASES.forEach((c, i) => assertClose(wasm.tileGrad[i]!, cpu.tileGrad[i]!, `tile grad [${c.shape}] × [${c.reps}]`));
});

test('the replaced ClipByValue, Relu6 and Relu gradients match tfjs\'s own, at the bounds too', () => {
  for (const [name, expected] of Object.entries(cpu.clip)) {
    // exactly equal (a mask times dy, no rounding), except that a masked negative dy gives −0;
    // on wasm in the SIMD pass, and in its JS fallback with the SIMD kernels off
    for (const [path, actual] of [['SIMD', wasm.clip[name]!], ['JS', composed.clip[name]!]] as const) {
      assert.equal(actual.length, expected.length);
      expected.forEach((e, i) => assert.ok(actual[i] === e, `${path} ${name}[${i}]: ${actual[i]} vs ${e}`));
    }
  }
  // x = 0 and x = 6 sit at the bounds: clip passes the gradient there, relu6 at 0 does not
  assert.ok(cpu.clip.clipAtZero![0] !== 0 && cpu.clip.clipAtZero![1] !== 0);
  assert.ok(cpu.clip.relu6![0] === 0 && cpu.clip.relu6![1] !== 0);
  assert.ok(cpu.clip.relu![0] === 0 && cpu.clip.relu![1] !== 0 && cpu.clip.relu![2] === 0);
});

test('FusedBatchNorm and its replaced gradient match tfjs\'s own for every input and parameter shape', () => {
  BATCH_NORM_CASES.forEach((c, i) => {
    const names = Object.keys(cpu.batchNorm[i]!);
    assert.equal(names.length, 7);
    for (const name of names) assertClose(wasm.batchNorm[i]![name]!, cpu.batchNorm[i]![name]!, `batchNorm [${c.x}] / [${c.param}]: ${name}`);
  });
});

test('a Dense / LayerNormalization / ReLU6 / attention-product block: same weight gradients', () => {
  const names = Object.keys(cpu.attention).sort();
  assert.deepEqual(Object.keys(wasm.attention).sort(), names);
  assert.ok(names.length >= 6, names.join(', '));
  for (const name of names) assertClose(wasm.attention[name]!, cpu.attention[name]!, name);
});

test('the comparison every kernel test uses (numeric.ts) rejects a result off by more than the tolerance', () => {
  const expected = Float32Array.from([1, -2, 0.5, 0]);
  const wrong = Float32Array.from([1, -2, 0.5 + 2 * RTOL * 2.5, 0]);
  assert.throws(() => assertClose(wrong, expected, 'deliberately wrong'), /element 2/);
});

test('kernels leave no tensors or backend buffers behind', () => {
  const backend = tf.backend();
  const c = CONV_CASES.find((k) => k.kind === 'separable' && k.strides === 2)!;
  convGradients(c, 1);
  const tensors = tf.memory().numTensors;
  const buffers = backend.numDataIds();
  for (let i = 0; i < 3; i++) convGradients(c, 1);
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(backend.numDataIds(), buffers);
});

test('training steps on wasm keep tensor and buffer counts flat', () => {
  const model = buildNetwork();
  const optimizer = tf.train.adam(1e-3);
  const x = tf.tensor4d(randomValues(4 * 8 * 8 * 3, 9), [4, 8, 8, 3]);
  const labels = tf.oneHot(tf.tensor1d([1, 0, 2, 1], 'int32'), 3);
  const step = (): void => {
    tf.tidy(() => {
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    });
  };
  assertNoLeaks(step);
  tf.dispose([x, labels]);
  optimizer.dispose();
  model.dispose();
});
