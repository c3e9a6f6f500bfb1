/**
 * The grouped optimizer's Adam/AdamW and SGD updates as one kernel each (native/optimizer.c) on
 * wasm when the engine's SIMD module is loaded: p, g and the state read once, p' and the new
 * state written once, instead of up to ten full-size tensors per parameter per step (on the
 * bench's MLP the optimizer's Multiply/Sqrt/Add/RealDiv took ~1 of its ~3.9 ms). Every element
 * goes through the same float32 operations in the same order as the tf-op route in
 * ../optimizer.ts, so the two agree bit for bit (test/engine/optimizer-step.test.ts) and the
 * PyTorch parity of that route carries over.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, Tensor, TensorInfo } from '@tensorflow/tfjs';
import { offset, type BackendWasm } from './heap.ts';
import { ownKernelRuns, registerOwnKernels, requireNativeFunctions } from './native.ts';

export const ADAM_STEP = 'LayerwiseAdamStep';
export const SGD_STEP = 'LayerwiseSgdStep';

/** The step's scalars, as optimizer.ts computes them (float64 here; the kernel rounds them to float32 as tf.scalar would). */
export interface AdamStepScalars {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  eps: number;
  negStepSize: number;
  biasCorrection2Sqrt: number;
  /** AdamW's decoupled decay: p · keep first; undefined for none. */
  keep?: number;
  /** Adam's coupled decay: g + p · l2 first; undefined for none. */
  l2?: number;
}

/** SGD's scalars (dampening 0, as the plan's SGD has). */
export interface SgdStepScalars {
  lr: number;
  /** Coupled weight decay: g + p · l2 first; undefined for none. */
  l2?: number;
  /** Momentum; undefined for none (then no buffer is read or written). */
  momentum?: number;
  nesterov: boolean;
}

interface OptimizerExports {
  sgd_step(p: number, g: number, buf: number, pOut: number, bufOut: number, n: number, negLr: number, l2: number,
    l2Factor: number, useMomentum: number, momentum: number, nesterov: number): void;
  adam_step(p: number, g: number, m: number, v: number, pOut: number, mOut: number, vOut: number, n: number,
    beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, eps: number, negStepSize: number,
    biasCorrection2Sqrt: number, decay: number, keep: number, l2: number, l2Factor: number): void;
}

const FUNCTIONS = ['adam_step', 'sgd_step'] as const satisfies ReadonlyArray<keyof OptimizerExports>;

/** Inputs p, g and (after the first step) m, v; outputs [p', m', v']. */
const adamStepKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const k = requireNativeFunctions<OptimizerExports>(wasm, FUNCTIONS, ADAM_STEP);
  const { p, g, m, v } = inputs as Record<string, TensorInfo | undefined>;
  if (p === undefined || g === undefined) throw new Error(`${ADAM_STEP}: missing p or g`);
  const s = attrs as unknown as AdamStepScalars;
  const [pOut, mOut, vOut] = [0, 1, 2].map(() => wasm.makeOutput(p.shape.slice(), 'float32')) as [TensorInfo, TensorInfo, TensorInfo];
  const at = (t: TensorInfo | undefined): number => (t === undefined ? 0 : offset(wasm, t));
  k.adam_step(at(p), at(g), at(m), at(v), at(pOut), at(mOut), at(vOut), tf.util.sizeFromShape(p.shape),
    s.beta1, s.oneMinusBeta1, s.beta2, s.oneMinusBeta2, s.eps, s.negStepSize, s.biasCorrection2Sqrt,
    s.keep === undefined ? 0 : 1, s.keep ?? 1, s.l2 === undefined ? 0 : 1, s.l2 ?? 0);
  return [pOut, mOut, vOut];
};

/** Inputs p, g and (with momentum, after the first step) buf; outputs [p', buf'] (buf' unused without momentum). */
const sgdStepKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const k = requireNativeFunctions<OptimizerExports>(wasm, FUNCTIONS, SGD_STEP);
  const { p, g, buf } = inputs as Record<string, TensorInfo | undefined>;
  if (p === undefined || g === undefined) throw new Error(`${SGD_STEP}: missing p or g`);
  const s = attrs as unknown as SgdStepScalars;
  const withMomentum = s.momentum !== undefined;
  const pOut = wasm.makeOutput(p.shape.slice(), 'float32');
  const bufOut = wasm.makeOutput(withMomentum ? p.shape.slice() : [0], 'float32');
  const at = (t: TensorInfo | undefined): number => (t === undefined ? 0 : offset(wasm, t));
  k.sgd_step(at(p), at(g), at(buf), at(pOut), withMomentum ? at(bufOut) : 0, tf.util.sizeFromShape(p.shape), -s.lr,
    s.l2 === undefined ? 0 : 1, s.l2 ?? 0, withMomentum ? 1 : 0, s.momentum ?? 0, s.nesterov ? 1 : 0);
  return [pOut, bufOut];
};

const KERNELS: readonly KernelConfig[] = [
  { kernelName: ADAM_STEP, backendName: 'wasm', kernelFunc: adamStepKernel },
  { kernelName: SGD_STEP, backendName: 'wasm', kernelFunc: sgdStepKernel },
];

let enabled = true;

/** Switches the fused steps off (the tf-op route runs) and on: for the tests that compare both. */
export function useFusedOptimizerSteps(on: boolean): void {
  enabled = on;
}

/** Registers the kernels on wasm; safe to call any number of times. */
export function registerOptimizerStepKernels(): void {
  registerOwnKernels(KERNELS);
}

function applies(kernel: string, tensors: Array<Tensor | undefined>): boolean {
  if (!enabled || !ownKernelRuns<OptimizerExports>(kernel, FUNCTIONS)) return false;
  return tensors.every((t) => t === undefined || t.dtype === 'float32');
}

/**
 * One Adam/AdamW update of p by g with the previous moments (undefined on the first step):
 * [p', m', v'], or undefined where the kernel does not apply (another backend, the module not
 * built, not float32); the caller then runs the tf ops.
 */
export function fusedAdamStep(
  p: Tensor, g: Tensor, m: Tensor | undefined, v: Tensor | undefined, scalars: AdamStepScalars,
): [Tensor, Tensor, Tensor] | undefined {
  if (!applies(ADAM_STEP, [p, g, m, v])) return undefined;
  const inputs: tf.NamedTensorMap = { p, g };
  if (m !== undefined) inputs['m'] = m;
  if (v !== undefined) inputs['v'] = v;
  const out = tf.engine().runKernel(ADAM_STEP, inputs, { ...scalars }) as Tensor[];
  return [out[0]!, out[1]!, out[2]!];
}

/**
 * One SGD update of p by g with the previous momentum buffer (undefined on the first step):
 * [p', buf'] (buf' undefined without momentum), or undefined where the kernel does not apply.
 */
export function fusedSgdStep(
  p: Tensor, g: Tensor, buf: Tensor | undefined, scalars: SgdStepScalars,
): [Tensor, Tensor | undefined] | undefined {
  if (!applies(SGD_STEP, [p, g, buf])) return undefined;
  const inputs: tf.NamedTensorMap = { p, g };
  if (buf !== undefined && scalars.momentum !== undefined) inputs['buf'] = buf;
  const [pOut, bufOut] = tf.engine().runKernel(SGD_STEP, inputs, { ...scalars }) as Tensor[];
  if (scalars.momentum !== undefined) return [pOut!, bufOut!];
  bufOut!.dispose();
  return [pOut!, undefined];
}
