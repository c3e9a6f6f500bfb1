/** Models, plans and host messages the webview tests and the render benchmark feed the panel. */
import type { LrFinderOutcome } from '../../src/core/lr-finder.ts';
import type { ModelInfo } from '../../src/core/model-info.ts';
import type { Plan } from '../../src/core/plan.ts';
import type { EpochEvent, GroupLr, StepEvent } from '../../src/core/progress.ts';
import type { PanelState } from '../../src/protocol/webview.ts';
import { batchNorm, conv, dense, layer, model, type LayerDraft } from '../unit/model-builders.ts';

/** A small CNN with a new head: 9 layers, 5 of them with weights. */
export function smallModel(): ModelInfo {
  return model(
    [
      layer('input_1', 'InputLayer'),
      conv('conv2d_1', 3, 1, 16),
      batchNorm('batch_normalization_1', 16),
      conv('conv2d_2', 3, 16, 32),
      layer('max_pooling2d_1', 'MaxPooling2D'),
      layer('flatten_1', 'Flatten'),
      dense('dense_1', 800, 64),
      layer('dropout_1', 'Dropout'),
      dense('head_dense', 64, 10, true),
    ],
    { source: 'model/model.json', inputShape: [null, 28, 28, 1], outputShape: [null, 10] },
  );
}

/** The seed's split (base ×0.1, extra ×0.5, head ×1) with two unfreezing stages. */
export function smallPlan(): Plan {
  return {
    model: 'model/model.json',
    training: { lr: 1e-3, epochs: 3, batchSize: 32, optimizer: 'adamw', schedule: { type: 'cosine', warmup: 0.1 } },
    groups: [
      { name: 'base', layers: ['conv2d_*', 'batch_normalization_*'], lrMult: 0.1 },
      { name: 'extra', layers: ['dense_1'], lrMult: 0.5 },
      { name: 'head', layers: ['head_*'], lrMult: 1 },
    ],
    layers: { conv2d_1: { frozen: true }, dense_1: { lrMult: 0.3 } },
    unfreeze: { stages: [{ epochs: 1, train: ['head'] }, { epochs: 2, train: 'all' }] },
  };
}

export function panelState(over: Partial<PanelState> = {}): PanelState {
  return {
    planFile: '/work/example/layerwise.json',
    planUri: 'file:///work/example/layerwise.json',
    plan: smallPlan(),
    problems: [],
    model: smallModel(),
    stepsPerEpoch: 10,
    trusted: true,
    presets: [
      { id: 'seed', label: 'Seed split (base ×0.1, extra ×0.5, head ×1)', description: 'three groups' },
      { id: 'ulmfit', label: 'ULMFiT (÷2.6 per group)', description: 'discriminative' },
    ],
    status: { state: 'idle' },
    ...over,
  };
}

const GROUPS = ['default', 'base', 'extra', 'head'];

export function groupLrs(lr: number, trains: readonly string[] = GROUPS): GroupLr[] {
  const mult: Record<string, number> = { default: 1, base: 0.1, extra: 0.5, head: 1 };
  return GROUPS.map((g) => ({ group: g, trains: trains.includes(g), lr: trains.includes(g) ? lr * (mult[g] ?? 1) : 0 }));
}

export function stepEvent(step: number, loss: number, over: Partial<StepEvent> = {}): StepEvent {
  return {
    kind: 'step',
    stage: 1,
    stages: 2,
    epoch: Math.floor((step - 1) / 10) + 1,
    epochs: 3,
    step,
    totalSteps: 30,
    loss,
    groupLrs: groupLrs(1e-3),
    etaSeconds: 30 - step,
    ...over,
  };
}

export function epochEvent(epoch: number, trainLoss: number, valLoss: number, valAccuracy: number): EpochEvent {
  return {
    kind: 'epoch',
    stage: epoch === 1 ? 1 : 2,
    epoch,
    trainLoss,
    trainAccuracy: valAccuracy + 0.02,
    valLoss,
    valAccuracy,
    seconds: 1.5,
    groupLrs: groupLrs(5e-4),
  };
}

/** A range-test curve that falls, flattens and explodes, with a suggestion at 3e-3. */
export function lrOutcome(): LrFinderOutcome {
  const points = Array.from({ length: 60 }, (_, i) => {
    const lr = 1e-6 * Math.pow(10, (i / 59) * 5);
    const x = Math.log10(lr);
    const loss = 2.3 - 1.5 / (1 + Math.exp(-(x + 3.5) * 2)) + (x > -2 ? Math.pow(x + 2, 2) * 4 : 0);
    return { lr, loss, smoothed: loss };
  });
  return {
    mode: 'global',
    points,
    suggestions: { valley: 3e-3, steep: 1e-3, minimum: 1e-3 },
    method: 'valley',
    suggested: 3e-3,
    apply: { field: 'training.lr', path: ['training', 'lr'], value: 3e-3 },
    stoppedEarly: true,
  };
}

/**
 * A deep model of `n` layers (Dense / LayerNormalization pairs) in 12 blocks named like a
 * converted transformer (`block_3/dense_17`), one group per block as a layer-decay plan has it.
 */
export function bigModel(n: number, blocks = 12): ModelInfo {
  const perBlock = Math.ceil(n / blocks);
  const layers: LayerDraft[] = [];
  for (let i = 0; i < n; i++) {
    const name = `block_${Math.floor(i / perBlock)}/${i % 2 === 0 ? 'dense' : 'norm'}_${i}`;
    layers.push(i % 2 === 0 ? dense(name, 256, 256) : layer(name, 'LayerNormalization', [['gamma', [256]], ['beta', [256]]]));
  }
  return model(layers, { source: 'big/model.json' });
}

export function bigPlan(blocks = 12): Plan {
  return {
    model: 'big/model.json',
    training: { lr: 2e-5, epochs: blocks + 2, schedule: { type: 'stlr' } },
    discriminative: { type: 'layerDecay', gamma: 0.8 },
    groups: Array.from({ length: blocks }, (_, g) => ({ name: `block_${g}`, layers: [`block_${g}/*`] })),
    unfreeze: { mode: 'gradual', epochsPerStage: 1 },
  };
}
