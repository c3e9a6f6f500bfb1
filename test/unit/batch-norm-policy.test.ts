/**
 * The plan's BatchNorm policy (batchNorm at plan, group and layer level) as the resolver decides
 * it: precedence, the rule recorded, frozen layers always in inference mode, and the warning for
 * a policy set on a layer that is not a BatchNorm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchNormInferenceLayers, resolveGroups } from '../../src/core/groups.ts';
import type { LayerAudit, Resolution } from '../../src/core/groups.types.ts';
import type { Plan } from '../../src/core/plan.ts';
import { batchNorm, dense, layer, model } from './model-builders.ts';

const net = model([layer('input', 'InputLayer'), dense('d1', 4, 8), batchNorm('bn1', 8), dense('d2', 8, 8), batchNorm('bn2', 8), dense('out', 8, 3)]);

function layerOf(r: Resolution, name: string): LayerAudit {
  const l = r.groups.flatMap((g) => g.layers).find((x) => x.name === name);
  assert.ok(l, name);
  return l;
}

test('BatchNorm policy: default "train", only BatchNorm layers carry it', () => {
  const r = resolveGroups(net, { model: 'm' });
  assert.equal(layerOf(r, 'bn1').batchNorm, 'train');
  assert.deepEqual(layerOf(r, 'bn1').batchNormRule, { source: 'default', detail: 'default (train)' });
  assert.equal(layerOf(r, 'd1').batchNorm, undefined);
  assert.equal(layerOf(r, 'd1').batchNormRule, undefined);
  assert.deepEqual([...batchNormInferenceLayers(r)], []);
});

test('BatchNorm policy: layers[name] → group → plan-level, each decision names its field', () => {
  const plan: Plan = {
    model: 'm',
    batchNorm: 'inference',
    groups: [
      { name: 'low', layers: ['d1', 'bn1'], batchNorm: 'train' },
      { name: 'top', layers: ['d2', 'bn2', 'out'] },
    ],
  };
  let r = resolveGroups(net, plan);
  assert.equal(layerOf(r, 'bn1').batchNorm, 'train');
  assert.deepEqual(layerOf(r, 'bn1').batchNormRule, { source: 'group', detail: 'groups[0] "low".batchNorm' });
  assert.equal(layerOf(r, 'bn2').batchNorm, 'inference');
  assert.deepEqual(layerOf(r, 'bn2').batchNormRule, { source: 'plan', detail: 'batchNorm' });
  assert.deepEqual([...batchNormInferenceLayers(r)], ['bn2']);

  r = resolveGroups(net, { ...plan, layers: { bn1: { batchNorm: 'inference' }, bn2: { batchNorm: 'train' } } });
  assert.deepEqual(layerOf(r, 'bn1').batchNormRule, { source: 'layers', detail: 'layers["bn1"].batchNorm' });
  assert.equal(layerOf(r, 'bn1').batchNorm, 'inference');
  assert.equal(layerOf(r, 'bn2').batchNorm, 'train');
  assert.equal(r.warnings.filter((w) => w.code === 'batchNormNotBatchNorm').length, 0);
});

test('BatchNorm policy: a frozen BatchNorm runs in inference mode whatever the policy says', () => {
  const r = resolveGroups(net, { model: 'm', batchNorm: 'train', groups: [{ name: 'low', layers: ['d1', 'bn1'], frozen: true }] });
  const bn1 = layerOf(r, 'bn1');
  assert.equal(bn1.batchNorm, 'inference');
  assert.deepEqual(bn1.batchNormRule, { source: 'group', detail: 'frozen (groups[0] "low".frozen)' });
  assert.equal(layerOf(r, 'bn2').batchNorm, 'train');
});

test('BatchNorm policy on a layer that is not a BatchNorm: no effect, one warning naming the field', () => {
  const r = resolveGroups(net, { model: 'm', layers: { d1: { batchNorm: 'inference' } } });
  const w = r.warnings.filter((x) => x.code === 'batchNormNotBatchNorm');
  assert.equal(w.length, 1);
  assert.equal(w[0]!.field, 'layers.d1.batchNorm');
  assert.match(w[0]!.message, /no effect: d1 is a Dense, not a BatchNormalization layer/);
  // set on a group or the plan, it simply does not apply to non-BatchNorm layers: no warning
  const quiet = resolveGroups(net, { model: 'm', batchNorm: 'inference', groups: [{ name: 'all', layers: ['*'], batchNorm: 'inference' }] });
  assert.equal(quiet.warnings.filter((x) => x.code === 'batchNormNotBatchNorm').length, 0);
});
