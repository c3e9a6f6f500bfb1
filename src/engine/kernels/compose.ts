/**
 * Running a kernel as a composition of tf ops. Inside a kernelFunc the engine hands us bare
 * TensorInfos owned by the backend; to use tf ops on them we wrap them in Tensors that hold
 * their own backend reference, and hand the result back with a reference the engine adopts.
 * Ops called here run on the active backend (wasm) and are not recorded on the gradient tape:
 * the engine only records at kernel depth 0.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelBackend, TensorInfo } from '@tensorflow/tfjs';

export function composeKernel<K extends string>(
  backend: KernelBackend,
  inputs: Record<K, TensorInfo>,
  body: (tensors: Record<K, tf.Tensor>) => tf.Tensor,
): TensorInfo {
  const engine = tf.engine();
  const views = {} as Record<K, tf.Tensor>;
  const made: tf.Tensor[] = [];
  try {
    for (const key of Object.keys(inputs) as K[]) {
      const info = inputs[key];
      // the view's dispose gives this reference back, so the caller's tensor survives it
      backend.incRef(info.dataId);
      const view = engine.makeTensorFromTensorInfo(info, backend);
      made.push(view);
      views[key] = view;
    }
    const result = tf.tidy(() => body(views));
    // keep the data alive past result.dispose(): the engine takes over this reference
    backend.incRef(result.dataId);
    const out: TensorInfo = { dataId: result.dataId, shape: result.shape.slice(), dtype: result.dtype };
    result.dispose();
    return out;
  } finally {
    for (const view of made) view.dispose();
  }
}

/**
 * Gets an NHWC tensor ready for a 'valid'-style convolution that should see it padded by the
 * given amounts on its two spatial axes. Negative amounts crop (a slice); positive ones become
 * the convolution's explicit padding, which XNNPACK applies without copying the tensor.
 */
export function padForConv(
  t: tf.Tensor4D,
  top: number,
  bottom: number,
  left: number,
  right: number,
): { input: tf.Tensor4D; pad: tf.backend_util.ExplicitPadding } {
  const [n, h, w, c] = t.shape;
  let input = t;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const cropTop = Math.max(0, -top);
    const cropLeft = Math.max(0, -left);
    input = tf.slice(
      t,
      [0, cropTop, cropLeft, 0],
      [n, h - cropTop - Math.max(0, -bottom), w - cropLeft - Math.max(0, -right), c],
    );
  }
  const pad: tf.backend_util.ExplicitPadding = [
    [0, 0],
    [Math.max(0, top), Math.max(0, bottom)],
    [Math.max(0, left), Math.max(0, right)],
    [0, 0],
  ];
  return { input, pad };
}

/**
 * Spreads an NHWC tensor's rows and columns `stride` apart with zeros between them (the
 * transpose of a strided read), giving (h-1)·sh+1 × (w-1)·sw+1 pixels.
 */
export function zeroInsert(t: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  if (strideHeight === 1 && strideWidth === 1) return t;
  const [n, h, w, c] = t.shape;
  const spread = tf.pad(tf.reshape(t, [n, h, 1, w, 1, c]), [
    [0, 0],
    [0, 0],
    [0, strideHeight - 1],
    [0, 0],
    [0, strideWidth - 1],
    [0, 0],
  ]);
  const grid = tf.reshape<tf.Rank.R4>(spread, [n, h * strideHeight, w * strideWidth, c]);
  return tf.slice(grid, [0, 0, 0, 0], [n, (h - 1) * strideHeight + 1, (w - 1) * strideWidth + 1, c]);
}
