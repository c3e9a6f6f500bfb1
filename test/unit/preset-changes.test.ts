/** What a preset would overwrite, and which preset a plan already follows (core/presets.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Plan } from '../../src/core/plan.ts';
import { activePresets, applyPreset, presetChanges } from '../../src/core/presets.ts';
import { dense, model } from './model-builders.ts';

const net = model([dense('d1', 4, 8), dense('d2', 8, 8), dense('d3', 8, 8), dense('head', 8, 2, true)]);

function threeGroups(): Plan {
  return {
    model: 'model.json',
    training: { lr: 1e-3 },
    groups: [
      { name: 'low', layers: ['d1', 'd2'] },
      { name: 'mid', layers: ['d3'] },
      { name: 'top', layers: ['head'] },
    ],
  };
}

test('a plan a preset produced follows that preset, and no other', () => {
  const plan = applyPreset(threeGroups(), net, 'ulmfit');
  assert.deepEqual(activePresets(plan, net), ['ulmfit']);
  assert.deepEqual(activePresets(applyPreset(threeGroups(), net, 'layerDecay'), net), ['layerDecay']);
  assert.deepEqual(activePresets(threeGroups(), net), ['none']);
});

test('hand-set multipliers equal to a preset\'s spread count as that preset; one changed by hand does not', () => {
  const plan = threeGroups();
  plan.groups![0]!.lrMult = 1 / (2.6 * 2.6);
  plan.groups![1]!.lrMult = 1 / 2.6;
  assert.deepEqual(activePresets(plan, net), ['ulmfit']);
  const handSet = applyPreset(threeGroups(), net, 'ulmfit');
  handSet.groups![1]!.lrMult = 0.3;
  assert.deepEqual(activePresets(handSet, net), []);
  // a per-layer override is kept by every preset, so it does not hide the active one
  const withLayer = { ...applyPreset(threeGroups(), net, 'ulmfit'), layers: { d1: { lrMult: 0.05 } } };
  assert.deepEqual(activePresets(withLayer, net), ['ulmfit']);
});

test('a group multiplier that no layer follows (each has its own) does not count against a preset', () => {
  const plan = { ...applyPreset(threeGroups(), net, 'ulmfit'), layers: { d3: { lrMult: 0.3 } } };
  plan.groups![1]!.lrMult = 0.9;
  assert.deepEqual(activePresets(plan, net), ['ulmfit']);
  // the seed's split at another base LR is never current
  assert.ok(!activePresets(applyPreset(threeGroups(), net, 'seed'), net).includes('ulmfit'));
  assert.ok(activePresets(applyPreset(threeGroups(), net, 'seed'), net).includes('seed'));
});

test('with one group every spread is ×1: all spreads match', () => {
  const plan: Plan = { model: 'model.json', groups: [{ name: 'all', layers: ['*'] }] };
  assert.deepEqual(activePresets(plan, net), ['ulmfit', 'layerDecay', 'geometric', 'none']);
});

test('a preset lists the hand-set multipliers and freezes it overwrites, and the spread it sets', () => {
  const plan = threeGroups();
  plan.groups![1]!.lrMult = 0.3;
  plan.groups![2]!.frozen = true;
  const changes = presetChanges(plan, net, 'ulmfit');
  assert.deepEqual(changes, [
    { field: 'discriminative', before: undefined, after: '{"type":"ulmfit","factor":2.6}', handSet: false },
    { field: 'groups[1] "mid".lrMult', before: '0.3', after: undefined, handSet: true },
  ]);
  // the freeze is kept by the spreads; the seed's preset replaces the groups and loses it
  const seed = presetChanges(plan, net, 'seed');
  assert.ok(seed.some((c) => c.field === 'groups[2] "top".frozen' && c.before === 'true' && c.after === undefined && c.handSet));
  assert.ok(seed.some((c) => c.field === 'groups[1] "mid".lrMult' && c.handSet));
  assert.ok(seed.some((c) => c.field === 'training.lr' && c.before === '0.001' && c.after === '0.00001'));
  assert.ok(seed.some((c) => c.field === 'groups' && !c.handSet));
});

test('applying the preset the plan follows changes nothing', () => {
  const plan = applyPreset(threeGroups(), net, 'layerDecay');
  assert.deepEqual(presetChanges(plan, net, 'layerDecay'), []);
});
