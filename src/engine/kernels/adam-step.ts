/**
 * The grouped optimizer's Adam/AdamW update as one kernel (native/optimizer.c) on wasm when the
 * engine's SIMD module is loaded: p, g and the two moments read once, p', m', v' written once,
 * instead of ten full-size tensors per parameter per step (on the bench's MLP the optimizer's
 * Multiply/Sqrt/Add/RealDiv took ~1 of its ~3.9 ms). Every element goes through the same
 * float32 operations in the same order as the tf-op route in ../optimizer.ts, so the two agree
 * bit for bit (test/engine/adam-step.test.ts) and the PyTorch parity of that route carries over.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, Tensor, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from './heap.ts';
import { nativeModule, offset } from './native.ts';

export const ADAM_STEP = 'LayerwiseAdamStep';

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

interface AdamStepExports {
  adam_step(p: number, g: number, m: number, v: number, pOut: number, mOut: number, vOut: number, n: number,
    beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, eps: number, negStepSize: number,
    biasCorrection2Sqrt: number, decay: number, keep: number, l2: number, l2Factor: number): void;
}

function exportsFor(backend: BackendWasm): AdamStepExports | undefined {
  const k = nativeModule<Partial<AdamStepExports>>(backend);
  // a kernels.wasm built before optimizer.c existed has the module but not this function
  return typeof k?.adam_step === 'function' ? (k as AdamStepExports) : undefined;
}

/** Inputs p, g and (after the first step) m, v; outputs [p', m', v']. */
const adamStepKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const k = exportsFor(wasm);
  if (k === undefined) throw new Error(`${ADAM_STEP}: the engine's wasm kernels are not loaded`);
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

const KERNEL: KernelConfig = { kernelName: ADAM_STEP, backendName: 'wasm', kernelFunc: adamStepKernel };

let enabled = true;

/** Switches the fused step off (the tf-op route runs) and on: for the tests that compare both. */
export function useFusedAdamStep(on: boolean): void {
  enabled = on;
}

/** Registers the kernel on wasm; safe to call any number of times. */
export function registerAdamStepKernel(): void {
  if (tf.getKernel(ADAM_STEP, 'wasm') === undefined) tf.registerKernel(KERNEL);
}

/**
 * One Adam/AdamW update of p by g with the previous moments (undefined on the first step):
 * [p', m', v'], or undefined where the kernel does not apply (another backend, the module not
 * built, not float32); the caller then runs the tf ops.
 */
export function fusedAdamStep(
  p: Tensor, g: Tensor, m: Tensor | undefined, v: Tensor | undefined, scalars: AdamStepScalars,
): [Tensor, Tensor, Tensor] | undefined {
  if (!enabled || tf.getBackend() !== 'wasm' || tf.getKernel(ADAM_STEP, 'wasm') === undefined) return undefined;
  if (exportsFor(tf.backend() as BackendWasm) === undefined) return undefined;
  if ([p, g, m, v].some((t) => t !== undefined && t.dtype !== 'float32')) return undefined;
  const inputs: tf.NamedTensorMap = { p, g };
  if (m !== undefined) inputs['m'] = m;
  if (v !== undefined) inputs['v'] = v;
  const out = tf.engine().runKernel(ADAM_STEP, inputs, { ...scalars }) as Tensor[];
  return [out[0]!, out[1]!, out[2]!];
}
