/**
 * Resume: a run stopped (cancel, kill -9) and continued from its checkpoint ends with exactly the
 * per-step losses, epoch metrics and final weights of an uninterrupted run — bit for bit on cpu
 * and on wasm. A resume with a plan, model or data changed since is refused, naming the change.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendPreference } from '../../src/protocol/worker.ts';
import { selectBackend } from '../../src/engine/backend.ts';
import { CHECKPOINT_FILE, readCheckpoint } from '../../src/engine/checkpoint.ts';
import { train, type TrainOutcome } from '../../src/engine/trainer.ts';
import type { EpochMetrics, StepEvent, TrainEvent } from '../../src/core/progress.ts';
import { planText, weightsOf, workspace } from './resume-fixture.ts';
import { pollUntil, startCli } from './processes.ts';

before(async () => {
  await selectBackend('cpu', { trainableClassNames: [] });
});

interface Collected {
  steps: StepEvent[];
  logs: string[];
}

function collector(c: Collected, onStep?: (e: StepEvent) => void): (e: TrainEvent) => void {
  return (e) => {
    if (e.kind === 'step') {
      c.steps.push(e);
      onStep?.(e);
    }
    if (e.kind === 'log') c.logs.push(e.message);
  };
}

const metricsOf = (epochs: readonly EpochMetrics[]) => epochs.map(({ seconds: _s, ...rest }) => rest);

async function uninterrupted(planFile: string, outDir: string, backend: BackendPreference): Promise<{ outcome: TrainOutcome; c: Collected }> {
  const c: Collected = { steps: [], logs: [] };
  const outcome = await train({ planFile, backend, outDir, progressIntervalMs: 0, onEvent: collector(c) });
  assert.equal(outcome.report.stopped, 'completed');
  return { outcome, c };
}

/** Runs the plan, cancelling after each step in `cancelAfter`, resuming each time; returns all steps. */
async function stopAndResume(planFile: string, outDir: string, backend: BackendPreference, cancelAfter: number[]): Promise<{ outcome: TrainOutcome; c: Collected }> {
  const c: Collected = { steps: [], logs: [] };
  let outcome: TrainOutcome | undefined;
  for (let i = 0; i <= cancelAfter.length; i++) {
    const controller = new AbortController();
    const at = cancelAfter[i];
    outcome = await train({
      planFile,
      backend,
      ...(i === 0 ? { outDir } : { resumeFrom: outDir }),
      progressIntervalMs: 0,
      signal: controller.signal,
      onEvent: collector(c, (e) => {
        if (e.step === at) controller.abort();
      }),
    });
    if (at !== undefined) {
      assert.equal(outcome.report.stopped, 'cancelled', `run ${i} stops at step ${at}`);
      assert.equal(outcome.report.outputs.model, '');
      assert.equal(outcome.report.outputs.checkpoint, join(outDir, CHECKPOINT_FILE));
      assert.equal(readCheckpoint(outDir).manifest.position.globalStep, at);
    }
  }
  assert.ok(outcome);
  return { outcome, c };
}

function assertSameRun(a: { outcome: TrainOutcome; c: Collected }, b: { outcome: TrainOutcome; c: Collected }): void {
  assert.deepEqual(b.c.steps.map((s) => s.step), a.c.steps.map((s) => s.step), 'every step ran exactly once');
  a.c.steps.forEach((s, i) => assert.equal(b.c.steps[i]?.loss, s.loss, `loss at step ${s.step} bit for bit`));
  a.c.steps.forEach((s, i) => assert.deepEqual(b.c.steps[i]?.groupLrs, s.groupLrs, `group LRs at step ${s.step}`));
  assert.deepEqual(metricsOf(b.outcome.report.epochs), metricsOf(a.outcome.report.epochs), 'epoch metrics (train loss, accuracy, validation) equal');
  assert.deepEqual(b.outcome.report.best, a.outcome.report.best);
  assert.deepEqual(b.outcome.report.stages, a.outcome.report.stages);
  assert.deepEqual(b.outcome.report.groupLrByEpoch, a.outcome.report.groupLrByEpoch);
  assert.deepEqual(b.outcome.report.frozenCheck, a.outcome.report.frozenCheck);
  assert.deepEqual(b.outcome.report.lastDiagnostics, a.outcome.report.lastDiagnostics);
  assert.deepEqual(b.outcome.report.advice, a.outcome.report.advice, 'the advice reads the diagnostics from before the resume too');
  assert.equal(b.outcome.report.timings.steps, a.outcome.report.timings.steps);
  assert.ok(weightsOf(b.outcome.outDir).equals(weightsOf(a.outcome.outDir)), 'final weights (incl. BatchNorm statistics) byte for byte');
  // the run is over: its checkpoint is gone, its report says where it was resumed
  assert.ok(!existsSync(join(b.outcome.outDir, CHECKPOINT_FILE)));
}

for (const backend of ['cpu', 'wasm'] as const) {
  test(`${backend}: cancelled at a stage boundary and mid-epoch, resumed twice: losses, metrics and weights equal an uninterrupted run bit for bit`, async () => {
    // body's tiny multiplier: advice that needs the diagnostics from before the resume at step 23
    const { ws, planFile } = workspace(100, { earlyStopping: true, bodyLrMult: 0.001 });
    const a = await uninterrupted(planFile, join(ws, 'runs', 'a'), backend);
    assert.deepEqual(a.outcome.report.advice?.map((x) => x.kind === 'updateRatio' && [x.group, x.direction]), [['body', 'low']]);
    const stepsPerEpoch = Math.ceil(80 / 8);
    assert.equal(a.c.steps.length, 4 * stepsPerEpoch);
    // step 10 ends stage 1 (head only); step 23 is in the middle of epoch 3 (stage 2)
    const b = await stopAndResume(planFile, join(ws, 'runs', 'b'), backend, [stepsPerEpoch, 2 * stepsPerEpoch + 3]);
    assertSameRun(a, b);
    assert.deepEqual(b.outcome.report.resumes?.map((r) => r.step), [stepsPerEpoch, 2 * stepsPerEpoch + 3]);
    assert.ok(b.c.logs.some((l) => /^resuming .* at step 23 \(epoch 3, batch 4\)/.test(l)), b.c.logs.join('\n'));
  });
}

test('cpu: a resume that forgot the optimizer state would diverge — the comparison is sharp enough to see it', async () => {
  const { ws, planFile } = workspace(100);
  const a = await uninterrupted(planFile, join(ws, 'runs', 'a'), 'cpu');
  const controller = new AbortController();
  await train({ planFile, backend: 'cpu', outDir: join(ws, 'runs', 'b'), progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 15) controller.abort();
  } });
  // drop every Adam moment from the checkpoint (keeping its hash valid): the losses after step 15 must differ
  const dir = join(ws, 'runs', 'b');
  const m = JSON.parse(readFileSync(join(dir, CHECKPOINT_FILE), 'utf8')) as { optimizerSteps: Record<string, number>; tensors: Array<{ key: string }> };
  m.optimizerSteps = {};
  m.tensors = m.tensors.filter((t) => !/^(first|second):/.test(t.key));
  writeFileSync(join(dir, CHECKPOINT_FILE), JSON.stringify(m));
  const c: Collected = { steps: [], logs: [] };
  await train({ planFile, backend: 'cpu', resumeFrom: dir, progressIntervalMs: 0, onEvent: collector(c) });
  assert.equal(c.steps[0]?.step, 16);
  assert.equal(c.steps[0]?.loss, a.c.steps[15]?.loss, 'the first step after the resume sees the same weights');
  assert.notEqual(c.steps[1]?.loss, a.c.steps[16]?.loss, 'but its update without Adam moments differs');
});

test('kill -9 of the CLI after its first checkpoint, then `train --resume`: the final weights equal an uninterrupted run', async () => {
  // enough steps that the run is still going when the first checkpoint appears
  const { ws, planFile } = workspace(2000, { epochs: 6, batchSize: 4 });
  // the reference is a fresh CLI process too: a process that used wasm earlier (this file's wasm
  // test) computes some cpu gradients with the engine's replacement gradients (kernels/gradients.ts)
  const reference = await startCli(['train', 'layerwise.json', '--backend', 'cpu', '--out', 'runs/a', '--no-write-back'], { cwd: ws }).done;
  assert.equal(reference.code, 0, reference.stderr);
  const referenceReport = JSON.parse(readFileSync(join(ws, 'runs', 'a', 'report.json'), 'utf8')) as { epochs: EpochMetrics[] };
  const runDir = join(ws, 'runs', 'killed');
  const killed = startCli(['train', 'layerwise.json', '--backend', 'cpu', '--out', 'runs/killed', '--no-write-back'], { cwd: ws, stdout: 'ignore' });
  await pollUntil(() => existsSync(join(runDir, CHECKPOINT_FILE)) || killed.child.exitCode !== null);
  killed.child.kill('SIGKILL');
  assert.equal((await killed.done).signal, 'SIGKILL', 'the CLI was killed, not finished');
  const at = readCheckpoint(runDir).manifest.position;
  assert.ok(at.batch === 0 && at.epoch >= 1 && at.epoch < 6, `killed after an epoch-end checkpoint (${JSON.stringify(at)})`);
  assert.ok(!existsSync(join(runDir, 'report.json')));
  // the lock the killed process held names a dead pid: the resume takes it over
  assert.ok(existsSync(join(ws, 'runs', '.layerwise.json.lock')));
  const resumed = await startCli(['train', 'layerwise.json', '--backend', 'cpu', '--resume', 'runs/killed'], { cwd: ws }).done;
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /model: .*killed/);
  assert.ok(weightsOf(runDir).equals(weightsOf(join(ws, 'runs', 'a'))), 'final weights byte for byte');
  const report = JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')) as { epochs: EpochMetrics[]; resumes: Array<{ step: number }> };
  assert.deepEqual(metricsOf(report.epochs), metricsOf(referenceReport.epochs));
  assert.deepEqual(report.resumes.map((r) => r.step), [at.globalStep]);
  // results went into the plan, which is otherwise untouched
  const after = readFileSync(planFile, 'utf8');
  assert.ok(after.startsWith(planText({ epochs: 6, batchSize: 4 }).trimEnd().slice(0, -1).trimEnd()));
  assert.match(after, /"folder": "runs\/killed"/);
  assert.ok(!existsSync(join(ws, 'runs', '.layerwise.json.lock')), 'the lock is released at the end');
});

const REFUSALS: Array<[string, (ws: string, planFile: string) => void, RegExp]> = [
  ['a group multiplier', (_ws, p) => writeFileSync(p, readFileSync(p, 'utf8').replace('"lrMult": 0.38', '"lrMult": 0.5')), /cannot resume runs\/b: groups changed since the run started \(body\.lrMult 0\.38 → 0\.5\)$/],
  ['the stages', (_ws, p) => writeFileSync(p, readFileSync(p, 'utf8').replace('"epochs": 4', '"epochs": 5')), /stages changed since the run started \(stage 2 epochs 3 → 4\)/],
  ['the optimizer', (_ws, p) => writeFileSync(p, readFileSync(p, 'utf8').replace('"adamw"', '"adam"')), /optimizer changed since the run started \(training\.optimizer adamw → adam; training\.weightDecay 0\.01 → 0\)/],
  ['the model file', (ws) => {
    const f = join(ws, 'model', 'weights.bin');
    const b = readFileSync(f);
    b[0] = (b[0] ?? 0) ^ 1;
    writeFileSync(f, b);
  }, /model changed since the run started \(weights weights\.bin size \d+ bytes, sha256 \w{12}… → size \d+ bytes, sha256 \w{12}…\)/],
  ['the data', (ws) => {
    const f = join(ws, 'data', 'train.csv');
    writeFileSync(f, readFileSync(f, 'utf8').replace(/\n-?\d/, '\n9'));
  }, /data changed since the run started \(training samples \(sha256\) \w{12}… → \w{12}…\)/],
];

for (const [what, change, message] of REFUSALS) {
  test(`a resume after ${what} changed is refused, naming the change; nothing is written`, async () => {
    const { ws, planFile } = workspace(100);
    const controller = new AbortController();
    const dir = join(ws, 'runs', 'b');
    await train({ planFile, backend: 'cpu', outDir: dir, progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
      if (e.kind === 'step' && e.step === 12) controller.abort();
    } });
    const checkpointBefore = readFileSync(join(dir, CHECKPOINT_FILE));
    change(ws, planFile);
    const plan = readFileSync(planFile, 'utf8');
    await assert.rejects(train({ planFile, backend: 'cpu', resumeFrom: dir }), (e: Error & { file?: string }) => {
      assert.match(e.message, message);
      assert.equal(e.file, planFile);
      return true;
    });
    assert.ok(readFileSync(join(dir, CHECKPOINT_FILE)).equals(checkpointBefore), 'the checkpoint is kept as it was');
    assert.equal(readFileSync(planFile, 'utf8'), plan);
  });
}

test('fields that do not change the numbers (results, comments, diagnosticsEvery, output) do not block a resume', async () => {
  const { ws, planFile } = workspace(100);
  const dir = join(ws, 'runs', 'b');
  const controller = new AbortController();
  await train({ planFile, backend: 'cpu', outDir: dir, progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 5) controller.abort();
  } });
  writeFileSync(planFile, readFileSync(planFile, 'utf8').replace('// resume fixture', '// edited while stopped').replace('"diagnosticsEvery": 3', '"diagnosticsEvery": 0').replace('"output": "runs"', '"output": "runs", "results": { "note": 1 }'));
  const outcome = await train({ planFile, backend: 'cpu', resumeFrom: dir });
  assert.equal(outcome.report.stopped, 'completed');
});

test('a model with dropout: the checkpoint records the random layers and a resume says it continues correctly but not bit for bit', async () => {
  const { ws, planFile } = workspace(100);
  writeFileSync(planFile, readFileSync(planFile, 'utf8').replace('"outputs": "auto" }', '"outputs": "auto", "hidden": [8], "dropout": 0.3 }'));
  const dir = join(ws, 'runs', 'dropout');
  const controller = new AbortController();
  await train({ planFile, backend: 'cpu', outDir: dir, progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 4) controller.abort();
  } });
  assert.deepEqual(readCheckpoint(dir).manifest.randomLayers, ['head_dropout_1']);
  const c: Collected = { steps: [], logs: [] };
  const outcome = await train({ planFile, backend: 'cpu', resumeFrom: dir, progressIntervalMs: 0, onEvent: collector(c) });
  assert.equal(outcome.report.stopped, 'completed');
  assert.ok(c.logs.some((l) => /^head_dropout_1 draw unseeded random numbers while training: the resumed run continues correctly but not bit for bit/.test(l)), c.logs.join('\n'));
});
