import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupAudit, Resolution } from '../../src/core/groups.types.ts';
import type { Plan } from '../../src/core/plan.ts';
import { buildTimeline, groupLrsAt, resolveStages, scheduleFactorAt, stageAt } from '../../src/core/timeline.ts';
import { LayerwiseError } from '../../src/core/errors.ts';

const decision = { source: 'group' as const, detail: 'test' };
function group(name: string, index: number, lrMult: number, frozen = false, weights = 1): GroupAudit {
  const params = Array.from({ length: weights }, (_, i) => ({
    name: `${name}_dense/w${i}`, layer: `${name}_dense`, shape: [10], size: 10, trainable: true, group: name,
    lrMult, lrMultRule: decision, effectiveLr: lrMult, weightDecay: 0, weightDecayRule: decision, frozen, frozenRule: decision,
  }));
  const layer = { name: `${name}_dense`, className: 'Dense', depth: index, group: name, lrMult, lrMultRule: decision, frozen, frozenRule: decision, paramCount: 10 * weights, params, isNewHead: false };
  return { name, index, planIndex: index, implicit: false, patterns: [], lrMult, lrMultRule: decision, frozen, frozenRule: decision, paramCount: 10 * weights, layers: [layer] };
}
function resolution(groups: GroupAudit[], baseLr = 1e-3): Resolution {
  return { baseLr, groups, params: [], warnings: [] };
}
const three = resolution([group('base', 0, 0.1), group('extra', 1, 0.5), group('head', 2, 1)]);

test('without unfreeze: one stage trains every non-frozen group', () => {
  const plan: Plan = { model: 'm', training: { epochs: 3, lr: 0.01 } };
  const stages = resolveStages(plan, resolution([group('a', 0, 1, true), group('b', 1, 1)]));
  assert.deepEqual(stages, [{ index: 0, epochs: 3, trainGroups: ['b'], lr: 0.01 }]);
});

test('gradual: stage k trains the top k groups, the last stage gets the remaining epochs', () => {
  const plan: Plan = { model: 'm', training: { epochs: 5 }, unfreeze: { mode: 'gradual', epochsPerStage: 1 } };
  const stages = resolveStages(plan, three);
  assert.deepEqual(stages.map((s) => s.trainGroups), [['head'], ['extra', 'head'], ['base', 'extra', 'head']]);
  assert.deepEqual(stages.map((s) => s.epochs), [1, 1, 3]);
});

test('gradual: groups frozen by the plan never train and do not make a stage', () => {
  const r = resolution([group('base', 0, 0.1, true), group('extra', 1, 0.5), group('head', 2, 1)]);
  const plan: Plan = { model: 'm', training: { epochs: 2 }, unfreeze: { mode: 'gradual' } };
  assert.deepEqual(resolveStages(plan, r).map((s) => s.trainGroups), [['head'], ['extra', 'head']]);
});

test('gradual: a group with nothing trainable (empty, or weightless layers only) is not a stage', () => {
  const r = resolution([group('default', 0, 1, false, 0), group('base', 1, 0.1), group('head', 2, 1)]);
  const plan: Plan = { model: 'm', training: { epochs: 2 }, unfreeze: { mode: 'gradual' } };
  assert.deepEqual(resolveStages(plan, r).map((s) => s.trainGroups), [['head'], ['base', 'head']]);
});

test('gradual: too few epochs is an error naming training.epochs', () => {
  const plan: Plan = { model: 'm', training: { epochs: 2 }, unfreeze: { mode: 'gradual', epochsPerStage: 1 } };
  assert.throws(() => resolveStages(plan, three, 'p.json'), (e: unknown) => e instanceof LayerwiseError && e.field === 'training.epochs' && e.file === 'p.json');
});

test('explicit stages: names, "all", per-stage lr; bottom → top order kept', () => {
  const plan: Plan = {
    model: 'm',
    training: { lr: 0.1 },
    unfreeze: { stages: [{ epochs: 1, train: ['head'] }, { epochs: 2, train: ['head', 'base'], lr: 0.05 }, { epochs: 1, train: 'all' }] },
  };
  const stages = resolveStages(plan, three);
  assert.deepEqual(stages, [
    { index: 0, epochs: 1, trainGroups: ['head'], lr: 0.1 },
    { index: 1, epochs: 2, trainGroups: ['base', 'head'], lr: 0.05 },
    { index: 2, epochs: 1, trainGroups: ['base', 'extra', 'head'], lr: 0.1 },
  ]);
});

test('explicit stages: an unknown group names the exact field', () => {
  const plan: Plan = { model: 'm', unfreeze: { stages: [{ epochs: 1, train: ['head', 'nope'] }] } };
  assert.throws(() => resolveStages(plan, three), (e: unknown) => e instanceof LayerwiseError && e.field === 'unfreeze.stages[0].train[1]');
});

test('timeline: step ranges per stage', () => {
  const tl = buildTimeline([{ index: 0, epochs: 1, trainGroups: [], lr: 1 }, { index: 1, epochs: 2, trainGroups: [], lr: 1 }], 4);
  assert.equal(tl.totalSteps, 12);
  assert.equal(tl.totalEpochs, 3);
  assert.deepEqual(tl.stages.map((s) => [s.startStep, s.steps, s.startEpoch]), [[0, 4, 0], [4, 8, 1]]);
  assert.equal(stageAt(tl, 3).index, 0);
  assert.equal(stageAt(tl, 4).index, 1);
});

test('scope "stage" restarts the schedule each stage; "run" is one curve', () => {
  const stages = [{ index: 0, epochs: 1, trainGroups: ['head'], lr: 1 }, { index: 1, epochs: 1, trainGroups: ['head'], lr: 1 }];
  const tl = buildTimeline(stages, 10);
  const perStage: Plan = { model: 'm', training: { schedule: { type: 'linear' } } };
  // linear without warm-up over T=10: s(t) = (10 − t)/10
  assert.equal(scheduleFactorAt(perStage, tl, 0), 1);
  assert.equal(scheduleFactorAt(perStage, tl, 9), 0.1);
  assert.equal(scheduleFactorAt(perStage, tl, 10), 1); // restarted
  const perRun: Plan = { model: 'm', training: { schedule: { type: 'linear', scope: 'run' } } };
  assert.equal(scheduleFactorAt(perRun, tl, 10), 0.5); // (20 − 10)/20
});

test('group LRs: base × mult × s(t), zero for groups that do not train yet; ratios hold', () => {
  const plan: Plan = { model: 'm', training: { lr: 0.01, epochs: 3, schedule: { type: 'cosine', scope: 'run' } }, unfreeze: { mode: 'gradual' } };
  const tl = buildTimeline(resolveStages(plan, three), 4);
  const at0 = groupLrsAt(plan, three, tl, 0);
  assert.deepEqual(at0.map((g) => g.lr), [0, 0, 0.01]);
  // step 9 of 12 in stage 3: cos factor 0.5(1 + cos(π·9/12))
  const f = 0.5 * (1 + Math.cos((Math.PI * 9) / 12));
  const at9 = groupLrsAt(plan, three, tl, 9);
  assert.ok(Math.abs(at9[0]!.lr - 0.01 * 0.1 * f) < 1e-15);
  assert.ok(Math.abs(at9[2]!.lr / at9[0]!.lr - 10) < 1e-9);
  assert.deepEqual(at9.map((g) => g.trains), [true, true, true]);
});
