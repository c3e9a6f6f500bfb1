/**
 * BatchMatMul for wasm. The stock kernel hands untransposed operands to XNNPACK and runs every
 * transposed product — the input and weight gradients of every Dense layer — as a scalar loop:
 * 3 GFLOP/s against 23–40 for the same product after an explicit transpose (64×784 by 784×256,
 * measured). Transposing costs one copy of the operand, a few percent of the product.
 * Batched products (attention's QKᵀ) stay on the stock scalar loop: XNNPACK is only reached for
 * one matrix at a time, and a broadcast Multiply + Sum formulation measured slower (3.4 vs 2.9 ms).
 */
import { BatchMatMul, Transpose } from '@tensorflow/tfjs';
import type { BatchMatMulAttrs, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { release, reshaped, runStock, type BackendWasm } from './heap.ts';

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
