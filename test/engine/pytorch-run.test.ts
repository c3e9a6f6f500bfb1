/**
 * `layerwise train` on a PyTorch plan, run for real: Debian's python3-torch executes the runner
 * generated from the plan, on one process and on two gloo ranks under torch.distributed.run.
 * What it reports is checked against the engine's own TypeScript (the timeline's per-group LR at
 * every step, the resolver's multipliers), and the two runs against each other.
 *
 * These tests need /usr/bin/python3 with torch; without it they fail (not skip), saying so.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { LayerwiseError } from '../../src/core/errors.ts';
import type { DiagnosticsEvent, StepEvent, TrainEvent } from '../../src/core/progress.ts';
import { adviseRun } from '../../src/core/advice.ts';
import { buildTimeline, groupLrsAt, resolveStages } from '../../src/core/timeline.ts';
import { isRunnerMessage, isTorchCheckpointManifest } from '../../src/protocol/runner.ts';
import { deathMessage, findLrPlan, trainPlan } from '../../src/engine/pytorch-run.ts';
import { sweepLr } from '../../src/core/lr-finder.ts';
import { prepareModel } from '../../src/engine/session.ts';
import { startCli, WorkerHarness, workerSources } from './processes.ts';

const repo = resolve(import.meta.dirname, '..', '..');
const PYTHON = '/usr/bin/python3';
const example = join(repo, 'examples', 'bert-tiny-torch');

before(() => {
  const r = spawnSync(PYTHON, ['-c', 'import torch, torch.distributed'], { encoding: 'utf8' });
  if (r.status !== 0) assert.fail(`${PYTHON} cannot import torch: install Debian's python3-torch; these tests run it and do not skip`);
});

// The example's model and task, smaller: 128 samples, global batch 16 → 8 steps an epoch.
const ENTRY = `import sys, time
sys.path.insert(0, ${JSON.stringify(example)})
import torch
from train_lw import TinyBert, TokenTask


class Slow(TokenTask):
    def __getitem__(self, i):
        time.sleep(0.03)
        return super().__getitem__(i)


def build():
    return {"model": TinyBert(), "train": TokenTask(128, seed=1), "validation": TokenTask(32, seed=2), "loss": torch.nn.CrossEntropyLoss()}


def build_slow():
    return {"model": TinyBert(), "train": Slow(128, seed=1), "validation": None, "loss": torch.nn.CrossEntropyLoss()}


class Paced(TokenTask):
    def __getitem__(self, i):
        time.sleep(0.005)
        return super().__getitem__(i)


def build_paced():
    return {"model": TinyBert(), "train": Paced(128, seed=1), "validation": TokenTask(32, seed=2), "loss": torch.nn.CrossEntropyLoss()}


class Noisy(TinyBert):
    """Dropout on the logits: every step draws from torch's RNG, which build_noisy seeds per rank."""

    def forward(self, ids):
        return torch.nn.functional.dropout(super().forward(ids), 0.3, self.training)


def build_noisy():
    import os
    torch.manual_seed(100 + int(os.environ.get("RANK", "0")))
    return {"model": Noisy(), "train": Paced(128, seed=1), "validation": TokenTask(32, seed=2), "loss": torch.nn.CrossEntropyLoss()}


class Contrary(TokenTask):
    """The training task's samples with every label flipped: the better a model fits the training
    set, the worse its loss here, so the best validation epoch is an early one."""

    def __init__(self, n, seed):
        super().__init__(n, seed)
        self.labels = 1 - self.labels


def build_contrary():
    return {"model": TinyBert(), "train": TokenTask(128, seed=1), "validation": Contrary(128, seed=1), "loss": torch.nn.CrossEntropyLoss()}


def build_wrong():
    return TinyBert()


def build_renamed():
    model = TinyBert()
    model.head = model.classifier
    del model.classifier
    return {"model": model, "train": TokenTask(16, seed=1), "validation": None, "loss": torch.nn.CrossEntropyLoss()}
`;

function workspace(pytorch: Record<string, unknown>, extra: Record<string, unknown> = {}): { dir: string; planFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-torchrun-'));
  writeFileSync(join(dir, 'parameters.json'), readFileSync(join(example, 'parameters.json')));
  writeFileSync(join(dir, 'entry.py'), ENTRY);
  const planFile = join(dir, 'layerwise.json');
  writeFileSync(
    planFile,
    JSON.stringify({
      model: 'parameters.json',
      groups: [
        { name: 'embeddings', layers: ['embeddings.*'], frozen: true },
        { name: 'base', layers: ['encoder.layer.0.*'], lrMult: 0.1 },
        { name: 'top', layers: ['encoder.layer.1.*', 'pooler.*'], lrMult: 0.5 },
        { name: 'head', layers: ['classifier.*'] },
      ],
      layers: { 'encoder.layer.1.output.dense': { lrMult: 0.25 } },
      training: { batchSize: 16, lr: 0.002, schedule: { type: 'linear', warmup: 0.25 }, seed: 3, diagnosticsEvery: 4 },
      unfreeze: { stages: [{ epochs: 1, train: ['head'] }, { epochs: 2, train: 'all', lr: 0.001 }] },
      pytorch: { entry: 'entry.py:build', python: PYTHON, ...pytorch },
      ...extra,
    }),
  );
  return { dir, planFile };
}

async function run(pytorch: Record<string, unknown>, signal?: AbortSignal, onEvent?: (e: TrainEvent) => void, extra: Record<string, unknown> = {}) {
  const { dir, planFile } = workspace(pytorch, extra);
  const events: TrainEvent[] = [];
  const outcome = await trainPlan({
    planFile,
    outDir: join(dir, 'run'),
    progressIntervalMs: 0,
    signal,
    onEvent: (e) => {
      events.push(e);
      onEvent?.(e);
    },
  });
  return { dir, planFile, outcome, events, steps: events.filter((e): e is StepEvent => e.kind === 'step') };
}

/** The largest absolute difference between the tensors of two saved state dicts. */
function maxWeightDiff(a: string, b: string): { maxDiff: number; tensors: number } {
  const r = spawnSync(PYTHON, ['-c', `import sys, json, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
assert a.keys() == b.keys()
print(json.dumps({"maxDiff": max(float((a[k].double() - b[k].double()).abs().max()) for k in a), "tensors": len(a)}))`, a, b], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { maxDiff: number; tensors: number };
}

test('2 gloo ranks and 1 process with the same global batch: same weights, and per-step LRs per group equal to the engine\'s timeline and multipliers', async () => {
  const one = await run({ nproc: 1 });
  const two = await run({ nproc: 2, backend: 'gloo' });
  const prepared = await prepareModel({ planFile: one.planFile }, { withData: false });
  const stages = resolveStages(prepared.plan, prepared.resolution, one.planFile);
  const timeline = buildTimeline(stages, 8);
  assert.equal(timeline.totalSteps, 24);

  for (const r of [one, two]) {
    const { report } = r.outcome;
    assert.equal(report.stopped, 'completed');
    assert.equal(report.timings.steps, 24);
    assert.deepEqual(r.steps.map((s) => s.step), Array.from({ length: 24 }, (_, i) => i + 1));
    assert.deepEqual(report.stages.map((s) => [s.stage, s.trainGroups, s.steps]), [[1, ['head'], 8], [2, ['base', 'top', 'head'], 16]]);
    assert.deepEqual(r.events.filter((e) => e.kind === 'stage').map((e) => e.kind === 'stage' && e.lr), [0.002, 0.001]);
    // the frozen group: every weight compared, none changed
    assert.deepEqual(report.frozenCheck, { weightsChecked: 4, unchanged: true, changed: [] });
    assert.ok(existsSync(report.outputs.model), report.outputs.model);
    assert.ok(r.events.some((e) => e.kind === 'diagnostics' && e.layers.some((l) => l.layer === 'encoder.layer.0.attention.self.query' && l.updateRatio > 0)), 'diagnostics for a stage-2 layer');
    for (const s of r.steps) {
      // what the optimizer held at the step, against the engine's timeline and the resolver's multipliers
      const engine = groupLrsAt(prepared.plan, prepared.resolution, timeline, s.step - 1);
      assert.deepEqual(s.groupLrs.map((g) => [g.group, g.trains]), engine.map((g) => [g.group, g.trains]), `step ${s.step}`);
      s.groupLrs.forEach((g, i) => {
        const want = engine[i]!.lr;
        assert.ok(Math.abs(g.lr - want) <= 1e-15 + 1e-12 * Math.abs(want), `step ${s.step} ${g.group}: runner ${g.lr}, engine ${want}`);
      });
    }
  }
  assert.equal(two.outcome.report.distributed?.nproc, 2);
  assert.equal(two.outcome.report.distributed?.replicasEqual, true, 'both ranks end with identical weights after the unfreeze');
  assert.deepEqual(one.steps.map((s) => s.groupLrs), two.steps.map((s) => s.groupLrs));
  // same global batches: rank r takes every other sample of the same permutation, DDP averages
  one.steps.forEach((s, i) => assert.ok(Math.abs(s.loss - two.steps[i]!.loss) < 1e-5, `loss at step ${s.step}: ${s.loss} vs ${two.steps[i]!.loss}`));
  const diff = maxWeightDiff(one.outcome.report.outputs.model, two.outcome.report.outputs.model);
  assert.equal(diff.tensors, 42);
  console.log(`max weight difference 1 process vs 2 ranks: ${diff.maxDiff}`);
  assert.ok(diff.maxDiff < 2e-5, `weights differ by up to ${diff.maxDiff}`);
  // the report and the results written back
  const saved = JSON.parse(readFileSync(two.outcome.reportFile, 'utf8')) as { backend: { name: string } };
  assert.equal(saved.backend.name, 'torch.distributed gloo ×2');
  assert.equal(two.outcome.results.lastRun?.epochs, 3);
});

test('stop ends the run within a step, writes no model, and leaves no process behind', async () => {
  const controller = new AbortController();
  let seen = 0;
  const r = await run({ nproc: 2, backend: 'gloo', entry: 'entry.py:build_slow' }, controller.signal, (e) => {
    if (e.kind === 'step' && seen === 0) {
      seen = e.step;
      controller.abort();
    }
  });
  assert.equal(r.outcome.report.stopped, 'cancelled');
  assert.equal(r.outcome.report.outputs.model, '');
  // a step is ~0.25 s here: the ranks saw the stop before the step after the one in flight
  assert.ok(r.outcome.report.timings.steps <= seen + 1, `stopped after ${r.outcome.report.timings.steps} steps, stop asked at ${seen}`);
  assert.deepEqual(processesOf(r.dir), []);
});

function processesOf(dir: string): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter((l) => l.includes(dir) && !l.includes('ps -eo'));
}

test('a rank killed mid-run: the others are stopped, one clear error, no orphan process', async () => {
  const { dir, planFile } = workspace({ nproc: 2, backend: 'gloo', entry: 'entry.py:build_slow' });
  let killed = '';
  await assert.rejects(
    trainPlan({
      planFile,
      outDir: join(dir, 'run'),
      progressIntervalMs: 0,
      onEvent: (e) => {
        if (e.kind !== 'step' || killed !== '') return;
        // a rank: the runner started by torch.distributed.run (not the launcher)
        const rank = processesOf(dir).find((l) => l.includes('layerwise_runner.py') && !l.includes('layerwise_launch.py'));
        assert.ok(rank !== undefined, 'a rank process');
        killed = rank.trim().split(/\s+/)[0]!;
        process.kill(Number(killed), 'SIGKILL');
      },
    }),
    (e: unknown) => {
      assert.ok(e instanceof LayerwiseError);
      assert.match(e.problem, /^rank [01] was killed by signal 9; torch\.distributed\.run stopped the other ranks/);
      return true;
    },
  );
  assert.notEqual(killed, '');
  assert.deepEqual(processesOf(dir), []);
});

test('the process that launched the ranks killed outright (SIGKILL, as a host kills a stuck worker): no rank outlives it', async () => {
  const { dir, planFile } = workspace({ nproc: 2, backend: 'gloo', entry: 'entry.py:build_slow' });
  const cli = startCli(['train', planFile, '--out', join(dir, 'run'), '--json'], { from: 'sources', stdout: 'ignore' });
  // wait until both ranks run (their runner processes show up), then kill the CLI without a chance to clean up
  for (let i = 0; i < 600 && processesOf(dir).filter((l) => l.includes('layerwise_runner.py') && !l.includes('layerwise_launch.py')).length < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(processesOf(dir).filter((l) => !l.includes('layerwise_launch.py')).length >= 2, true, 'two ranks were running');
  cli.child.kill('SIGKILL');
  await cli.done;
  for (let i = 0; i < 100 && processesOf(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(processesOf(dir), []);
});

test('the worker (the extension\'s Train) runs a PyTorch plan through the same protocol: guarded events, then the report and results', async () => {
  const { dir, planFile } = workspace({ nproc: 2, backend: 'gloo', python: 'no-such-python' });
  const w = new WorkerHarness(workerSources);
  try {
    // the setting layerwise.pythonPath wins over the plan's (missing) interpreter
    const reply = await w.ask({ type: 'train', id: 't1', planFile, workspaceRoot: dir, backend: 'cpu', progressIntervalMs: 0, python: PYTHON, outDir: join(dir, 'run') });
    assert.deepEqual(w.invalid, []);
    const events = w.messages.flatMap((m) => (m.type === 'event' ? [m.event] : []));
    assert.equal(reply.type, 'trained', JSON.stringify(reply));
    if (reply.type === 'trained') {
      assert.equal(reply.report.stopped, 'completed');
      assert.equal(reply.report.distributed?.replicasEqual, true);
      assert.equal(reply.results.lastRun?.backend, 'torch.distributed gloo ×2');
      assert.equal(reply.results.lastRun?.folder, 'run');
    }
    assert.deepEqual(events.filter((e) => e.kind === 'stage').length, 2);
    assert.equal(events.filter((e) => e.kind === 'step').length, 24);
    assert.equal(events.filter((e) => e.kind === 'epoch').length, 3);
  } finally {
    w.kill();
  }
  assert.deepEqual(processesOf(dir), []);
});

test('find-lr on a PyTorch plan: one process sweeps the engine\'s LRs (group ratios kept), stops on divergence, and writes the curve and results', async () => {
  const { dir, planFile } = workspace({ nproc: 2 });
  const steps: StepEvent[] = [];
  const r = await findLrPlan({ planFile, outDir: join(dir, 'lr'), stage: 2, options: { steps: 40, startLr: 1e-5, endLr: 100 }, onEvent: (e) => e.kind === 'step' && steps.push(e) });
  const prepared = await prepareModel({ planFile }, { withData: false });
  assert.ok(r.outcome.points.length >= 5 && r.outcome.points.length <= 40);
  assert.equal(r.outcome.stoppedEarly, r.outcome.points.length < 40);
  r.outcome.points.forEach((p, i) => assert.ok(Math.abs(p.lr - sweepLr({ startLr: 1e-5, endLr: 100, steps: 40 }, i)) <= 1e-12 * p.lr));
  for (const s of steps) {
    const lr = sweepLr({ startLr: 1e-5, endLr: 100, steps: 40 }, s.step - 1);
    for (const g of s.groupLrs) {
      const audit = prepared.resolution.groups.find((x) => x.name === g.group)!;
      assert.equal(g.trains, g.group !== 'embeddings', g.group);
      if (g.trains) assert.ok(Math.abs(g.lr - lr * audit.lrMult) <= 1e-12 * lr, `step ${s.step} ${g.group}: ${g.lr} vs ${lr * audit.lrMult}`);
    }
  }
  assert.ok(r.outcome.suggested > 0);
  assert.equal(r.results.lrFinder?.curve, join('lr', 'lr-curve.json'));
  assert.ok(existsSync(r.plotFile));
  assert.deepEqual(processesOf(dir), []);
});

test('clear errors: missing interpreter, torch missing, no such entry function, wrong return, parameter names the model lacks', async () => {
  const cases: Array<{ pytorch: Record<string, unknown>; field: string; problem: RegExp; python?: string }> = [
    { pytorch: { python: 'no-such-python3' }, field: 'pytorch.python', problem: /the Python interpreter "no-such-python3" was not found/ },
    { pytorch: {}, python: '/bin/true', field: 'python', problem: /printed something unexpected/ },
    { pytorch: { entry: 'missing.py:build' }, field: 'pytorch.entry', problem: /"missing.py" does not exist/ },
    { pytorch: { entry: '../outside.py:build' }, field: 'pytorch.entry', problem: /resolves outside the workspace folder/ },
    { pytorch: { entry: 'entry.py:buld' }, field: 'pytorch.entry', problem: /entry\.py has no function buld \(functions there: .*build.*\)/ },
    { pytorch: { entry: 'entry.py:build_wrong' }, field: 'pytorch.entry', problem: /build_wrong\(\) returned TinyBert; it must return \{"model": nn\.Module/ },
    { pytorch: { entry: 'entry.py:build_renamed' }, field: 'model', problem: /the plan's model lists 4 parameter\(s\) the model built by entry\.py:build_renamed does not have, e\.g\. classifier\.0\.weight/ },
  ];
  for (const c of cases) {
    const { dir, planFile } = workspace(c.pytorch);
    await assert.rejects(trainPlan({ planFile, outDir: join(dir, 'run'), ...(c.python !== undefined ? { python: c.python } : {}) }), (e: unknown) => {
      assert.ok(e instanceof LayerwiseError, String(e));
      assert.equal(e.field, c.field, e.message);
      assert.match(e.problem, c.problem);
      assert.ok(e.file?.endsWith('layerwise.json') || e.file?.endsWith('parameters.json'), e.message);
      return true;
    });
  }
  // a pyenv python without torch says which Python it found
  const noTorch = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (noTorch.status !== 0) {
    const { dir, planFile } = workspace({ python: 'python3' });
    await assert.rejects(trainPlan({ planFile, outDir: join(dir, 'run') }), /cannot import torch with "python3" \(Python 3\.\d+\.\d+ at .*\): ModuleNotFoundError/);
  }
});

test('the runner protocol guard refuses malformed lines, and a dead torch.distributed.run is described by rank', () => {
  assert.equal(isRunnerMessage({ kind: 'event', event: { kind: 'step', step: 1 } }), false);
  assert.equal(isRunnerMessage({ kind: 'event', event: { kind: 'log', level: 'debug', message: 'x' } }), false);
  assert.equal(isRunnerMessage({ kind: 'error', rank: 0, message: 'x', field: null, file: null }), true);
  assert.equal(isRunnerMessage({ kind: 'done', stopped: 'exploded' }), false);
  const fingerprint = { model: {}, head: {}, groups: { 'base.lrMult': 0.1 }, parameters: {}, stages: {}, optimizer: {}, training: {}, data: {} };
  const manifest = { format: 'layerwise-torch-checkpoint', version: 1, reason: 'epoch', writtenAt: 'x', planFile: 'p', checkpoint: 'checkpoint.pt', fingerprint, position: { stage: 0, epoch: 1, batch: 0, globalStep: 8 } };
  assert.equal(isTorchCheckpointManifest(manifest), true);
  assert.equal(isTorchCheckpointManifest({ ...manifest, position: { stage: 0, epoch: 1, globalStep: 8 } }), false);
  assert.equal(isTorchCheckpointManifest({ ...manifest, fingerprint: { ...fingerprint, groups: { 'base.lrMult': [0.1] } } }), false);
  // version 2 names both checkpoint files by size and sha256
  const data = { file: 'checkpoint.pt', bytes: 10, sha256: 'a'.repeat(64) };
  const v2 = { ...manifest, version: 2, data, previous: { ...data, file: 'checkpoint-previous.pt', position: manifest.position } };
  assert.equal(isTorchCheckpointManifest(v2), true);
  assert.equal(isTorchCheckpointManifest({ ...v2, previous: null }), true);
  assert.equal(isTorchCheckpointManifest({ ...v2, data: undefined }), false);
  assert.equal(isTorchCheckpointManifest({ ...v2, data: { ...data, sha256: 'xyz' } }), false);
  assert.equal(isTorchCheckpointManifest({ ...v2, previous: data }), false);
  const stderr = ['Root Cause (first observed failure):', '[0]:', '  time      : 2026-12-05_04:10:00', '  host      : box', '  rank      : 1 (local_rank: 1)', '  exitcode  : -9 (pid: 123)'];
  assert.equal(deathMessage(1, null, stderr), 'rank 1 was killed by signal 9; torch.distributed.run stopped the other ranks');
  assert.equal(deathMessage(1, null, ['Traceback', 'ValueError: boom']), 'the PyTorch run exited with code 1: ValueError: boom');
  // the survivor, failing on the broken collective, may be listed (even as root cause) before the killed rank
  const both = [
    'Failures:', '[1]:', '  rank      : 0 (local_rank: 0)', '  exitcode  : -9 (pid: 122)',
    'Root Cause (first observed failure):', '[0]:', '  rank      : 1 (local_rank: 1)', '  exitcode  : 1 (pid: 123)',
  ];
  assert.equal(deathMessage(1, null, both), 'rank 0 was killed by signal 9; torch.distributed.run stopped the other ranks');
  const noSignal = ['Failures:', '  rank      : 0 (local_rank: 0)', '  exitcode  : 2 (pid: 1)', 'Root Cause (first observed failure):', '  rank      : 1 (local_rank: 1)', '  exitcode  : 1 (pid: 2)'];
  assert.equal(deathMessage(1, null, noSignal), 'rank 1 exited with code 1; torch.distributed.run stopped the other ranks');
});

test('a best validation epoch before the last: its weights in best/ (their validation loss is the best one), the last ones as the model', async () => {
  const { dir, outcome } = await run({ nproc: 1, entry: 'entry.py:build_contrary' });
  const { report } = outcome;
  const last = report.epochs[report.epochs.length - 1]!;
  assert.ok(report.best !== undefined && report.best.epoch < last.epoch, `best ${JSON.stringify(report.best)}, last epoch ${last.epoch}`);
  assert.equal(report.outputs.best, join(dir, 'run', 'best', basename(report.outputs.model)));
  // evaluated here, independently of the runner: the saved files' validation loss
  const valLoss = (file: string): number => {
    const r = spawnSync(PYTHON, ['-c', `import sys, torch
sys.path.insert(0, sys.argv[1])
from entry import build_contrary
b = build_contrary()
state = torch.load(sys.argv[2]) if sys.argv[2].endswith(".pt") else __import__("safetensors.torch").torch.load_file(sys.argv[2])
b["model"].load_state_dict(state)
b["model"].eval()
ids = torch.stack([b["validation"][i][0] for i in range(len(b["validation"]))])
labels = torch.stack([b["validation"][i][1] for i in range(len(b["validation"]))])
with torch.no_grad():
    print(float(b["loss"](b["model"](ids), labels)))`, dir, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  const best = valLoss(report.outputs.best!);
  const final = valLoss(report.outputs.model);
  assert.ok(Math.abs(best - report.best.valLoss!) <= 1e-5, `best/ evaluates to ${best}, the report's best epoch to ${report.best.valLoss}`);
  assert.ok(Math.abs(final - last.valLoss!) <= 1e-5, `the model evaluates to ${final}, the last epoch to ${last.valLoss}`);
  assert.ok(best < final);
});

/** Flips one byte in the middle of a file (a second flip mends it). */
function flipByte(file: string): void {
  const bytes = readFileSync(file);
  const at = bytes.length >> 1;
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(file, bytes);
}

/**
 * Stops a run mid-way through stage 2, refuses a resume of a changed plan, resumes it, and
 * compares with an uninterrupted run. `damage`: before resuming, both checkpoint files are
 * damaged (refused, naming both), then the previous one is mended, and the resume continues from
 * it (the epoch end before the stop) with a warning.
 */
async function stopAndResume(nproc: number, { entry = 'entry.py:build_paced', damage = false, extra = {} as Record<string, unknown> } = {}) {
  const pytorch = { nproc, backend: 'gloo', entry };
  const whole = await run(pytorch, undefined, undefined, extra);
  const { dir, planFile } = workspace(pytorch, extra);
  const outDir = join(dir, 'run');
  const controller = new AbortController();
  const first: StepEvent[] = [];
  const stopped = await trainPlan({
    planFile,
    outDir,
    progressIntervalMs: 0,
    signal: controller.signal,
    onEvent: (e) => {
      if (e.kind !== 'step') return;
      first.push(e);
      if (e.step === 11) controller.abort();
    },
  });
  assert.equal(stopped.report.stopped, 'cancelled');
  const at = stopped.report.timings.steps;
  assert.ok(at >= 11 && at < 24, `stopped after ${at} steps`);
  assert.equal(stopped.report.outputs.checkpoint, join(outDir, 'checkpoint.json'));
  const manifest: unknown = JSON.parse(readFileSync(join(outDir, 'checkpoint.json'), 'utf8'));
  assert.ok(isTorchCheckpointManifest(manifest) && manifest.version === 2, JSON.stringify(manifest));
  assert.deepEqual(manifest.position, { stage: 1, epoch: Math.floor(at / 8), batch: at % 8, globalStep: at });
  assert.equal(manifest.reason, 'stopped');
  // the kept one is the epoch end before the stop (its stage: the one of the epoch that ended)
  const { stage: _, ...kept } = manifest.previous?.position ?? { stage: -1 };
  assert.deepEqual(kept, { epoch: Math.floor(at / 8), batch: 0, globalStep: Math.floor(at / 8) * 8 });
  // the epoch-end checkpoint before the stop is kept as the previous one
  assert.ok(existsSync(join(outDir, 'checkpoint.pt')) && existsSync(join(outDir, 'checkpoint-previous.pt')));

  // (b) a changed plan is refused, naming the change
  const original = readFileSync(planFile, 'utf8');
  const changed = JSON.parse(original) as { groups: Array<{ lrMult?: number }> };
  changed.groups[1]!.lrMult = 0.2;
  writeFileSync(planFile, JSON.stringify(changed));
  await assert.rejects(trainPlan({ planFile, resumeFrom: outDir }), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError, String(e));
    assert.equal(e.field, 'resume');
    assert.match(e.problem, /^cannot resume run: groups changed since the run started \(base\.lrMult 0\.1 → 0\.2\)/);
    return true;
  });
  writeFileSync(planFile, original);

  let from = at;
  const warnings: string[] = [];
  if (damage) {
    flipByte(join(outDir, 'checkpoint.pt'));
    flipByte(join(outDir, 'checkpoint-previous.pt'));
    await assert.rejects(trainPlan({ planFile, resumeFrom: outDir }), (e: unknown) => {
      assert.ok(e instanceof LayerwiseError, String(e));
      assert.equal(e.field, 'resume');
      assert.equal(e.file, join(outDir, 'checkpoint.pt'));
      assert.equal(
        e.problem,
        'cannot resume run: checkpoint.pt does not match the sha256 checkpoint.json records (damaged), and the previous checkpoint (checkpoint-previous.pt) does not match the sha256 checkpoint.json records (damaged)',
      );
      return true;
    });
    flipByte(join(outDir, 'checkpoint-previous.pt'));
    from = Math.floor(at / 8) * 8;
  }
  const second: StepEvent[] = [];
  const resumed = await trainPlan({
    planFile,
    resumeFrom: outDir,
    progressIntervalMs: 0,
    onEvent: (e) => {
      if (e.kind === 'step') second.push(e);
      if (e.kind === 'log' && e.level === 'warn') warnings.push(e.message);
    },
  });
  assert.deepEqual(
    warnings,
    damage ? [`checkpoint.pt in run does not match the sha256 checkpoint.json records (damaged); resuming from the previous checkpoint (checkpoint-previous.pt, step ${from} instead of ${at})`] : [],
  );
  assert.equal(resumed.report.stopped, 'completed');
  assert.equal(resumed.report.timings.steps, 24);
  assert.deepEqual(second.map((s) => s.step), Array.from({ length: 24 - from }, (_, i) => from + 1 + i));
  const steps = [...first.slice(0, from), ...second];
  assert.deepEqual(steps.map((s) => s.groupLrs), whole.steps.map((s) => s.groupLrs), 'per-step LRs');
  steps.forEach((s, i) => assert.ok(Math.abs(s.loss - whole.steps[i]!.loss) <= 1e-6, `loss at step ${s.step}: ${s.loss} vs ${whole.steps[i]!.loss}`));
  assert.deepEqual(resumed.report.stages, whole.outcome.report.stages);
  assert.deepEqual(resumed.report.epochs.map((e) => [e.stage, e.epoch, e.valLoss]), whole.outcome.report.epochs.map((e) => [e.stage, e.epoch, e.valLoss]));
  resumed.report.epochs.forEach((e, i) => assert.ok(Math.abs(e.trainLoss - whole.outcome.report.epochs[i]!.trainLoss) <= 1e-6, `epoch ${e.epoch} train loss`));
  assert.deepEqual(resumed.report.frozenCheck, { weightsChecked: 4, unchanged: true, changed: [] });
  const diff = maxWeightDiff(whole.outcome.report.outputs.model, resumed.report.outputs.model);
  console.log(`nproc ${nproc}: max weight difference stopped at step ${at} and resumed vs uninterrupted: ${diff.maxDiff}`);
  assert.ok(diff.maxDiff <= 1e-6, `weights differ by up to ${diff.maxDiff}`);
  // the runner's own window (Python) loses nothing: advice from every diagnostics event of the whole run is the same
  const allSamples = whole.events.filter((e): e is DiagnosticsEvent => e.kind === 'diagnostics');
  assert.deepEqual(whole.outcome.report.advice, adviseRun({ diagnostics: allSamples, epochs: whole.outcome.report.epochs, groups: whole.outcome.resolution.groups }));
  if (extra['groups'] !== undefined) assert.ok(whole.outcome.report.advice?.some((a) => a.kind === 'updateRatio' && a.group === 'head' && a.direction === 'low'), JSON.stringify(whole.outcome.report.advice));
  assert.deepEqual(resumed.report.advice, whole.outcome.report.advice, 'the advice reads the diagnostics from before the resume too');
  assert.equal(resumed.report.outputs.best === undefined, whole.outcome.report.outputs.best === undefined, 'a best/ copy in one run only');
  if (resumed.report.outputs.best !== undefined) assert.ok(maxWeightDiff(whole.outcome.report.outputs.best!, resumed.report.outputs.best).maxDiff <= 1e-6, 'best/ weights');
  // a finished run frees its checkpoint, as the tfjs engine does
  for (const f of ['checkpoint.json', 'checkpoint.pt', 'checkpoint-previous.pt']) assert.equal(existsSync(join(outDir, f)), false, f);
  assert.deepEqual(processesOf(dir), []);
}

test('resume (nproc 1): stopped in stage 2 mid-epoch, a changed lrMult refused by name, both checkpoint files damaged refused, then resumed from the mended previous one to the weights, per-step LRs and advice of an uninterrupted run', async () => {
  // the head's tiny multiplier and diagnostics every 2 steps: an update-ratio advice that needs the samples from before the resume
  const plan = JSON.parse(readFileSync(workspace({}).planFile, 'utf8')) as { groups: Array<{ name: string; lrMult?: number }>; training: Record<string, unknown> };
  const groups = plan.groups.map((g) => (g.name === 'head' ? { ...g, lrMult: 0.001 } : g));
  await stopAndResume(1, { damage: true, extra: { groups, training: { ...plan.training, diagnosticsEvery: 2 } } });
});

test('resume (2 gloo ranks, each rank seeded differently and drawing dropout masks): the same, each rank continuing its own random stream', async () => {
  await stopAndResume(2, { entry: 'entry.py:build_noisy' });
});

test('resume after a crash (the CLI killed outright once the epoch-1 checkpoint exists): `train --resume` continues from the epoch end to the uninterrupted weights', async () => {
  const pytorch = { nproc: 1, entry: 'entry.py:build_paced' };
  const whole = await run(pytorch);
  const { dir, planFile } = workspace(pytorch);
  const outDir = join(dir, 'run');
  const cli = (extra: string[]) => startCli(['train', planFile, ...extra, '--json', '--no-write-back'], { from: 'sources', stdout: 'ignore' });
  const first = cli(['--out', outDir]);
  const manifestFile = join(outDir, 'checkpoint.json');
  for (let i = 0; i < 600 && !existsSync(manifestFile); i++) await new Promise((r) => setTimeout(r, 50));
  first.child.kill('SIGKILL');
  await first.done;
  for (let i = 0; i < 100 && processesOf(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(processesOf(dir), []);
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { reason: string; position: { batch: number; globalStep: number } };
  assert.equal(manifest.reason, 'epoch');
  assert.equal(manifest.position.batch, 0);
  assert.ok(manifest.position.globalStep % 8 === 0 && manifest.position.globalStep < 24, JSON.stringify(manifest.position));
  assert.equal(existsSync(join(outDir, 'report.json')), false);
  // the dead CLI's run lock is stale: the resume takes it over
  const second = await cli(['--resume', outDir]).done;
  assert.equal(second.code, 0, second.stderr);
  const report = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')) as { stopped: string; timings: { steps: number }; outputs: { model: string }; epochs: Array<{ trainLoss: number }> };
  assert.equal(report.stopped, 'completed');
  assert.equal(report.timings.steps, 24);
  assert.equal(report.epochs.length, 3);
  const diff = maxWeightDiff(whole.outcome.report.outputs.model, report.outputs.model);
  console.log(`crash at step ${manifest.position.globalStep}, resumed: max weight difference ${diff.maxDiff}`);
  assert.ok(diff.maxDiff <= 1e-6, `weights differ by up to ${diff.maxDiff}`);
  assert.equal(existsSync(manifestFile), false);
});
