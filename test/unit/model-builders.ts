/**
 * ModelInfo builders for the pure tests and the webview fixtures: a layer with named weights, a
 * model from layers in depth order. Every test that needs a ModelInfo builds it with these.
 */
import type { LayerInfo, ModelInfo } from '../../src/core/model-info.ts';

/** A layer before `model` gives it its depth (its place in the list). */
export type LayerDraft = Omit<LayerInfo, 'depth'>;

export type WeightSpec = [shortName: string, shape: number[], trainable?: boolean];

export function layer(name: string, className: string, weights: WeightSpec[] = [], isNewHead = false): LayerDraft {
  return {
    name,
    className,
    weights: weights.map(([shortName, shape, trainable]) => ({ name: `${name}/${shortName}`, shortName, shape, trainable: trainable ?? true })),
    ...(isNewHead ? { isNewHead } : {}),
  };
}

/** `info` sets the model's other fields; unless it says otherwise a tfjs model from `test`. */
export function model(layers: LayerDraft[], info: Partial<Omit<ModelInfo, 'layers'>> = {}): ModelInfo {
  return { source: 'test', kind: 'tfjs', ...info, layers: layers.map((l, depth) => ({ ...l, depth })) };
}

export const dense = (name: string, i: number, o: number, isNewHead = false): LayerDraft =>
  layer(name, 'Dense', [['kernel', [i, o]], ['bias', [o]]], isNewHead);

export const conv = (name: string, k: number, i: number, o: number): LayerDraft =>
  layer(name, 'Conv2D', [['kernel', [k, k, i, o]], ['bias', [o]]]);

export const batchNorm = (name: string, c: number): LayerDraft =>
  layer(name, 'BatchNormalization', [
    ['gamma', [c]],
    ['beta', [c]],
    ['moving_mean', [c], false],
    ['moving_variance', [c], false],
  ]);

export const relu = (name: string): LayerDraft => layer(name, 'ReLU');

/** A linear module as the PyTorch reader sees it: no class name (it infers only norms), `weight` and `bias`. */
export const linear = (name: string, i: number, o: number): LayerDraft => layer(name, '', [['weight', [i, o]], ['bias', [o]]]);

/**
 * Keras MobileNetV2's layer names (stem with its `expanded_conv` block, `block_<n>_…`, residual
 * adds, Conv_1, global pooling), ending in a classifier: `predictions`, after a dropout when
 * `dropout` is set.
 */
export function mobileNetV2Like(blocks: number, opts: { dropout?: boolean } = {}): ModelInfo {
  const c = 8;
  const ls = [layer('input_1', 'InputLayer'), conv('Conv1', 3, c, c), batchNorm('bn_Conv1', c), relu('Conv1_relu')];
  ls.push(conv('expanded_conv_depthwise', 3, c, c), batchNorm('expanded_conv_depthwise_BN', c), conv('expanded_conv_project', 1, c, c));
  for (let b = 1; b <= blocks; b++) {
    ls.push(conv(`block_${b}_expand`, 1, c, c), batchNorm(`block_${b}_expand_BN`, c), relu(`block_${b}_expand_relu`));
    ls.push(conv(`block_${b}_project`, 1, c, c), batchNorm(`block_${b}_project_BN`, c));
    if (b % 2 === 0) ls.push(layer(`block_${b}_add`, 'Add'));
  }
  ls.push(conv('Conv_1', 1, c, 16), batchNorm('Conv_1_bn', 16), relu('out_relu'), layer('global_average_pooling2d', 'GlobalAveragePooling2D'));
  if (opts.dropout === true) ls.push(layer('dropout', 'Dropout'));
  ls.push(dense('predictions', 16, 10));
  return model(ls);
}

/**
 * What the engine's applyHead makes of `m` (engine/model-io.ts): the layers up to `cut`, then
 * the new ones, named `head_dense_<i>` for hidden layers and `head_out`.
 */
export function withNewHead(m: ModelInfo, cut: string, hidden: number[] = []): ModelInfo {
  const at = m.layers.findIndex((l) => l.name === cut);
  if (at < 0) throw new Error(`no layer ${cut}`);
  const kept = m.layers.slice(0, at + 1).map(({ depth: _depth, ...l }) => l);
  const added = [...hidden.map((u, i) => dense(`head_dense_${i + 1}`, 16, u, true)), dense('head_out', 16, 4, true)];
  return model([...kept, ...added], { kind: m.kind });
}
