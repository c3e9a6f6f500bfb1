/**
 * Model builders for unit tests: a layer with named weights, a model from layers. New tests use
 * these; the copies in older test files move here as those files are next touched.
 */
import type { LayerInfo, ModelInfo } from '../../src/core/model-info.ts';

export type WeightSpec = [shortName: string, shape: number[], trainable?: boolean];

export function layer(name: string, className: string, weights: WeightSpec[] = []): Omit<LayerInfo, 'depth'> {
  return {
    name,
    className,
    weights: weights.map(([shortName, shape, trainable]) => ({ name: `${name}/${shortName}`, shortName, shape, trainable: trainable ?? true })),
  };
}

export function model(layers: Array<Omit<LayerInfo, 'depth'>>, kind: ModelInfo['kind'] = 'tfjs'): ModelInfo {
  return { source: 'test', kind, layers: layers.map((l, depth) => ({ ...l, depth })) };
}

export const dense = (name: string, i: number, o: number): Omit<LayerInfo, 'depth'> => layer(name, 'Dense', [['kernel', [i, o]], ['bias', [o]]]);
export const conv = (name: string, c: number): Omit<LayerInfo, 'depth'> => layer(name, 'Conv2D', [['kernel', [3, 3, c, c]], ['bias', [c]]]);
