/**
 * Tile for wasm. The stock kernel decomposes every output index with divisions, ~65 ns per
 * element: a third of a small CNN's training step, because tfjs' BatchNormalization gradient
 * tiles the per-channel scale up to the activation's full shape. This writes one copy of each
 * axis and replicates it with `copyWithin` (memmove), innermost axis first; a repeated single
 * value is a `fill`.
 */
type Values = Float32Array | Int32Array | Uint8Array;

export function tileValues<T extends Values>(x: T, shape: readonly number[], reps: readonly number[], into?: T): T {
  const rank = shape.length;
  const outShape = shape.map((d, i) => d * reps[i]!);
  // inSize[k] / outSize[k]: elements in one step along axis k-1 (the block below axis k-1)
  const inSize = new Array<number>(rank + 1).fill(1);
  const outSize = new Array<number>(rank + 1).fill(1);
  for (let k = rank - 1; k >= 0; k--) {
    inSize[k] = inSize[k + 1]! * shape[k]!;
    outSize[k] = outSize[k + 1]! * outShape[k]!;
  }
  const out = into ?? new (x.constructor as new (n: number) => T)(outSize[0]!);
  if (outSize[0] === 0) return out;
  if (rank === 0) {
    out[0] = x[0]!;
    return out;
  }
  const write = (axis: number, from: number, to: number): void => {
    const length = shape[axis]!;
    const chunk = length * outSize[axis + 1]!;
    if (axis === rank - 1) {
      if (length === 1) {
        // one value repeated (LayerNormalization tiles its [.., 1] statistics this way): a fill,
        // not reps − 1 single-element copyWithin calls
        out.fill(x[from]!, to, to + reps[axis]!);
        return;
      }
      out.set(x.subarray(from, from + length), to);
    } else {
      for (let a = 0; a < length; a++) write(axis + 1, from + a * inSize[axis + 1]!, to + a * outSize[axis + 1]!);
    }
    for (let r = 1; r < reps[axis]!; r++) out.copyWithin(to + r * chunk, to, to + chunk);
  };
  write(0, 0, 0);
  return out;
}
