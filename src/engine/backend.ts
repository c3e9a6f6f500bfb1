/**
 * Backend choice: tfjs-node where it is installed, else wasm when every kernel that training the
 * model needs is registered there, else the pure-JS cpu backend. It must run before any tensor
 * exists: a tensor created on one backend arrives as garbage after a switch (notes).
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { LayerwiseError, assertNever } from '../core/errors.ts';
import { installFastLayers } from './fast-layers.ts';
import {
  REPLACED_GRADIENTS,
  TRAINING_KERNEL_NAMES,
  nativeKernelNote,
  registerTrainingKernels,
  startKernelThreadsAndWait,
} from './kernels/index.ts';

import type { BackendPreference } from '../protocol/worker.ts';

export type { BackendPreference };

export interface BackendChoice {
  /** tfjs backend name: 'tensorflow' | 'wasm' | 'cpu'. */
  name: string;
  reason: string;
  tried: Array<{ backend: string; problem: string }>;
}

// Kernels used by the loss, the metrics and the optimizer's update, whatever the layers are.
const LOSS_AND_OPTIMIZER = [
  'Add', 'AddN', 'ArgMax', 'Cast', 'Equal', 'Exp', 'Identity', 'Log', 'Max', 'Maximum', 'Mean',
  'Multiply', 'Neg', 'RealDiv', 'Reshape', 'Softmax', 'Sqrt', 'Square', 'SquaredDifference',
  'Sub', 'Sum', 'ZerosLike',
  // the engine's Sum and Mean gradients spread dy with Tile (src/engine/kernels/gradients.ts)
  'Tile',
];

// Forward and backward kernels of every activation a layer's `activation` may name.
const ACTIVATIONS = [
  'Abs', 'ClipByValue', 'Elu', 'EluGrad', 'Erf', 'Greater', 'GreaterEqual', 'LeakyRelu',
  'LessEqual', 'LogicalAnd', 'Minimum', 'Pow', 'Relu', 'Relu6', 'Select', 'Selu', 'Sigmoid', 'Softplus',
  'Step', 'Tanh',
];

const CONV2D = ['Conv2D', 'FusedConv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput'];
const DEPTHWISE = [
  'DepthwiseConv2dNative', 'FusedDepthwiseConv2D',
  'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput',
];
const RECURRENT = [
  'BatchMatMul', '_FusedMatMul', 'Concat', 'Pack', 'Unpack', 'SplitV', 'Tile', 'Transpose',
];

/**
 * Kernels that a forward + backward pass through a layer of each class runs, measured with
 * `tf.profile` on the cpu backend (test/engine/backend.test.ts re-measures them).
 */
const TRAINING_KERNELS: Record<string, readonly string[]> = {
  InputLayer: [],
  Dense: ['BatchMatMul', '_FusedMatMul', 'Transpose'],
  Conv1D: CONV2D,
  Conv2D: CONV2D,
  Conv2DTranspose: CONV2D,
  Conv3D: ['Conv3D', 'Conv3DBackpropFilterV2', 'Conv3DBackpropInputV2'],
  DepthwiseConv2D: DEPTHWISE,
  SeparableConv2D: [...DEPTHWISE, ...CONV2D],
  BatchNormalization: ['FusedBatchNorm', 'Rsqrt', 'Tile'],
  LayerNormalization: ['FusedBatchNorm', 'Rsqrt', 'Slice', 'Tile'],
  Embedding: ['GatherV2', 'Transpose', 'UnsortedSegmentSum'],
  MaxPooling1D: ['MaxPool', 'MaxPoolGrad'],
  MaxPooling2D: ['MaxPool', 'MaxPoolGrad'],
  MaxPooling3D: ['MaxPool3D', 'MaxPool3DGrad'],
  AveragePooling1D: ['AvgPool', 'AvgPoolGrad'],
  AveragePooling2D: ['AvgPool', 'AvgPoolGrad'],
  AveragePooling3D: ['AvgPool3D', 'AvgPool3DGrad'],
  GlobalAveragePooling1D: [],
  GlobalAveragePooling2D: [],
  GlobalMaxPooling1D: [],
  GlobalMaxPooling2D: [],
  Flatten: [],
  Reshape: [],
  Permute: ['Transpose'],
  RepeatVector: ['Tile', 'Slice'],
  Dropout: ['Floor'],
  SpatialDropout1D: ['Floor'],
  GaussianNoise: [],
  Activation: [],
  ReLU: [],
  LeakyReLU: [],
  ELU: [],
  Softmax: [],
  ThresholdedReLU: [],
  PReLU: ['Prelu'],
  ZeroPadding2D: ['PadV2', 'Slice'],
  Cropping2D: ['Slice', 'PadV2'],
  UpSampling2D: [
    'ResizeNearestNeighbor', 'ResizeNearestNeighborGrad', 'ResizeBilinear', 'ResizeBilinearGrad',
  ],
  Concatenate: ['Concat', 'Slice'],
  Add: [],
  Subtract: [],
  Multiply: [],
  Average: [],
  Maximum: [],
  Minimum: [],
  SimpleRNN: RECURRENT,
  LSTM: RECURRENT,
  GRU: RECURRENT,
};

/** Layer classes whose training kernels this module knows. */
export function knownLayerClasses(): string[] {
  return Object.keys(TRAINING_KERNELS);
}

/**
 * Every kernel that training through layers of these classes runs (forward, backward, loss and
 * optimizer), sorted. Unknown classes add nothing: pass them to `unknownLayerClasses` to say so.
 */
export function kernelsForTraining(classNames: string[]): string[] {
  const out = new Set<string>([...LOSS_AND_OPTIMIZER, ...ACTIVATIONS]);
  for (const c of classNames) for (const k of TRAINING_KERNELS[c] ?? []) out.add(k);
  return [...out].sort();
}

export function unknownLayerClasses(classNames: string[]): string[] {
  return [...new Set(classNames.filter((c) => !(c in TRAINING_KERNELS)))].sort();
}

/** Where the wasm binaries are: next to the bundle (the build copies them), else the package. */
export function defaultWasmDir(): string {
  const besideBundle = path.join(__dirname, 'wasm');
  if (existsSync(path.join(besideBundle, 'tfjs-backend-wasm.wasm'))) return besideBundle;
  const pkg = localRequire().resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return path.join(path.dirname(pkg), 'dist');
}

function localRequire(): NodeJS.Require {
  return createRequire(__filename);
}

/** Kernels missing on a backend, in sorted order. */
export function missingKernels(classNames: string[], backend: string): string[] {
  return kernelsForTraining(classNames).filter((k) => tf.getKernel(k, backend) === undefined);
}

let wasmPathsSet = false;

const BACKEND_FIELD = 'backend';

/**
 * Picks, initialises and activates the backend. `needs.trainableClassNames` are the classes of
 * the layers gradients flow through (every layer above the lowest trainable one, which includes
 * pooling and activation layers that have no weights).
 */
export async function selectBackend(
  pref: BackendPreference,
  needs: { trainableClassNames: string[] },
  opts: { wasmDir?: string } = {},
): Promise<BackendChoice> {
  silenceTfjsNodeBanner();
  // before any model or ModeControl exists, on every path that trains (see fast-layers.ts)
  installFastLayers();
  const tried: BackendChoice['tried'] = [];
  const classes = needs.trainableClassNames;

  const tryNode = async (): Promise<string | undefined> => {
    try {
      // optional dependency: bundles leave it external and it is absent on most machines
      localRequire()('@tensorflow/tfjs-node');
    } catch (e) {
      return `@tensorflow/tfjs-node is not installed or failed to load (${firstLine(e)})`;
    }
    return (await activate('tensorflow')) ? undefined : 'the tensorflow backend failed to initialise';
  };

  const tryWasm = async (): Promise<string | undefined> => {
    registerTrainingKernels();
    const missing = missingKernels(classes, 'wasm');
    if (missing.length > 0) {
      return `kernel${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ` +
        `not registered for wasm (needed to train ${classesNeeding(classes, missing)})`;
    }
    const dir = opts.wasmDir ?? defaultWasmDir();
    if (!existsSync(path.join(dir, 'tfjs-backend-wasm.wasm'))) {
      return `no tfjs-backend-wasm.wasm in ${dir}`;
    }
    if (!wasmPathsSet) {
      setWasmPaths(dir + path.sep);
      wasmPathsSet = true;
    }
    if (!(await activate('wasm'))) return 'the wasm backend failed to initialise';
    await startKernelThreadsAndWait();
    return undefined;
  };

  const unknown = unknownLayerClasses(classes);
  const unverified = unknown.length > 0 ? `; kernels not verified for ${unknown.join(', ')}` : '';

  switch (pref) {
    case 'cpu':
      await activateOrThrow('cpu', pref);
      return { name: 'cpu', reason: 'requested (--backend cpu)', tried };
    case 'tfjs-node': {
      const problem = await tryNode();
      if (problem !== undefined) {
        throw new LayerwiseError(`backend "tfjs-node" requested but ${problem}; ` +
          'install @tensorflow/tfjs-node or use "auto"', { field: BACKEND_FIELD });
      }
      return { name: 'tensorflow', reason: 'requested (--backend tfjs-node)', tried };
    }
    case 'wasm': {
      const problem = await tryWasm();
      if (problem !== undefined) {
        throw new LayerwiseError(`backend "wasm" requested but ${problem}; use "auto" or "cpu"`,
          { field: BACKEND_FIELD });
      }
      return { name: 'wasm', reason: `requested (--backend wasm); ${nativeKernelNote()}${unverified}`, tried };
    }
    case 'auto': {
      const nodeProblem = await tryNode();
      if (nodeProblem === undefined) {
        return { name: 'tensorflow', reason: '@tensorflow/tfjs-node is installed', tried };
      }
      tried.push({ backend: 'tensorflow', problem: nodeProblem });
      const wasmProblem = await tryWasm();
      if (wasmProblem === undefined) {
        return {
          name: 'wasm',
          // cpu is 18–170× slower than wasm with these kernels (bench/speed.ts), so it is only the last resort
          reason: `tfjs-node is not available; wasm runs every kernel training this model needs, with the engine's ` +
            `${TRAINING_KERNEL_NAMES.length} training kernels and ${REPLACED_GRADIENTS.length} faster gradients; ${nativeKernelNote()}${unverified}`,
          tried,
        };
      }
      tried.push({ backend: 'wasm', problem: wasmProblem });
      await activateOrThrow('cpu', pref);
      return { name: 'cpu', reason: `falling back to cpu: ${wasmProblem}`, tried };
    }
    default:
      return assertNever(pref, 'backend preference');
  }
}

function classesNeeding(classes: string[], missing: string[]): string {
  const gone = new Set(missing);
  const who = [...new Set(classes)].filter((c) => (TRAINING_KERNELS[c] ?? []).some((k) => gone.has(k)));
  return who.length > 0 ? who.join(', ') : 'the loss or optimizer';
}

async function activate(name: string): Promise<boolean> {
  const engine = tf.engine();
  // engine.backendName is null until a backend was chosen; reading tf.getBackend() would pick one
  const current = (engine as { backendName: string | null }).backendName;
  if (current !== name && current !== null && engine.state.numTensors > 0) {
    throw new Error(`selectBackend("${name}") called while ${engine.state.numTensors} tensors ` +
      `live on "${current}": choose the backend before creating any tensor`);
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch {
    ok = false;
  }
  if (!ok) return false;
  await tf.ready();
  return tf.getBackend() === name;
}

async function activateOrThrow(name: string, pref: BackendPreference): Promise<void> {
  if (!(await activate(name))) {
    throw new LayerwiseError(`backend "${name}" failed to initialise (preference "${pref}")`,
      { field: BACKEND_FIELD });
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0] ?? msg;
}

let bannerSilenced = false;

/**
 * tfjs's cpu backend prints a multi-line "install tfjs-node" banner on first use in Node. The
 * engine already says which backend it chose and why (CLI output, report, extension log), so
 * that one message is dropped; every other warning passes through.
 */
function silenceTfjsNodeBanner(): void {
  if (bannerSilenced) return;
  bannerSilenced = true;
  const warn = console.warn.bind(console);
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('install our node backend')) return;
    warn(...args);
  };
}
