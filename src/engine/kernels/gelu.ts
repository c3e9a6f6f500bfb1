/**
 * GELU (tfjs-layers' 'gelu' activation, x·Φ(x) in its erf form) as one kernel forward and one
 * back (native/gelu.c) on wasm when the engine's SIMD module is loaded. tfjs-layers composes it
 * from five ops, and the tape differentiates each of them: about fifteen full-size kernels per
 * Dense layer and step, Erf and Exp among them (bench/speed.ts --models encoder --profile).
 * `gelu` is what the activation patch (../fast-layers.ts) calls; it answers undefined where the
 * kernels do not apply, and the activation then runs tfjs's own ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, KernelConfig, KernelFunc, Tensor } from '@tensorflow/tfjs';
import { requiredInput, offset, type BackendWasm } from './heap.ts';
import { ownKernelRuns, registerOwnKernels, requireNativeFunctions } from './native.ts';

export const GELU = 'LayerwiseGelu';
export const GELU_GRAD = 'LayerwiseGeluGrad';

/** The C functions this file adds to the kernels module (gelu.c). */
interface GeluExports {
  gelu(x: number, y: number, n: number): void;
  gelu_grad(x: number, dy: number, dx: number, n: number): void;
}

const FUNCTIONS = ['gelu', 'gelu_grad'] as const satisfies ReadonlyArray<keyof GeluExports>;

const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const geluKernel: KernelFunc = ({ inputs, backend }) => {
  const wasm = backend as BackendWasm;
  const x = requiredInput(inputs, 'x', GELU);
  const k = requireNativeFunctions<GeluExports>(wasm, FUNCTIONS, GELU);
  const y = wasm.makeOutput(x.shape.slice(), 'float32');
  k.gelu(offset(wasm, x), offset(wasm, y), count(x.shape));
  return y;
};

const geluGradKernel: KernelFunc = ({ inputs, backend }) => {
  const wasm = backend as BackendWasm;
  const x = requiredInput(inputs, 'x', GELU_GRAD);
  const dy = requiredInput(inputs, 'dy', GELU_GRAD);
  const k = requireNativeFunctions<GeluExports>(wasm, FUNCTIONS, GELU_GRAD);
  const dx = wasm.makeOutput(x.shape.slice(), 'float32');
  k.gelu_grad(offset(wasm, x), offset(wasm, dy), offset(wasm, dx), count(x.shape));
  return dx;
};

const geluGradient: GradConfig = {
  kernelName: GELU,
  inputsToSave: ['x'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [x] = saved as [Tensor];
    return { x: () => tf.engine().runKernel(GELU_GRAD, { x, dy: dy as Tensor }, {}) as Tensor };
  },
};

const KERNELS: readonly KernelConfig[] = [
  { kernelName: GELU, backendName: 'wasm', kernelFunc: geluKernel },
  { kernelName: GELU_GRAD, backendName: 'wasm', kernelFunc: geluGradKernel },
];

/** Registers both kernels on wasm and the forward kernel's gradient; safe to call any number of times. */
export function registerGeluKernels(): void {
  registerOwnKernels(KERNELS, geluGradient);
}

/** Whether `gelu` runs for x: wasm with the engine's kernels loaded and registered, a non-empty float32 x. */
export function geluApplies(x: Tensor): boolean {
  return x.dtype === 'float32' && x.size > 0 && ownKernelRuns<GeluExports>(GELU, FUNCTIONS, true);
}

/** x · Φ(x), differentiable through the tape; undefined where `geluApplies` says no. */
export function gelu(x: Tensor): Tensor | undefined {
  if (!geluApplies(x)) return undefined;
  return tf.engine().runKernel(GELU, { x }, {}) as Tensor;
}
