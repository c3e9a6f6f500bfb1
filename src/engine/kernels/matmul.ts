/**
 * BatchMatMul for wasm. The stock kernel hands untransposed operands to XNNPACK and runs every
 * transposed product — the input and weight gradients of every Dense layer — as a scalar loop:
 * 3 GFLOP/s against 23–40 for the same product after an explicit transpose (64×784 by 784×256,
 * measured). Transposing costs one copy of the operand, a few percent of the product.
 * When the engine's SIMD kernels are built, every product with matching batch axes runs there
 * instead (native.ts): batched ones (attention's QKᵀ) were a scalar loop in stock wasm, and even
 * single products beat XNNPACK's, which repacks the right-hand operand on every call. The
 * transpose + XNNPACK route below is the fallback.
 */
import { BatchMatMul, Transpose, _FusedMatMul } from '@tensorflow/tfjs';
import type { BatchMatMulAttrs, KernelFunc, TensorInfo, _FusedMatMulAttrs } from '@tensorflow/tfjs';
import { release, reshaped, runStock, type BackendWasm } from './heap.ts';
import { nativeAddInPlace, nativeBatchMatMul } from './native.ts';

/**
 * The stock 2-D Transpose collapses when the row count is a large power of two (its writes then
 * stride by a multiple of 4 KB and keep evicting each other): 1.8 ms for 1024×256, 6 ms for
 * 32768×32. Split into [rows/64, 64, cols] and moved as a 3-D [2, 0, 1] transpose, the same data
 * takes 0.3 and 0.8 ms; for other shapes the 2-D kernel is as fast or faster.
 */
const SPLIT = 64;

function swapLastTwo(backend: BackendWasm, t: TensorInfo): TensorInfo {
  const rank = t.shape.length;
  const rows = t.shape[rank - 2]!;
  const cols = t.shape[rank - 1]!;
  const batch = t.shape.slice(0, -2).reduce((a, b) => a * b, 1);
  if (batch === 1 && rows >= 1024 && rows % SPLIT === 0) {
    const moved = runStock(Transpose, backend, { x: reshaped(t, [rows / SPLIT, SPLIT, cols]) }, { perm: [2, 0, 1] });
    return reshaped(moved, [...t.shape.slice(0, -2), cols, rows]);
  }
  const perm = Array.from({ length: rank }, (_, i) => (i < rank - 2 ? i : 2 * rank - 3 - i));
  return runStock(Transpose, backend, { x: t }, { perm });
}

export const batchMatMul: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
  const batched = nativeBatchMatMul(wasm, a, b, transposeA, transposeB);
  if (batched !== undefined) return batched;
  if ((!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return runStock(BatchMatMul, wasm, { a, b }, attrs);
  }
  const made: TensorInfo[] = [];
  try {
    const left = transposeA ? swapLastTwo(wasm, a) : a;
    if (transposeA) made.push(left);
    const right = transposeB ? swapLastTwo(wasm, b) : b;
    if (transposeB) made.push(right);
    return runStock(BatchMatMul, wasm, { a: left, b: right }, { ...attrs, transposeA: false, transposeB: false });
  } finally {
    release(wasm, ...made);
  }
};

/**
 * _FusedMatMul (Dense layers' forward) without an activation, as tfjs runs it while recording
 * gradients: the SIMD product, then the bias added in place per output column. The stock kernel
 * reaches 8 GFLOP/s on 1024×64 by 64×64 (XNNPACK repacks the weights on every call). Other
 * activations, PReLU weights and non-vector biases keep the stock kernel.
 */
export const fusedMatMul: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const { a, b, bias, preluActivationWeights } = inputs;
  if (a === undefined || b === undefined) throw new Error('_FusedMatMul: missing input');
  const { transposeA, transposeB, activation } = attrs as unknown as _FusedMatMulAttrs;
  const n = b.shape[b.shape.length - (transposeB ? 2 : 1)];
  const plainBias = bias === undefined || (bias.dtype === 'float32' && bias.shape.length === 1 && bias.shape[0] === n);
  if ((activation === undefined || activation === 'linear') && preluActivationWeights === undefined && plainBias) {
    const out = nativeBatchMatMul(wasm, a, b, transposeA, transposeB);
    if (out !== undefined) {
      if (bias !== undefined && !nativeAddInPlace(wasm, out, bias)) {
        release(wasm, out);
      } else {
        return out;
      }
    }
  }
  return runStock(_FusedMatMul, wasm, inputs, attrs);
};
