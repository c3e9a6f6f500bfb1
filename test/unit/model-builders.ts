/**
 * ModelInfo builders for pure tests: a layer with named weights, a model from layers in depth
 * order. (groups, autogroup, presets, tree-model, pytorch-model and host-edits tests still carry
 * their own copies; new tests use these.)
 */
import type { LayerInfo, ModelInfo } from '../../src/core/model-info.ts';

export type WeightSpec = [shortName: string, shape: number[], trainable?: boolean];

export function layer(name: string, className: string, weights: WeightSpec[] = [], isNewHead?: boolean): Omit<LayerInfo, 'depth'> {
  return {
    name,
    className,
    weights: weights.map(([shortName, shape, trainable]) => ({ name: `${name}/${shortName}`, shortName, shape, trainable: trainable ?? true })),
    ...(isNewHead === undefined ? {} : { isNewHead }),
  };
}

export function model(layers: Array<Omit<LayerInfo, 'depth'>>, kind: ModelInfo['kind'] = 'tfjs'): ModelInfo {
  return { source: 'test', kind, layers: layers.map((l, depth) => ({ ...l, depth })) };
}

export const dense = (name: string, i: number, o: number, isNewHead?: boolean): Omit<LayerInfo, 'depth'> =>
  layer(name, 'Dense', [['kernel', [i, o]], ['bias', [o]]], isNewHead);

export const conv = (name: string, k: number, i: number, o: number): Omit<LayerInfo, 'depth'> =>
  layer(name, 'Conv2D', [['kernel', [k, k, i, o]], ['bias', [o]]]);

export const batchNorm = (name: string, c: number): Omit<LayerInfo, 'depth'> =>
  layer(name, 'BatchNormalization', [
    ['gamma', [c]],
    ['beta', [c]],
    ['moving_mean', [c], false],
    ['moving_variance', [c], false],
  ]);

export const relu = (name: string): Omit<LayerInfo, 'depth'> => layer(name, 'ReLU');

/**
 * Keras MobileNetV2's layer names (stem, `block_<n>_…`, residual adds, Conv_1, global pooling),
 * ending in a classifier: `predictions`, after a dropout when `dropout` is set.
 */
export function mobileNetV2Like(blocks: number, opts: { dropout?: boolean } = {}): ModelInfo {
  const c = 8;
  const ls = [layer('input_1', 'InputLayer'), conv('Conv1', 3, c, c), batchNorm('bn_Conv1', c), relu('Conv1_relu')];
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
  return model([...kept, ...added], m.kind);
}
