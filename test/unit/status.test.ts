import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StepEvent } from '../../src/core/progress.ts';
import {
  formatMetric,
  formatPercent,
  isActive,
  lrSummary,
  statusAfterEvent,
  statusBarView,
  trainSummary,
  type TrainingStatus,
} from '../../src/core/status.ts';

const running = (over: Partial<Extract<TrainingStatus, { state: 'running' }>> = {}): TrainingStatus => ({
  state: 'running',
  job: 'train',
  planFile: 'layerwise.json',
  stage: 2,
  stages: 3,
  epoch: 3,
  epochs: 5,
  fraction: 0.41,
  loss: 0.312,
  ...over,
});

const step = (over: Partial<StepEvent> = {}): StepEvent => ({
  kind: 'step',
  stage: 1,
  stages: 1,
  epoch: 1,
  epochs: 1,
  step: 1,
  totalSteps: 10,
  loss: 1,
  groupLrs: [],
  etaSeconds: 0,
  ...over,
});

test('the running status bar reads exactly as the issue shows it', () => {
  assert.equal(statusBarView(running()).text, '$(sync~spin) Layerwise · stage 2/3 · epoch 3/5 · 41% · loss 0.312');
});

test('a single-stage run leaves the stage out; no loss yet leaves the loss out', () => {
  assert.equal(statusBarView(running({ stage: 1, stages: 1, loss: undefined })).text, '$(sync~spin) Layerwise · epoch 3/5 · 41%');
});

test('an LR range test shows its own label and no epochs', () => {
  const v = statusBarView(running({ job: 'findLr', fraction: 0.5, loss: 2.5 }));
  assert.equal(v.text, '$(sync~spin) Layerwise · LR test · 50% · loss 2.500');
});

test('outcomes: check, error (on the error background), stopped; idle is hidden', () => {
  const ok = statusBarView({ state: 'succeeded', job: 'train', planFile: 'p', summary: 'trained 4 epochs · val acc 0.875' });
  assert.equal(ok.text, '$(check) Layerwise · trained 4 epochs · val acc 0.875');
  assert.equal(ok.error, false);
  const failed = statusBarView({ state: 'failed', job: 'train', planFile: 'p', message: 'the worker process was killed (SIGKILL)' });
  assert.equal(failed.text, '$(error) Layerwise · training failed');
  assert.equal(failed.error, true);
  assert.match(failed.tooltip, /SIGKILL/);
  assert.equal(statusBarView({ state: 'cancelled', job: 'findLr', planFile: 'p' }).text, '$(circle-slash) Layerwise · LR test stopped');
  assert.equal(statusBarView({ state: 'idle' }).visible, false);
  assert.equal(statusBarView({ state: 'starting', job: 'train', planFile: 'p' }).visible, true);
});

test('percent is floored so 100% means done; metrics use three decimals or scientific when tiny', () => {
  assert.equal(formatPercent(0.999), '99%');
  assert.equal(formatPercent(1), '100%');
  assert.equal(formatPercent(-0.2), '0%');
  assert.equal(formatMetric(0.3124), '0.312');
  assert.equal(formatMetric(12.34567), '12.346');
  assert.equal(formatMetric(0.000123), '1.23e-4');
  assert.equal(formatMetric(0), '0.000');
  assert.equal(formatMetric(Number.NaN), 'NaN');
});

test('step events move a starting run to running with the fraction of all steps', () => {
  const s0: TrainingStatus = { state: 'starting', job: 'train', planFile: 'p' };
  const s1 = statusAfterEvent(s0, step({ stage: 2, stages: 3, epoch: 3, epochs: 5, step: 41, totalSteps: 100, loss: 0.312 }));
  assert.deepEqual(s1, { state: 'running', job: 'train', planFile: 'p', stage: 2, stages: 3, epoch: 3, epochs: 5, fraction: 0.41, loss: 0.312 });
  assert.equal(statusBarView(s1).text, '$(sync~spin) Layerwise · stage 2/3 · epoch 3/5 · 41% · loss 0.312');
});

test('a non-finite loss keeps the last finite one; stage events update the stage only', () => {
  const s1 = statusAfterEvent(running({ loss: 0.5 }), step({ loss: Number.NaN, step: 5, totalSteps: 10 }));
  assert.equal(s1.state === 'running' && s1.loss, 0.5);
  const s2 = statusAfterEvent(running({ fraction: 0.3 }), { kind: 'stage', stage: 3, stages: 3, epochs: 2, trainGroups: ['a'], lr: 1e-3 });
  assert.equal(s2.state === 'running' && s2.stage, 3);
  assert.equal(s2.state === 'running' && s2.fraction, 0.3);
});

test('events after the end do not bring a finished run back', () => {
  const done: TrainingStatus = { state: 'cancelled', job: 'train', planFile: 'p' };
  assert.equal(statusAfterEvent(done, step()), done);
  const log = statusAfterEvent(running(), { kind: 'log', level: 'info', message: 'x' });
  assert.deepEqual(log, running());
  assert.equal(isActive(running()), true);
  assert.equal(isActive(done), false);
});

test('summaries of a run and of an LR range test', () => {
  const epoch = (n: number, valLoss?: number, valAccuracy?: number) => ({ stage: 1, epoch: n, trainLoss: 0.9, valLoss, valAccuracy, seconds: 1, groupLrs: [] });
  assert.equal(trainSummary({ stopped: 'completed', epochs: [epoch(1), epoch(2, 0.4123, 0.875)] }), 'trained 2 epochs · val acc 0.875 · val loss 0.412');
  assert.equal(trainSummary({ stopped: 'earlyStopping', epochs: [epoch(1)] }), 'stopped early after 1 epoch · loss 0.900');
  assert.equal(trainSummary({ stopped: 'nonFinite', epochs: [] }), 'loss became non-finite');
  assert.equal(lrSummary({ suggested: 0.0031622, method: 'valley' }), 'suggested LR 3.16e-3 (valley)');
});

test('preparing an image folder or a big CSV file shows in the status bar until the first step', () => {
  const starting: TrainingStatus = { state: 'starting', job: 'train', planFile: '/w/p.json' };
  const checking = statusAfterEvent(starting, { kind: 'data', phase: 'checking', done: 1200, total: 50000, skipped: 3 });
  assert.equal(statusBarView(checking).text, '$(sync~spin) Layerwise · checking images 1,200/50,000 · 3 skipped');
  const counting = statusAfterEvent(starting, { kind: 'data', phase: 'counting', done: 800, total: 0, skipped: 0 });
  assert.equal(statusBarView(counting).text, '$(sync~spin) Layerwise · counting images 800');
  const reading = statusAfterEvent(starting, { kind: 'data', phase: 'reading', done: 1_200_000, total: 0, skipped: 0 });
  assert.equal(statusBarView(reading).text, '$(sync~spin) Layerwise · reading CSV rows 1,200,000');
  // a warning about a skipped image keeps the preparation on screen
  assert.deepEqual(statusAfterEvent(checking, { kind: 'log', level: 'warn', message: 'x.png: corrupt JPEG; left out' }), checking);
  const ready = statusAfterEvent(checking, { kind: 'data', phase: 'ready', done: 50000, total: 50000, skipped: 4 });
  assert.equal(statusBarView(ready).text, '$(sync~spin) Layerwise · 50,000 images ready · 4 skipped');
  // the first step replaces it with the run's progress
  const running = statusAfterEvent(ready, { kind: 'stage', stage: 1, stages: 1, epochs: 1, trainGroups: [], lr: 0.001 });
  assert.equal(running.state, 'running');
});
