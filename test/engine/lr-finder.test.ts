/**
 * The LR range test on a real model: one global scale keeps the group ratios at every step,
 * group mode moves one group only, divergence stops the sweep, and the model comes back
 * bit-identical (weights and BatchNorm statistics).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { selectBackend } from '../../src/engine/backend.ts';
import { findLrPrepared } from '../../src/engine/lr-finder.ts';
import { prepareRun } from '../../src/engine/session.ts';
import { LR_FINDER_DEFAULTS } from '../../src/core/lr-finder.ts';
import type { StepEvent, TrainEvent } from '../../src/core/progress.ts';

const repo = resolve(import.meta.dirname, '..', '..');

before(async () => {
  await selectBackend('cpu', { trainableClassNames: [] });
});

function workspace(training = '{ "batchSize": 8, "lr": 0.01 }'): string {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-lr-'));
  cpSync(join(repo, 'test/fixtures/models/mlp'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test/fixtures/data/mlp'), join(ws, 'data'), { recursive: true });
  writeFileSync(
    join(ws, 'layerwise.json'),
    `{
      "model": "model/model.json",
      "data": { "train": "data/train.csv", "label": "species" },
      "training": ${training},
      "groups": [{ "name": "body", "layers": ["dense", "batch_normalization"] }, { "name": "top", "layers": ["dense_1"] }],
      "discriminative": { "type": "ulmfit", "factor": 4 }
    }`,
  );
  return join(ws, 'layerwise.json');
}

const steps = (events: TrainEvent[]) => events.filter((e): e is StepEvent => e.kind === 'step');

test('global sweep: exponential base LR, group ratios kept at every step, weights restored bit for bit', async () => {
  const planFile = workspace();
  const run = await prepareRun({ planFile, backend: 'cpu' });
  const before = run.params.map((p) => Buffer.from((p.variable.dataSync() as Float32Array).slice().buffer));
  const events: TrainEvent[] = [];
  const r = await findLrPrepared(run, { ...LR_FINDER_DEFAULTS, steps: 40, endLr: 1 }, { outDir: join(planFile, '..', 'out'), onEvent: (e) => events.push(e) });
  const s = steps(events);
  assert.ok(s.length >= 10);
  s.forEach((e, i) => {
    const body = e.groupLrs.find((g) => g.group === 'body')!.lr;
    const top = e.groupLrs.find((g) => g.group === 'top')!.lr;
    const expected = 1e-7 * Math.pow(1e7, i / 39);
    assert.ok(Math.abs(top - expected) / expected < 1e-12, `step ${i}: top ${top} vs ${expected}`);
    assert.ok(Math.abs(top / body - 4) < 1e-9, `ratio at step ${i}`);
  });
  const after = run.params.map((p) => Buffer.from((p.variable.dataSync() as Float32Array).slice().buffer));
  before.forEach((b, i) => assert.ok(b.equals(after[i]!), `${run.params[i]!.audit.name} restored`));
  assert.ok(run.params.some((p) => p.audit.name.endsWith('moving_mean')), 'BatchNorm statistics are among the restored weights');
  assert.equal(r.outcome.apply.field, 'training.lr');
  assert.ok(existsSync(r.curveFile) && readFileSync(r.plotFile, 'utf8').startsWith('<svg'));
  const curve = JSON.parse(readFileSync(r.curveFile, 'utf8')) as { points: unknown[]; suggestions: Record<string, number> };
  assert.equal(curve.points.length, r.outcome.points.length);
  run.model.dispose();
});

test('group sweep moves only that group; the suggestion becomes its multiplier', async () => {
  const planFile = workspace();
  const run = await prepareRun({ planFile, backend: 'cpu' });
  const events: TrainEvent[] = [];
  const r = await findLrPrepared(run, { ...LR_FINDER_DEFAULTS, mode: 'group', group: 'body', steps: 30, endLr: 1 }, { outDir: join(planFile, '..', 'out'), onEvent: (e) => events.push(e) });
  const s = steps(events);
  const tops = new Set(s.map((e) => e.groupLrs.find((g) => g.group === 'top')!.lr));
  assert.deepEqual([...tops], [0.01]);
  const bodies = s.map((e) => e.groupLrs.find((g) => g.group === 'body')!.lr);
  assert.ok(bodies.every((v, i) => i === 0 || v > bodies[i - 1]!));
  assert.equal(r.outcome.apply.field, 'groups[0].lrMult');
  assert.equal(r.outcome.apply.value, Number((r.outcome.suggested / 0.01).toPrecision(3)));
  assert.equal(r.outcome.suggested, Number(r.outcome.suggested.toPrecision(3)));
  run.model.dispose();
});

test('a diverging loss stops the sweep early (smoothed loss above 4× its best)', async () => {
  const planFile = workspace('{ "batchSize": 8, "lr": 0.01, "optimizer": "sgd" }');
  const run = await prepareRun({ planFile, backend: 'cpu' });
  const r = await findLrPrepared(run, { ...LR_FINDER_DEFAULTS, startLr: 1e-3, endLr: 1e6, steps: 100 }, { outDir: join(planFile, '..', 'out') });
  assert.equal(r.outcome.stoppedEarly, true);
  assert.ok(r.outcome.points.length < 100);
  run.model.dispose();
});
