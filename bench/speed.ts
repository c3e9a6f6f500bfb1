/**
 * Training speed of the engine against PyTorch on the same cores, in the same run: the issue's
 * four models and the bundled example, each trained with the engine's real step (`trainStep`
 * with `GroupedOptimizer` AdamW) and, taking turns with it, by bench/torch_speed.py under
 * Debian's `python3-torch` — once with the default (reference) BLAS and once with OpenBLAS
 * swapped in through LD_LIBRARY_PATH when it is installed. Prints steps/s (median of the rounds,
 * with the spread), the ratio against the faster PyTorch, and GFLOP/s against the machine's peak.
 *
 * Run: npx tsx bench/speed.ts [--models mlp,cnn,separable,transformer,example,encoder,mobilenet96,mobilenet224,mobilenet224-top] [--rounds 7]
 *      [--seconds 0.7] [--backend auto|wasm|cpu] [--no-torch] [--no-native] [--ab-native] [--no-own-kernels] [--no-threads] [--no-take-back] [--no-fast-layers] [--no-bn-relu6] [--profile [--profile-shapes]]
 *
 * --no-native: the engine's SIMD wasm kernels instead of its native AVX2 ones (linux-x64; native-addon.ts), to compare.
 * --ab-native: each round also runs the engine's steps with the wasm kernels, right after the native ones, and
 *              prints both (the machine's other work hits both alike).
 * --no-own-kernels: the composed conv gradients instead of the engine's own SIMD kernels, to compare.
 * --no-threads: the engine's kernels on one thread (no kernel threads), to compare.
 * --no-take-back: the calling thread always waits for a kernel thread, never runs a part the thread has not started.
 * --no-bn-relu6: ReLU6 after a training BatchNorm as its own op and gradient pass, not fused into the BatchNorm's (fast-layers.ts), to compare.
 * --no-fast-layers: tfjs-layers' own BatchNormalization, LayerNormalization and Conv2D calls (src/engine/fast-layers.ts), to compare.
 *
 * Models (same layers, sizes and batch in both frameworks; AdamW lr 1e-4; cross-entropy from logits):
 *   mlp          784-256-256-10, ReLU; batch 64
 *   cnn          28×28×1: 2× [conv3×3 (32, then 64 channels, same) + BN + ReLU + maxpool 2], dense 10; batch 64
 *   separable    64×64×3: conv3×3/2 (32) + BN + ReLU6, depthwise 3×3 + BN + ReLU6, pointwise 64 + BN + ReLU6,
 *                depthwise 3×3/2 + BN + ReLU6, pointwise 128 + BN + ReLU6, global average pool, dense 10; batch 32
 *   transformer  seq 32, dim 64: q/k/v Dense, 4-head scaled dot-product attention, Dense, add + LayerNorm,
 *                FFN 64-256-64 (ReLU), add + LayerNorm, mean over the sequence, dense 10; batch 32.
 *                tfjs-layers has no attention layer: the attention is a weightless custom layer over
 *                matMul/softmax between ordinary Dense layers, as a converted Keras model would need.
 *   example      the bundled examples/fashion model with its new head (conv 8/16, BN, dense 32, 4 classes),
 *                its real data, batch 16; PyTorch trains the same architecture on random data.
 * Real architectures (not in the default set; ask for them with --models):
 *   encoder      a BERT-small-like encoder on embedded tokens: 4 post-LN layers, hidden 256, 4 heads, FFN 1024
 *                (GELU), seq 128, mean pool, dense 10; batch 16.
 *   mobilenet96, mobilenet224
 *                the Keras MobileNetV2 (ImageNet) of examples/mobilenet-fashion, its input set to 96 or 224 px,
 *                plus a dense 10 on its pooled features; every layer trains; batch 16. PyTorch: torchvision's
 *                mobilenet_v2 (Debian python3-torchvision), the same architecture.
 *   mobilenet224-top
 *                the same at 224 px with only the top blocks training (Keras block_15, block_16, Conv_1 and the
 *                head; torchvision features[16:] and the classifier); nothing below gets a gradient, and the
 *                frozen trunk's BatchNorm runs in inference mode on both sides (what the engine's trainer does
 *                with frozen layers, Keras semantics; torch: features[:16].eval()). Both run the trunk's
 *                forward every step: the trainer's frozen-prefix cache (prefix-cache.ts), which computes it
 *                once per stage, is off here so that the step is the same work as PyTorch's.
 */
import * as tf from '@tensorflow/tfjs';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import type { ParamAudit } from '../src/core/groups.types.ts';
import { selectBackend, type BackendPreference } from '../src/engine/backend.ts';
import { useNativeKernels } from '../src/engine/kernels/native.ts';
import { sharedCopies } from '../src/engine/kernels/split-call.ts';
import { useNativeAddon } from '../src/engine/kernels/native-addon.ts';
import { useBatchNormRelu6Fusion, useFastLayers } from '../src/engine/fast-layers.ts';
import { kernelThreadStatus, kernelThreads, useKernelThreads } from '../src/engine/kernels/threads.ts';
import type { Dataset } from '../src/engine/data.ts';
import { lossSpecFor, ModeControl, type LossSpec } from '../src/engine/forward.ts';
import { GroupedOptimizer } from '../src/engine/optimizer.ts';
import { loadModel } from '../src/engine/model-io.ts';
import { prepareRun, trainingParams, type BoundParam } from '../src/engine/session.ts';
import { optimizerSettings, trainStep } from '../src/engine/trainer.ts';

/** 2 Zen 3 cores × 2 FMA pipes × 8 float32 lanes × 2 flops × 2.445 GHz. */
const PEAK_GFLOPS = 156;
const OPENBLAS_DIR = '/usr/lib/x86_64-linux-gnu/openblas-pthread';
const TORCH_PYTHON = '/usr/bin/python3';

// ---------- options ----------

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(`--${name}`);
const option = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const MODEL_NAMES = ['mlp', 'cnn', 'separable', 'transformer', 'example', 'encoder', 'mobilenet96', 'mobilenet224', 'mobilenet224-top'] as const;
type ModelName = (typeof MODEL_NAMES)[number];
/** The probes run by default; the real architectures take minutes and are asked for by name. */
const DEFAULT_MODELS: readonly ModelName[] = ['mlp', 'cnn', 'separable', 'transformer', 'example'];
const wanted = option('models', DEFAULT_MODELS.join(',')).split(',') as ModelName[];
for (const m of wanted) if (!MODEL_NAMES.includes(m)) throw new Error(`unknown model "${m}" (${MODEL_NAMES.join(', ')})`);
const ROUNDS = Number(option('rounds', '7'));
const ROUND_SECONDS = Number(option('seconds', '0.7'));
const BACKEND = option('backend', 'auto') as BackendPreference;

// ---------- the attention layer tfjs-layers lacks ----------

/** Scaled dot-product attention over [q, k, v] of shape [batch, seq, dim], split into heads. */
class MultiHeadDotProductAttention extends tf.layers.Layer {
  static readonly className = 'MultiHeadDotProductAttention';
  private readonly heads: number;

  constructor(args: { heads: number; name?: string }) {
    super({ name: args.name });
    this.heads = args.heads;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (inputShape as tf.Shape[])[0]!;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [q, k, v] = inputs as tf.Tensor3D[];
      const [batch, seq, dim] = q!.shape;
      const depth = dim / this.heads;
      const split = (t: tf.Tensor3D): tf.Tensor4D => tf.transpose(tf.reshape(t, [batch, seq, this.heads, depth]), [0, 2, 1, 3]);
      const scores = tf.mul(tf.matMul(split(q!), split(k!), false, true), 1 / Math.sqrt(depth));
      const mixed = tf.matMul(tf.softmax(scores), split(v!));
      return tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [batch, seq, dim]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads };
  }
}
tf.serialization.registerClass(MultiHeadDotProductAttention);

// ---------- models ----------

interface BenchModel {
  model: tf.LayersModel;
  data: Dataset;
  batch: number;
  /** Multiply-adds × 2 of one forward pass over one batch (conv, dense, attention matmuls). */
  forwardFlops: number;
  /** Flops of one training step, when not 3 × forward (the backward pass skips layers that do not train). */
  trainFlops?: number;
  note: string;
  /** The parameters the engine trains (default: every trainable weight). */
  params?: BoundParam[];
  /** Layers whose BatchNorm runs in training mode (default: all); the others in inference mode, as the trainer runs frozen ones. */
  trainingLayers?: ReadonlySet<string>;
  makeOptimizer?: () => GroupedOptimizer;
  dispose?: () => void;
}

const L = tf.layers;

function randomDataset(sampleShape: number[], classes: number, n: number, seed: number): Dataset {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  let s = seed >>> 0;
  const next = (): number => {
    // xorshift: data content does not matter for speed, only that it is not all zeros
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const x = Float32Array.from({ length: n * size }, () => next() * 2 - 1);
  const y = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) y[i * classes + Math.floor(next() * classes)] = 1;
  return { x, sampleShape, y, targetSize: classes, n, source: 'random' };
}

function conv(filters: number, kernelSize: number, strides = 1): tf.layers.Layer {
  return L.conv2d({ filters, kernelSize, strides, padding: 'same', useBias: false });
}

function bnRelu6(h: tf.SymbolicTensor): tf.SymbolicTensor {
  return L.reLU({ maxValue: 6 }).apply(L.batchNormalization().apply(h)) as tf.SymbolicTensor;
}

function build(name: 'mlp' | 'cnn' | 'separable' | 'transformer' | 'encoder'): BenchModel {
  switch (name) {
    case 'mlp': {
      const m = tf.sequential({ layers: [
        L.dense({ inputShape: [784], units: 256, activation: 'relu' }),
        L.dense({ units: 256, activation: 'relu' }),
        L.dense({ units: 10 }),
      ] });
      const batch = 64;
      return { model: m, data: randomDataset([784], 10, 4 * batch, 1), batch, forwardFlops: 2 * batch * (784 * 256 + 256 * 256 + 256 * 10), note: '' };
    }
    case 'cnn': {
      const m = tf.sequential();
      m.add(L.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, padding: 'same' }));
      m.add(L.batchNormalization());
      m.add(L.reLU());
      m.add(L.maxPooling2d({ poolSize: 2 }));
      m.add(L.conv2d({ filters: 64, kernelSize: 3, padding: 'same' }));
      m.add(L.batchNormalization());
      m.add(L.reLU());
      m.add(L.maxPooling2d({ poolSize: 2 }));
      m.add(L.flatten());
      m.add(L.dense({ units: 10 }));
      const batch = 64;
      const flops = 2 * batch * (28 * 28 * 9 * 1 * 32 + 14 * 14 * 9 * 32 * 64 + 7 * 7 * 64 * 10);
      return { model: m, data: randomDataset([28, 28, 1], 10, 4 * batch, 2), batch, forwardFlops: flops, note: '' };
    }
    case 'separable': {
      const input = L.input({ shape: [64, 64, 3] });
      let h = bnRelu6(conv(32, 3, 2).apply(input) as tf.SymbolicTensor);
      h = bnRelu6(L.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false }).apply(h) as tf.SymbolicTensor);
      h = bnRelu6(conv(64, 1).apply(h) as tf.SymbolicTensor);
      h = bnRelu6(L.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(h) as tf.SymbolicTensor);
      h = bnRelu6(conv(128, 1).apply(h) as tf.SymbolicTensor);
      h = L.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
      const out = L.dense({ units: 10 }).apply(h) as tf.SymbolicTensor;
      const batch = 32;
      const perSample = 32 * 32 * 9 * 3 * 32 + 32 * 32 * 9 * 32 + 32 * 32 * 32 * 64 + 16 * 16 * 9 * 64 + 16 * 16 * 64 * 128 + 128 * 10;
      return { model: tf.model({ inputs: input, outputs: out }), data: randomDataset([64, 64, 3], 10, 4 * batch, 3), batch, forwardFlops: 2 * batch * perSample, note: '' };
    }
    case 'transformer': {
      const seq = 32;
      const dim = 64;
      const ffn = 256;
      const input = L.input({ shape: [seq, dim] });
      const dense = (units: number, activation?: 'relu'): tf.layers.Layer => L.dense({ units, activation });
      const q = dense(dim).apply(input) as tf.SymbolicTensor;
      const k = dense(dim).apply(input) as tf.SymbolicTensor;
      const v = dense(dim).apply(input) as tf.SymbolicTensor;
      const attended = new MultiHeadDotProductAttention({ heads: 4 }).apply([q, k, v]) as tf.SymbolicTensor;
      const projected = dense(dim).apply(attended) as tf.SymbolicTensor;
      let h = L.layerNormalization().apply(L.add().apply([input, projected])) as tf.SymbolicTensor;
      const f = dense(dim).apply(dense(ffn, 'relu').apply(h)) as tf.SymbolicTensor;
      h = L.layerNormalization().apply(L.add().apply([h, f])) as tf.SymbolicTensor;
      const pooled = L.globalAveragePooling1d().apply(h) as tf.SymbolicTensor;
      const out = dense(10).apply(pooled) as tf.SymbolicTensor;
      const batch = 32;
      const perSample = seq * (4 * dim * dim + 2 * dim * ffn) + 2 * seq * seq * dim + dim * 10;
      return { model: tf.model({ inputs: input, outputs: out }), data: randomDataset([seq, dim], 10, 4 * batch, 4), batch, forwardFlops: 2 * batch * perSample, note: '' };
    }
    case 'encoder':
      return buildEncoder();
  }
}

/** A BERT-small-like encoder: 4 post-LN layers of the transformer probe at hidden 256, FFN 1024 with GELU, seq 128. */
function buildEncoder(): BenchModel {
  const seq = 128;
  const dim = 256;
  const ffn = 1024;
  const layers = 4;
  const input = L.input({ shape: [seq, dim] });
  let h: tf.SymbolicTensor = input;
  for (let i = 0; i < layers; i++) {
    const dense = (units: number, activation?: 'gelu'): tf.layers.Layer => L.dense({ units, activation });
    const q = dense(dim).apply(h) as tf.SymbolicTensor;
    const k = dense(dim).apply(h) as tf.SymbolicTensor;
    const v = dense(dim).apply(h) as tf.SymbolicTensor;
    const attended = new MultiHeadDotProductAttention({ heads: 4 }).apply([q, k, v]) as tf.SymbolicTensor;
    h = L.layerNormalization().apply(L.add().apply([h, dense(dim).apply(attended) as tf.SymbolicTensor])) as tf.SymbolicTensor;
    const f = dense(dim).apply(dense(ffn, 'gelu').apply(h)) as tf.SymbolicTensor;
    h = L.layerNormalization().apply(L.add().apply([h, f])) as tf.SymbolicTensor;
  }
  const out = L.dense({ units: 10 }).apply(L.globalAveragePooling1d().apply(h)) as tf.SymbolicTensor;
  const batch = 16;
  const perSample = layers * (seq * (4 * dim * dim + 2 * dim * ffn) + 2 * seq * seq * dim) + dim * 10;
  return { model: tf.model({ inputs: input, outputs: out }), data: randomDataset([seq, dim], 10, 4 * batch, 5), batch, forwardFlops: 2 * batch * perSample, note: '' };
}

const MOBILENET = resolve('examples/mobilenet-fashion/model/model.json');
/** Keras MobileNetV2 layers that train in mobilenet224-top (torchvision: features[16:] and the classifier). */
const MOBILENET_TOP = /^(block_1[56]_|Conv_1|out_relu|features$|bench_head$)/;

/** Multiply-adds of one sample's forward pass through the conv and dense layers, from their output shapes. */
function macsPerSample(model: tf.LayersModel, only?: (layer: string) => boolean): number {
  let macs = 0;
  for (const layer of model.layers) {
    if (only !== undefined && !only(layer.name)) continue;
    const out = layer.outputShape as number[];
    const kernel = layer.getWeights()[0]?.shape;
    if (kernel === undefined) continue;
    const cls = layer.getClassName();
    if (cls === 'Conv2D' || cls === 'DepthwiseConv2D') macs += out[1]! * out[2]! * kernel.reduce((a, b) => a * b, 1);
    else if (cls === 'Dense') macs += kernel[0]! * kernel[1]!;
  }
  return macs;
}

type MobilenetName = 'mobilenet96' | 'mobilenet224' | 'mobilenet224-top';

/** The example's converted MobileNetV2 at another input size (fully convolutional up to its pooling) with a dense 10 head. */
async function buildMobilenet(name: MobilenetName): Promise<BenchModel> {
  if (!existsSync(MOBILENET)) throw new Error(`${MOBILENET} is missing: it is made by scripts/make-mobilenet-example.ts`);
  const size = name === 'mobilenet96' ? 96 : 224;
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-bench-mobilenet-'));
  cpSync(resolve(MOBILENET, '..'), dir, { recursive: true });
  const json = JSON.parse(readFileSync(MOBILENET, 'utf8')) as {
    modelTopology: { model_config: { config: { layers: Array<{ class_name: string; config: { batch_input_shape?: Array<number | null> } }> } } };
  };
  for (const layer of json.modelTopology.model_config.config.layers) {
    if (layer.class_name === 'InputLayer') layer.config.batch_input_shape = [null, size, size, 3];
  }
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  const trunk = await loadModel(join(dir, 'model.json'));
  // the saved topology marks most layers `trainable: false` (Keras's transfer-learning habit); here every one trains
  for (const layer of trunk.layers) layer.trainable = true;
  const out = L.dense({ units: 10, name: 'bench_head' }).apply(trunk.outputs[0]!) as tf.SymbolicTensor;
  const model = tf.model({ inputs: trunk.inputs, outputs: out });
  const batch = 16;
  const all = trainableParams(model);
  const top = name === 'mobilenet224-top';
  const params = top ? all.filter((p) => MOBILENET_TOP.test(p.layerName)) : all;
  const forwardFlops = 2 * batch * macsPerSample(model);
  return {
    model,
    data: randomDataset([size, size, 3], 10, 2 * batch, 6),
    batch,
    forwardFlops,
    // the layers below the top blocks run forward only
    trainFlops: top ? forwardFlops + 2 * 2 * batch * macsPerSample(model, (l) => MOBILENET_TOP.test(l)) : undefined,
    note: `${model.layers.length} layers, ${params.length} of ${all.length} weights training`,
    params,
    trainingLayers: top ? new Set(params.map((p) => p.layerName)) : undefined,
  };
}

async function buildExample(): Promise<BenchModel> {
  const run = await prepareRun({ planFile: resolve('examples/fashion/layerwise.json'), backend: BACKEND });
  const batch = run.plan.training?.batchSize ?? 16;
  const classes = run.data.train.targetSize;
  const perSample = 28 * 28 * 9 * 1 * 8 + 14 * 14 * 9 * 8 * 16 + 7 * 7 * 16 * 32 + 32 * classes;
  return {
    model: run.model,
    data: run.data.train,
    batch,
    forwardFlops: 2 * batch * perSample,
    note: `${run.data.train.n} real images`,
    params: trainingParams(run.params),
    makeOptimizer: () => new GroupedOptimizer(optimizerSettings(run)),
    dispose: () => run.model.dispose(),
  };
}

// ---------- the engine's step ----------

function auditFor(v: tf.LayerVariable, layer: string): ParamAudit {
  const rule = { source: 'default' as const, detail: 'bench' };
  const decay = v.shape.length > 1 ? 0.01 : 0;
  return {
    name: v.name, layer, shape: v.shape as number[], size: v.shape.reduce<number>((a, b) => a * (b ?? 1), 1),
    trainable: true, group: 'all', lrMult: 1, lrMultRule: rule, effectiveLr: 1e-4,
    weightDecay: decay, weightDecayRule: rule, frozen: false, frozenRule: rule,
  };
}

function trainableParams(model: tf.LayersModel): BoundParam[] {
  return model.layers.flatMap((layer) =>
    layer.trainableWeights.map((w) => ({ audit: auditFor(w, layer.name), layerName: layer.name, variable: w.read() as tf.Variable })),
  );
}

interface Stepper {
  /** Runs `steps` optimizer steps, returns seconds. */
  run(steps: number): number;
  /**
   * CPU ms per step of each run (user + system, every thread of this process): less moved by
   * other work on the machine than wall time, so the figure to compare A/B runs with under load.
   */
  cpuMs: number[];
  dispose(): void;
}

function engineStepper(m: BenchModel, params: BoundParam[], optimizer: GroupedOptimizer): Stepper {
  const lossSpec: LossSpec = lossSpecFor(m.model, 'classification');
  const modes = m.trainingLayers === undefined ? undefined : new ModeControl(m.model);
  if (m.trainingLayers !== undefined) modes?.trainOnly(m.trainingLayers);
  const batches = Math.max(1, Math.floor(m.data.n / m.batch));
  let i = 0;
  const cpuMs: number[] = [];
  const one = (): void => {
    const start = (i++ % batches) * m.batch;
    const indices = Array.from({ length: m.batch }, (_, k) => start + k);
    const r = trainStep({ model: m.model, task: 'classification' }, lossSpec, optimizer, params, m.data, indices, () => 1e-4, false);
    if (!Number.isFinite(r.loss)) throw new Error(`non-finite loss ${r.loss}`);
  };
  return {
    run(steps) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (let s = 0; s < steps; s++) one();
      const c = process.cpuUsage(c0);
      cpuMs.push((c.user + c.system) / 1000 / steps);
      return (performance.now() - t0) / 1000;
    },
    cpuMs,
    dispose() {
      modes?.restore();
      optimizer.dispose();
    },
  };
}

// ---------- PyTorch, in child processes that take turns with the engine ----------

interface TorchInfo {
  torch: string;
  blas: string;
  threads: number;
}

class TorchProcess {
  readonly label: string;
  info: TorchInfo | undefined;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  private readonly queued: string[] = [];
  private exited: Error | undefined;

  constructor(label: string, env: NodeJS.ProcessEnv) {
    this.label = label;
    this.child = spawn(TORCH_PYTHON, [resolve('bench/torch_speed.py')], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => process.stderr.write(`[torch ${label}] ${d.toString()}`));
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (line) => {
      const waiter = this.pending.shift();
      if (waiter) waiter.resolve(line);
      else this.queued.push(line);
    });
    this.child.on('exit', (code) => {
      this.exited = new Error(`torch (${label}) exited with ${code}`);
      for (const w of this.pending.splice(0)) w.reject(this.exited);
    });
  }

  private next(): Promise<string> {
    const line = this.queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  async ready(): Promise<TorchInfo> {
    this.info = JSON.parse(await this.next()) as TorchInfo;
    return this.info;
  }

  async run(model: ModelName, steps: number): Promise<number> {
    this.child.stdin.write(`${model} ${steps}\n`);
    const r = JSON.parse(await this.next()) as { seconds: number };
    return r.seconds;
  }

  close(): void {
    this.child.stdin.end('quit\n');
  }
}

async function startTorch(): Promise<TorchProcess[]> {
  if (flag('no-torch') || !existsSync(TORCH_PYTHON)) return [];
  const base = { ...process.env };
  delete base['LD_LIBRARY_PATH'];
  const procs = [new TorchProcess('default BLAS', base)];
  if (existsSync(`${OPENBLAS_DIR}/libblas.so.3`)) procs.push(new TorchProcess('OpenBLAS', { ...base, LD_LIBRARY_PATH: OPENBLAS_DIR }));
  const alive: TorchProcess[] = [];
  for (const p of procs) {
    try {
      await p.ready();
      alive.push(p);
    } catch (e) {
      console.error(`PyTorch (${p.label}) did not start: ${(e as Error).message}`);
    }
  }
  return alive;
}

// ---------- kernel profile (--profile) ----------

/**
 * Wraps every kernel of the backend to add up time spent in top-level kernels, by name. `wrap`
 * again after anything re-registers kernels (prepareRun does, through selectBackend).
 */
function makeProfiler(backend: string): { wrap: () => void; take: () => Map<string, { ms: number; cpuMs: number }> } {
  let depth = 0;
  let totals = new Map<string, { ms: number; cpuMs: number }>();
  const wrappers = new WeakSet<tf.KernelFunc>();
  const timed = (name: string, inner: tf.KernelFunc): tf.KernelFunc => (args) => {
    depth++;
    const t0 = performance.now();
    const c0 = depth === 1 ? process.cpuUsage() : undefined;
    try {
      return inner(args);
    } finally {
      depth--;
      // inclusive time of top-level kernels only: a composed kernel's inner kernels count once
      if (depth === 0) {
        const key = flag('profile-shapes')
          ? `${name} ${Object.values(args.inputs).map((t) => `[${t?.shape.join('×')}]`).join(' ')} ${JSON.stringify(args.attrs ?? {}).slice(0, 60)}`
          : name;
        const c = process.cpuUsage(c0);
        const t = totals.get(key) ?? { ms: 0, cpuMs: 0 };
        totals.set(key, { ms: t.ms + performance.now() - t0, cpuMs: t.cpuMs + (c.user + c.system) / 1000 });
      }
    }
  };
  const wrap = (): void => {
    for (const config of tf.getKernelsForBackend(backend)) {
      if (wrappers.has(config.kernelFunc)) continue;
      const kernelFunc = timed(config.kernelName, config.kernelFunc);
      wrappers.add(kernelFunc);
      tf.unregisterKernel(config.kernelName, backend);
      tf.registerKernel({ ...config, kernelFunc });
    }
  };
  return {
    wrap,
    take() {
      const t = totals;
      totals = new Map();
      return t;
    },
  };
}

// ---------- main ----------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

interface Row {
  model: ModelName;
  engine: number[];
  /** --ab-native: the engine with its wasm kernels, in the same rounds. */
  wasm: number[];
  torch: Map<string, number[]>;
  trainFlops: number;
}

function fmtRate(xs: number[]): string {
  if (xs.length === 0) return '—';
  const m = median(xs);
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return `${m.toFixed(m < 10 ? 2 : 1)} (${lo.toFixed(lo < 10 ? 2 : 1)}–${hi.toFixed(hi < 10 ? 2 : 1)})`;
}

async function main(): Promise<void> {
  const classes = ['Dense', 'Conv2D', 'BatchNormalization', 'ReLU', 'MaxPooling2D', 'Flatten', 'DepthwiseConv2D',
    'GlobalAveragePooling2D', 'LayerNormalization', 'Add', 'GlobalAveragePooling1D', 'ZeroPadding2D'];
  const backend = await selectBackend(BACKEND, { trainableClassNames: classes });
  if (flag('no-own-kernels')) useNativeKernels(false);
  if (flag('no-native')) useNativeAddon(false);
  const abNative = flag('ab-native') && !flag('no-native');
  if (flag('no-threads')) useKernelThreads(false);
  if (flag('no-take-back')) useKernelThreads(true, { takeBack: false });
  if (flag('no-fast-layers')) useFastLayers(false);
  if (flag('no-bn-relu6')) useBatchNormRelu6Fusion(false);
  if (!flag('no-threads')) console.log(`kernel threads ready: ${kernelThreads()?.ready() ?? 0} (${kernelThreadStatus().note})`);
  const torch = await startTorch();
  const profiler = flag('profile') ? makeProfiler(backend.name) : undefined;
  console.log(`engine: tfjs ${tf.version.tfjs}, backend ${backend.name} — ${backend.reason}`);
  if ((tf.backend() as { getThreadsCount?: () => number }).getThreadsCount) {
    console.log(`  wasm threads: ${(tf.backend() as unknown as { getThreadsCount: () => number }).getThreadsCount()}`);
  }
  for (const p of torch) console.log(`PyTorch ${p.info?.torch} (${p.label}): ${p.info?.blas}, ${p.info?.threads} threads`);
  if (torch.length === 0) console.log('PyTorch: not run (--no-torch, or no /usr/bin/python3)');
  console.log(`rounds: ${ROUNDS}, ~${ROUND_SECONDS} s of engine steps each, frameworks taking turns; steps/s as median (min–max)\n`);

  const rows: Row[] = [];
  for (const name of wanted) {
    const m = name === 'example' ? await buildExample()
      : name === 'mobilenet96' || name === 'mobilenet224' || name === 'mobilenet224-top' ? await buildMobilenet(name)
      : build(name);
    const params = m.params ?? trainableParams(m.model);
    const optimizer = m.makeOptimizer?.() ?? new GroupedOptimizer({ type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false });
    profiler?.wrap();
    const engine = engineStepper(m, params, optimizer);
    engine.run(2);
    if (abNative) {
      useNativeAddon(false);
      engine.run(2);
      useNativeAddon(true);
    }
    const probe = engine.run(3) / 3;
    const steps = Math.max(2, Math.round(ROUND_SECONDS / probe));
    profiler?.take();
    const copiesBefore = { ...sharedCopies };
    const row: Row = { model: name, engine: [], wasm: [], torch: new Map(), trainFlops: m.trainFlops ?? 3 * m.forwardFlops };
    for (const p of torch) {
      await p.run(name, 3); // warm-up: first steps allocate and pick algorithms
      row.torch.set(p.label, []);
    }
    const torchSteps = new Map<string, number>();
    /** CPU ms per step of each round (all threads): under load, less moved by other work than steps/s. */
    const cpu = { engine: [] as number[], wasm: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      row.engine.push(steps / engine.run(steps));
      cpu.engine.push(engine.cpuMs.at(-1)!);
      if (abNative) {
        useNativeAddon(false);
        row.wasm.push(steps / engine.run(steps));
        cpu.wasm.push(engine.cpuMs.at(-1)!);
        useNativeAddon(true);
      }
      for (const p of torch) {
        let n = torchSteps.get(p.label);
        if (n === undefined) {
          const t = await p.run(name, 3);
          n = Math.max(3, Math.round(ROUND_SECONDS / (t / 3)));
          torchSteps.set(p.label, n);
        }
        row.torch.get(p.label)!.push(n / (await p.run(name, n)));
      }
    }
    rows.push(row);
    const torchText = [...row.torch].map(([label, xs]) => `torch ${label} ${fmtRate(xs)}`).join(', ');
    const taken = kernelThreads()?.takenBack;
    console.log(`${name}: engine ${fmtRate(row.engine)} steps/s (CPU ${median(cpu.engine).toFixed(1)} ms/step` +
      `${taken === undefined ? '' : `; ${taken} thread calls taken back so far`})${torchText ? `, ${torchText}` : ''}${m.note ? ` [${m.note}]` : ''}`);
    if (abNative) {
      const gflops = (xs: number[]): string => ((median(xs) * row.trainFlops) / 1e9).toFixed(1);
      console.log(`  A/B: native ${fmtRate(row.engine)} (${gflops(row.engine)} GFLOP/s, CPU ${median(cpu.engine).toFixed(1)} ms/step), ` +
        `wasm ${fmtRate(row.wasm)} (${gflops(row.wasm)} GFLOP/s, CPU ${median(cpu.wasm).toFixed(1)} ms/step) steps/s → ` +
        `native/wasm ${(median(row.engine) / median(row.wasm)).toFixed(2)}× (CPU time ${(median(cpu.wasm) / median(cpu.engine)).toFixed(2)}×)`);
    }
    if (profiler) {
      const totals = profiler.take();
      const stepMs = 1000 / median(row.engine);
      const n = ROUNDS * steps;
      // sorted by CPU time: under load wall time mostly measures who else got the cores
      const perStep = [...totals].map(([k, t]) => [k, t.ms / n, t.cpuMs / n] as const).sort((a, b) => b[2] - a[2]);
      const inKernels = perStep.reduce((a, [, ms]) => a + ms, 0);
      const cpuInKernels = perStep.reduce((a, [, , cpu]) => a + cpu, 0);
      console.log(`  profile: ${stepMs.toFixed(2)} ms/step (${median(cpu.engine).toFixed(2)} ms CPU), ` +
        `${inKernels.toFixed(2)} ms in kernels (${cpuInKernels.toFixed(2)} ms CPU); per kernel: wall ms, CPU ms (all threads)`);
      const copies = { copied: sharedCopies.copied - copiesBefore.copied, reused: sharedCopies.reused - copiesBefore.reused };
      console.log(`  inputs copied to the kernel threads: ${(copies.copied / n / 1e6).toFixed(1)} M floats/step, ` +
        `${(copies.reused / n / 1e6).toFixed(1)} M found there already`);
      for (const [k, ms, cpu] of perStep.slice(0, flag('profile-shapes') ? 30 : 14)) {
        console.log(`    ${k.padEnd(36)} ${ms.toFixed(3).padStart(9)} ${cpu.toFixed(3).padStart(9)}`);
      }
    }
    engine.dispose();
    if (m.dispose) m.dispose();
    else m.model.dispose();
  }
  for (const p of torch) p.close();

  console.log(`\nGFLOP/s: 3 × forward multiply-adds × 2 per step; machine peak ${PEAK_GFLOPS} GFLOP/s (2 cores AVX2 FMA).`);
  const labels = torch.map((p) => p.label);
  const best = (xs: number[]): number => (xs.length > 0 ? Math.max(...xs) : NaN);
  const header = ['model', 'engine steps/s', ...labels.map((l) => `torch ${l}`), 'ratio (medians)', 'ratio (best rounds)', 'engine GFLOP/s', 'torch GFLOP/s'];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) {
    const torchOf = (pick: (xs: number[]) => number): { rate: number; label: string } => {
      const rates = labels.map((l) => pick(row.torch.get(l) ?? []));
      const rate = rates.length > 0 ? Math.max(...rates) : NaN;
      return { rate, label: labels[rates.indexOf(rate)] ?? '' };
    };
    const medTorch = torchOf(median);
    const bestTorch = torchOf(best);
    const gf = (rate: number): string => {
      const g = (rate * row.trainFlops) / 1e9;
      return Number.isFinite(g) ? `${g.toFixed(1)} (${((100 * g) / PEAK_GFLOPS).toFixed(0)}%)` : '—';
    };
    const ratio = (e: number, t: { rate: number; label: string }): string =>
      Number.isFinite(t.rate) ? `${(e / t.rate).toFixed(2)} (${t.label})` : '—';
    const cells = [
      row.model,
      fmtRate(row.engine),
      ...labels.map((l) => fmtRate(row.torch.get(l) ?? [])),
      ratio(median(row.engine), medTorch),
      ratio(best(row.engine), bestTorch),
      gf(median(row.engine)),
      gf(medTorch.rate),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
