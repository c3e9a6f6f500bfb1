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
