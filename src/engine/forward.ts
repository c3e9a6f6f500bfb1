/**
 * The forward pass and the loss, with per-layer control of BatchNormalization's mode: a layer
 * that does not train in the current stage (frozen by the plan, or not yet unfrozen) runs in
 * inference mode, so its moving statistics do not move (Keras semantics for frozen BN); so does
 * one whose plan says `batchNorm: "inference"`, while its gamma/beta still get gradients.
 */
import * as tf from '@tensorflow/tfjs';
import type { Task } from '../core/plan.ts';

type CallFn = (inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];

export class ModeControl {
  /** Layers that train in the current stage; undefined = every layer. */
  private training: ReadonlySet<string> | undefined;
  private readonly originals = new Map<tf.layers.Layer, CallFn>();

  /** `inference`: BatchNorm layers that always run in inference mode (the plan's batchNorm policy). */
  constructor(model: tf.LayersModel, inference: ReadonlySet<string> = new Set()) {
    for (const layer of model.layers) {
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const original = layer.call.bind(layer) as CallFn;
      this.originals.set(layer, original);
      const name = layer.name;
      const always = inference.has(name);
      // an instance-level override: tfjs's Layer.apply calls this.call(inputs, kwargs)
      (layer as unknown as { call: CallFn }).call = (inputs, kwargs) =>
        original(inputs, always || (this.training !== undefined && !this.training.has(name)) ? { ...kwargs, training: false } : kwargs);
    }
  }

  /** Only the named layers train: every other BatchNormalization runs in inference mode. */
  trainOnly(layers: ReadonlySet<string>): void {
    this.training = new Set(layers);
  }

  restore(): void {
    for (const [layer, original] of this.originals) (layer as unknown as { call: CallFn }).call = original;
    this.originals.clear();
  }
}

export interface LossSpec {
  task: Task;
  /** Classification only: the model's last activation is softmax (loss on probabilities). */
  outputIsProbability: boolean;
}

export function lossSpecFor(model: tf.LayersModel, task: Task): LossSpec {
  const last = model.layers[model.layers.length - 1];
  const config = last?.getConfig() as { activation?: unknown } | undefined;
  const activation = typeof config?.activation === 'string' ? config.activation : 'linear';
  return { task, outputIsProbability: task === 'classification' && activation === 'softmax' };
}

/**
 * Mean loss over the batch: cross-entropy (from logits, like torch's CrossEntropyLoss, unless
 * the model already outputs probabilities) or mean squared error over outputs and batch.
 */
export function computeLoss(spec: LossSpec, output: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    if (spec.task === 'regression') return tf.mean(tf.square(tf.sub(output, y))) as tf.Scalar;
    const logProbs = spec.outputIsProbability
      ? tf.log(tf.clipByValue(output, 1e-7, 1))
      : tf.logSoftmax(output as tf.Tensor2D);
    return tf.neg(tf.mean(tf.sum(tf.mul(y, logProbs), -1))) as tf.Scalar;
  });
}

/** Number of rows whose arg-max prediction equals the arg-max label. */
export function countCorrect(output: tf.Tensor, y: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(output, -1), tf.argMax(y, -1)), 'float32')).dataSync()[0] ?? 0);
}

export function forward(model: tf.LayersModel, x: tf.Tensor, training: boolean): tf.Tensor {
  return model.apply(x, { training }) as tf.Tensor;
}
