/**
 * The plan init writes, on the bundled example's model: it validates, resolves into the stages
 * it says, and trains as written on cpu (a new head on "features", LP-FT, BatchNorm statistics
 * fixed and checked); an LR range test of the head stage suggests that stage's own LR, one of
 * the fine-tuning stage training.lr.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initPlan } from '../../src/core/init-plan.ts';
import { validatePlanValue } from '../../src/core/validate.ts';
import { findLr } from '../../src/engine/lr-finder.ts';
import { describeModelFile } from '../../src/engine/session.ts';
import { train } from '../../src/engine/trainer.ts';

const DIR = resolve('examples/fashion');
// never written: the runs read planText, and paths resolve against this file's folder
const PLAN_FILE = join(DIR, 'init-test.layerwise.json');

test('init on the example model writes a plan that trains as written (cpu), and find-lr tunes the stage it sweeps', async () => {
  const info = await describeModelFile(join(DIR, 'model/model.json'), 'cpu');
  const plan = initPlan(info, { modelPath: 'model/model.json', data: { train: 'data/train', validation: 'data/val' }, epochs: 2, recipe: 'lp-ft' });
  assert.deepEqual(plan.head, { cut: 'features', outputs: 'auto' });
  validatePlanValue(plan, PLAN_FILE);
  const planText = JSON.stringify({ ...plan, training: { ...plan.training, batchSize: 16 } }, null, 2);

  const logs: string[] = [];
  const outDir = join(mkdtempSync(join(tmpdir(), 'layerwise-init-')), 'run');
  const outcome = await train({ planFile: PLAN_FILE, planText, backend: 'cpu', outDir, onEvent: (e) => void (e.kind === 'log' && logs.push(e.message)) });
  const { report } = outcome;
  assert.equal(report.stopped, 'completed', report.message);
  assert.deepEqual(report.stages.map((s) => [s.epochs, s.trainGroups, s.lr]), [
    [1, ['head'], 3e-3],
    [1, (plan.groups ?? []).map((g) => g.name), 1e-4],
  ]);
  assert.ok(!outcome.resolution.groups.some((g) => g.implicit), 'no implicit default group');
  assert.equal(outcome.resolution.groups.find((g) => g.name === 'head')?.layers.map((l) => l.name).join(), 'head_out');
  // BatchNorm in inference mode: both layers' moving statistics checked bit for bit, unchanged
  assert.equal(report.frozenCheck.weightsChecked, 4);
  assert.ok(report.frozenCheck.unchanged);
  assert.ok(logs.some((m) => /^stage 1: the frozen layers .* were computed once/.test(m)), logs.join('\n'));

  const lrDir = mkdtempSync(join(tmpdir(), 'layerwise-init-lr-'));
  const sweep = (stage: number) =>
    findLr({ planFile: PLAN_FILE, planText, backend: 'cpu', stage, outDir: join(lrDir, `stage${stage}`), options: { steps: 8 } });
  const head = await sweep(1);
  assert.equal(head.outcome.apply.field, 'unfreeze.stages[0].lr');
  assert.deepEqual(head.outcome.apply.path, ['unfreeze', 'stages', 0, 'lr']);
  const all = await sweep(2);
  assert.equal(all.outcome.apply.field, 'training.lr');
});
