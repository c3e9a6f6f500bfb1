/**
 * The "what changed since the run started" comparison behind a resume refusal: every change that
 * alters the numbers is named with its old and new value; changes that do not (results, comments,
 * output, diagnostics) never block; a group change is not repeated once per parameter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupAudit, Resolution } from '../../src/core/groups.types.ts';
import type { Plan } from '../../src/core/plan.ts';
import { describeFingerprintChanges, fingerprintChanges, runFingerprint, type MeasuredInputs } from '../../src/core/run-fingerprint.ts';
import { resolveStages } from '../../src/core/timeline.ts';

const decision = { source: 'group' as const, detail: 'test' };
function group(name: string, index: number, lrMult: number, frozen = false): GroupAudit {
  const params = ['kernel', 'bias'].map((w) => ({
    name: `${name}_dense/${w}`, layer: `${name}_dense`, shape: [4], size: 4, trainable: true, group: name,
    lrMult, lrMultRule: decision, effectiveLr: lrMult, weightDecay: w === 'bias' ? 0 : 0.01, weightDecayRule: decision, frozen, frozenRule: decision,
  }));
  const layer = { name: `${name}_dense`, className: 'Dense', depth: index, group: name, lrMult, lrMultRule: decision, frozen, frozenRule: decision, paramCount: 8, params, isNewHead: false };
  return { name, index, planIndex: index, implicit: false, patterns: [`${name}_*`], lrMult, lrMultRule: decision, frozen, frozenRule: decision, paramCount: 8, layers: [layer] };
}
function resolution(groups: GroupAudit[]): Resolution {
  return { baseLr: 1e-3, groups, params: groups.flatMap((g) => g.layers.flatMap((l) => l.params)), warnings: [] };
}
const measured: MeasuredInputs = {
  modelFiles: { 'model/model.json': 'size 10 bytes, sha256 ' + 'a'.repeat(64), 'weights weights.bin': 'size 64 bytes, sha256 ' + 'b'.repeat(64) },
  trainData: 'c'.repeat(64),
  trainSamples: 100,
};
const plan: Plan = {
  model: 'model/model.json',
  data: { train: 'train.csv', shuffle: true },
  training: { epochs: 4, lr: 0.01, optimizer: 'adamw', schedule: { type: 'cosine' } },
  unfreeze: { mode: 'gradual' },
};

function fp(p: Plan, r: Resolution, m: MeasuredInputs = measured) {
  return runFingerprint(p, r, resolveStages(p, r), m);
}

const base = resolution([group('block2', 0, 0.38), group('head', 1, 1)]);

test('the same plan, model and data: no change', () => {
  assert.deepEqual(fingerprintChanges(fp(plan, base), fp(plan, base)), []);
  assert.deepEqual(describeFingerprintChanges(fp(plan, base), fp(plan, base)), []);
});

test('fields that do not change the numbers do not count', () => {
  const later: Plan = { ...plan, output: 'elsewhere', results: { lastRun: { folder: 'x', date: 'd', backend: 'cpu', epochs: 1, stopped: 'cancelled' } }, training: { ...plan.training, diagnosticsEvery: 0 } };
  assert.deepEqual(describeFingerprintChanges(fp(plan, base), fp(later, base)), []);
});

test('a group multiplier: one sentence naming the group field, old → new, not repeated per parameter', () => {
  const changed = resolution([group('block2', 0, 0.5), group('head', 1, 1)]);
  assert.deepEqual(describeFingerprintChanges(fp(plan, base), fp(plan, changed)), ['groups changed since the run started (block2.lrMult 0.38 → 0.5)']);
});

test('a per-layer override shows under parameters; a frozen group changes the stages too', () => {
  const override = resolution([group('block2', 0, 0.38), group('head', 1, 1)]);
  const p = override.groups[0]!.layers[0]!.params[1]!;
  p.lrMult = 2;
  assert.deepEqual(describeFingerprintChanges(fp(plan, base), fp(plan, override)), ['parameters changed since the run started (block2_dense/bias lrMult 0.38 → 2)']);
  const frozen = resolution([group('block2', 0, 0.38, true), group('head', 1, 1)]);
  const msgs = describeFingerprintChanges(fp(plan, base), fp(plan, frozen));
  assert.equal(msgs[0], 'groups changed since the run started (block2.frozen false → true)');
  assert.match(msgs[1] ?? '', /^stages changed since the run started \(count 2 → 1; stage 1 epochs 1 → 4; stage 2 epochs 3 → \(none\) and 2 more\)$/);
});

test('epochs, optimizer, schedule, data and model files are each named', () => {
  const cases: Array<[Plan, MeasuredInputs, RegExp]> = [
    [{ ...plan, training: { ...plan.training, epochs: 5 } }, measured, /^stages changed since the run started \(stage 2 epochs 3 → 4\)$/],
    [{ ...plan, training: { ...plan.training, optimizer: 'sgd' } }, measured, /^optimizer changed since the run started \(training\.optimizer adamw → sgd; training\.weightDecay 0\.01 → 0\)$/],
    [{ ...plan, training: { ...plan.training, schedule: { type: 'linear' } } }, measured, /^training changed since the run started \(training\.schedule \{"type":"cosine"\} → \{"type":"linear"\}\)$/],
    [{ ...plan, data: { train: 'train.csv', shuffle: false } }, measured, /^data changed since the run started \(data\.shuffle true → false\)$/],
    [plan, { ...measured, trainData: 'd'.repeat(64) }, /^data changed since the run started \(training samples \(sha256\) cccccccccccc… → dddddddddddd…\)$/],
    [plan, { ...measured, modelFiles: { ...measured.modelFiles, 'weights weights.bin': 'size 60 bytes, sha256 ' + 'e'.repeat(64) } }, /^model changed since the run started \(weights weights\.bin size 64 bytes, sha256 bbbbbbbbbbbb… → size 60 bytes, sha256 eeeeeeeeeeee…\)$/],
    [{ ...plan, head: { outputs: 3 } }, measured, /^head changed since the run started \(head \(none\) → \{"outputs":3\}\)$/],
  ];
  for (const [p, m, expected] of cases) {
    const msgs = describeFingerprintChanges(fp(plan, base), fp(p, base, m));
    assert.equal(msgs.length, 1, msgs.join(' | '));
    assert.match(msgs[0] ?? '', expected);
  }
});
