/**
 * The exported code, executed: Debian's python3-torch runs what `layerwise export` generated, and
 * every number it produces is compared with what Layerwise itself computes — `layerwise inspect
 * --json` for each parameter's settings, the engine's schedule and timeline for every step's LR,
 * the engine's trainer (and the committed PyTorch reference) for whole trajectories.
 *
 * These tests need /usr/bin/python3 with torch; without it they fail (not skip), saying so.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/engine/backend.ts';
import { loadModel, saveModel } from '../../src/engine/model-io.ts';
import { train } from '../../src/engine/trainer.ts';
import { prepareModel, prepareRun } from '../../src/engine/session.ts';
import { LayerwiseError } from '../../src/core/errors.ts';
import type { StepEvent } from '../../src/core/progress.ts';
import { resolveGroups } from '../../src/core/groups.ts';
import type { ParamAudit, Resolution } from '../../src/core/groups.types.ts';
import type { Plan, ScheduleSpec } from '../../src/core/plan.ts';
import { pytorchModelInfo } from '../../src/core/pytorch-model.ts';
import { scheduleFactor } from '../../src/core/schedule.ts';
import { buildTimeline, paramLr, resolveStages, scheduleFactorAt, stageAt } from '../../src/core/timeline.ts';
import { exportPlan } from '../../src/core/export/index.ts';
import { torchCaseB } from '../fixtures/torch-reference.ts';
import { runCli, WorkerHarness, workerSources } from './processes.ts';

const repo = resolve(import.meta.dirname, '..', '..');
const PYTHON = '/usr/bin/python3';
const driver = join(repo, 'test', 'python', 'export_driver.py');

let torchProblem: string | undefined;
before(async () => {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.status !== 0) {
    torchProblem = `${PYTHON} cannot import torch (${(r.stderr || r.error?.message || '').trim().split('\n').pop()}): install Debian's python3-torch (apt-get install python3-torch, as .ci/run does); the export tests run the generated code and do not skip`;
  }
  await selectBackend('cpu', { trainableClassNames: [] });
});

function requireTorch(): void {
  if (torchProblem !== undefined) assert.fail(torchProblem);
}

function py<T>(command: string, args: Record<string, unknown>): T {
  requireTorch();
  // no __pycache__ beside the committed example or the driver
  const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  const r = spawnSync(PYTHON, [driver, command, JSON.stringify(args)], { encoding: 'utf8', cwd: join(repo, 'test', 'python'), env, maxBuffer: 256 << 20 });
  if (r.status !== 0) assert.fail(`python ${command} failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface NamedShape {
  name: string;
  shape: number[];
}

/** A workspace with the BERT-like torch model's named_parameters() as a plan-only model, and the plan. */
function workspace(plan: Record<string, unknown>, model: Record<string, unknown> = {}): { dir: string; planFile: string; names: NamedShape[] } {
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-export-'));
  const names = py<NamedShape[]>('names', { model });
  writeFileSync(join(dir, 'parameters.json'), JSON.stringify(names));
  const planFile = join(dir, 'layerwise.json');
  writeFileSync(planFile, JSON.stringify({ model: 'parameters.json', ...plan }, null, 2));
  return { dir, planFile, names };
}

function exportTo(planFile: string, target: string, out: string): string {
  const r = runCli(['export', planFile, '--to', target, '--out', out], { from: 'sources' });
  assert.equal(r.code, 0, r.stderr);
  return readFileSync(out, 'utf8');
}

function inspectJson(planFile: string): { resolution: Resolution } {
  const r = runCli(['inspect', planFile, '--json'], { from: 'sources' });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { resolution: Resolution };
}

function close(a: number, b: number, rel = 1e-12): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)) || Math.abs(a - b) <= 1e-300;
}

// Every rule at once: globs, a regex, first-match precedence, a frozen group, a preset filling
// multipliers, per-layer overrides (lrMult, weightDecay beating noDecay, frozen), a group weight
// decay, a noDecay pattern, stages with their own LR, and a BatchNorm in the head.
const RICH_PLAN = {
  groups: [
    { name: 'emb', layers: ['embeddings.*'], weightDecay: 0.05 },
    { name: 'low', layers: ['re:encoder\\.layer\\.[0-3]\\..*'], frozen: true },
    { name: 'mid', layers: ['encoder.layer.?.*'] },
    { name: 'top', layers: ['encoder.layer.1?.*', 'pooler.dense'] },
    { name: 'head', layers: ['classifier.*'], lrMult: 1 },
  ],
  discriminative: { type: 'ulmfit' },
  layers: {
    'encoder.layer.5.attention.self.query': { lrMult: 0.003, weightDecay: 0.2 },
    'encoder.layer.11.output.LayerNorm': { weightDecay: 0.1 },
    'pooler.dense': { frozen: true },
  },
  training: {
    lr: 2e-4,
    weightDecay: 0.02,
    noDecay: ['bias', 'norm', '*.token_type_embeddings.weight'],
    schedule: { type: 'cosine', warmup: 0.25 },
  },
  unfreeze: {
    stages: [
      { epochs: 1, train: ['head'] },
      { epochs: 1, train: ['top', 'head'], lr: 1e-4 },
      { epochs: 2, train: 'all' },
    ],
  },
};
const MODEL = { batchnorm: true };

test('every parameter of the generated param_groups has the lr, weight decay and trainable state `layerwise inspect --json` reports', () => {
  const ws = workspace(RICH_PLAN, MODEL);
  exportTo(ws.planFile, 'pytorch', join(ws.dir, 'plan.py'));
  const { resolution } = inspectJson(ws.planFile);
  const audit = new Map(resolution.params.map((p) => [p.name, p]));
  const got = py<{
    settings: Array<{ name: string; group: string; lr: number; weightDecay: number; frozen: boolean }>;
    stages: Array<Array<{ name: string; inOptimizer: boolean; requiresGrad: boolean; lr: number | null; weightDecay: number | null }>>;
  }>('groups', { module: join(ws.dir, 'plan.py'), model: MODEL });

  assert.equal(got.settings.length, ws.names.length);
  assert.equal(resolution.params.length, ws.names.length);
  for (const s of got.settings) {
    const a = audit.get(s.name)!;
    assert.ok(a, `inspect lists ${s.name}`);
    assert.equal(s.group, a.group, `${s.name}: group`);
    assert.ok(close(s.lr, a.effectiveLr), `${s.name}: lr ${s.lr} vs ${a.effectiveLr}`);
    assert.equal(s.weightDecay, a.weightDecay, `${s.name}: weight decay`);
    assert.equal(s.frozen, a.frozen, `${s.name}: frozen`);
  }
  // the plan exercises what it claims to
  const some = (f: (p: ParamAudit) => boolean) => assert.ok(resolution.params.some(f));
  some((p) => p.frozen && p.group === 'low');
  some((p) => p.frozen && p.frozenRule.source === 'layers');
  some((p) => p.weightDecayRule.source === 'layers' && p.weightDecay === 0.1);
  some((p) => p.weightDecayRule.detail === 'noDecay "*.token_type_embeddings.weight"');
  some((p) => p.weightDecayRule.detail === 'noDecay "bias" (1-D weight)');
  some((p) => p.lrMultRule.source === 'discriminative');

  // per stage: in the optimizer exactly when not frozen and the group trains; lr = stage LR × mult
  const plan = JSON.parse(readFileSync(ws.planFile, 'utf8')) as Plan;
  const stages = resolveStages(plan, resolution);
  assert.equal(got.stages.length, stages.length);
  got.stages.forEach((rows, k) => {
    const stage = stages[k]!;
    for (const r of rows) {
      const a = audit.get(r.name)!;
      const trains = !a.frozen && stage.trainGroups.includes(a.group);
      assert.equal(r.inOptimizer, trains, `stage ${k + 1}, ${r.name}: in the optimizer`);
      assert.equal(r.requiresGrad, trains, `stage ${k + 1}, ${r.name}: requires_grad`);
      if (trains) {
        assert.ok(close(r.lr!, stage.lr * a.lrMult), `stage ${k + 1}, ${r.name}: lr ${r.lr} vs ${stage.lr * a.lrMult}`);
        assert.equal(r.weightDecay, a.weightDecay);
      }
    }
  });
});

// ---- the schedule: the Python transcription against src/core/schedule.ts ----------------------

const SCHEDULES: ScheduleSpec[] = [
  { type: 'constant' },
  { type: 'constant', warmup: 0.1 },
  { type: 'constant', warmup: 3 },
  { type: 'linear' },
  { type: 'linear', warmup: 0.1 },
  { type: 'linear', warmup: 0.29 },
  { type: 'linear', warmup: 5 },
  { type: 'cosine' },
  { type: 'cosine', warmup: 0.3 },
  { type: 'cosine', warmup: 4 },
  { type: 'stlr' },
  { type: 'stlr', cutFrac: 0.2, ratio: 16 },
  { type: 'stlr', cutFrac: 0.15, ratio: 10 },
  { type: 'onecycle' },
  { type: 'onecycle', pctStart: 0.3, divFactor: 10, finalDivFactor: 100 },
  { type: 'onecycle', pctStart: 0.01 },
];
const SCHEDULE_T = [1, 2, 3, 7, 10, 24, 100, 101, 997];

test('the exported schedule_factor equals the engine\'s scheduleFactor for every schedule type at every step', () => {
  requireTorch();
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-schedule-'));
  const model = pytorchModelInfo([{ name: 'fc.weight', shape: [2, 2], trainable: true }], 'x', 'given');
  const modules = SCHEDULES.map((schedule, i) => {
    const plan: Plan = { model: 'x', training: { schedule } };
    const resolution = resolveGroups(model, plan);
    const file = join(dir, `schedule_${i}.py`);
    writeFileSync(file, exportPlan('pytorch', { plan, resolution, stages: resolveStages(plan, resolution), model, planName: 'x' }));
    return file;
  });
  const got = py<Array<Record<string, number[]>>>('schedule', { modules, T: SCHEDULE_T });
  let compared = 0;
  let exact = 0;
  let worst = 0;
  SCHEDULES.forEach((spec, i) => {
    for (const T of SCHEDULE_T) {
      const values = got[i]![String(T)]!;
      assert.equal(values.length, T + 3);
      values.forEach((v, t) => {
        const want = scheduleFactor(spec, t, T);
        const err = Math.abs(v - want);
        worst = Math.max(worst, err);
        assert.ok(err <= 4e-16, `${JSON.stringify(spec)} T=${T} t=${t}: python ${v}, engine ${want}`);
        compared++;
        if (v === want) exact++;
      });
    }
  });
  assert.ok(compared > 20_000);
  // the transcription is operation for operation: all but a last-bit cosine difference is identical
  assert.ok(exact / compared > 0.99, `${exact} of ${compared} values identical (worst difference ${worst})`);
});

// ---- stages: apply_stage + PlanSchedule, step by step ------------------------------------------

interface LrRun {
  steps: Array<{ step: number; stage: number; lrs: Record<string, number>; requiresGrad: Record<string, boolean>; bnTraining: boolean | null; bnMean: number[] | null }>;
  transitions: Array<{ kind: 'before_stage' | 'after_stage'; step: number; stage: number; state: Record<string, { step: number; expAvgSum: number }>; groups: number }>;
}

const STAGED_PLAN = (scope: 'stage' | 'run') => ({
  groups: [
    { name: 'body', layers: ['embeddings.*', 'encoder.*'] },
    { name: 'top', layers: ['pooler.*', 'classifier.bn'] },
    { name: 'head', layers: ['classifier.*'] },
  ],
  discriminative: { type: 'layerDecay', gamma: 0.5 },
  training: { lr: 1e-3, schedule: { type: 'stlr', cutFrac: 0.25, ratio: 8, scope } },
  unfreeze: {
    stages: [
      { epochs: 1, train: ['head'] },
      { epochs: 1, train: ['top', 'head'], lr: 5e-4 },
      { epochs: 2, train: 'all' },
    ],
  },
});
const STAGED_MODEL = { layers: 2, batchnorm: true };
const STEPS_PER_EPOCH = 3;

function expectedLrs(plan: Plan, resolution: Resolution, step: number, spe: number): Map<string, number> {
  const timeline = buildTimeline(resolveStages(plan, resolution), spe);
  const stage = stageAt(timeline, step);
  const factor = scheduleFactorAt(plan, timeline, step);
  const out = new Map<string, number>();
  for (const p of resolution.params) {
    if (p.trainable && !p.frozen && stage.trainGroups.includes(p.group)) out.set(p.name, paramLr(stage, p.lrMult, factor));
  }
  return out;
}

for (const scope of ['stage', 'run'] as const) {
  test(`apply_stage keeps old state, starts new groups fresh, and PlanSchedule schedules them (scope ${scope})`, () => {
    const ws = workspace(STAGED_PLAN(scope), STAGED_MODEL);
    const module = join(ws.dir, 'plan.py');
    exportTo(ws.planFile, 'pytorch', module);
    const plan = JSON.parse(readFileSync(ws.planFile, 'utf8')) as Plan;
    const { resolution } = inspectJson(ws.planFile);
    const run = py<LrRun>('lrs', { module, model: STAGED_MODEL, stepsPerEpoch: STEPS_PER_EPOCH });

    assert.equal(run.steps.length, 4 * STEPS_PER_EPOCH);
    for (const s of run.steps) {
      const want = expectedLrs(plan, resolution, s.step, STEPS_PER_EPOCH);
      assert.deepEqual(Object.keys(s.lrs).sort(), [...want.keys()].sort(), `step ${s.step}: the parameters in the optimizer`);
      for (const [name, lr] of want) assert.ok(close(s.lrs[name]!, lr), `step ${s.step} ${name}: lr ${s.lrs[name]} vs engine ${lr}`);
      for (const [name, rg] of Object.entries(s.requiresGrad)) assert.equal(rg, want.has(name), `step ${s.step} ${name}: requires_grad`);
    }
    // a group that joins later is on the schedule from its first step, not at a constant peak
    const joined = run.steps.filter((s) => s.stage === 1).map((s) => s.lrs['pooler.dense.weight']!);
    assert.equal(new Set(joined).size, STEPS_PER_EPOCH, `pooler lr varies over stage 2: ${joined.join(', ')}`);

    // state: kept for parameters that keep training, fresh for those that join
    for (const k of [1, 2]) {
      const before = run.transitions.find((t) => t.kind === 'before_stage' && t.stage === k)!;
      const after = run.transitions.find((t) => t.kind === 'after_stage' && t.stage === k)!;
      const head = 'classifier.fc2.weight';
      assert.deepEqual(after.state[head], before.state[head], `stage ${k + 1}: the head's AdamW state is kept`);
      assert.equal(before.state[head]!.step, k * STEPS_PER_EPOCH);
      const joining = k === 1 ? 'pooler.dense.weight' : 'encoder.layer.0.attention.self.query.weight';
      assert.equal(before.state[joining], undefined);
      assert.equal(after.state[joining], undefined, `stage ${k + 1}: ${joining} starts with no state`);
      assert.ok(after.groups > before.groups, `stage ${k + 1}: new param groups were added`);
    }
    // a BatchNorm whose parameters do not train runs in inference mode: its statistics stand still
    const stage1 = run.steps.filter((s) => s.stage === 0);
    assert.ok(stage1.every((s) => s.bnTraining === false));
    assert.ok(stage1.every((s) => JSON.stringify(s.bnMean) === JSON.stringify(stage1[0]!.bnMean)), 'frozen BatchNorm statistics unchanged');
    const stage2 = run.steps.filter((s) => s.stage === 1);
    assert.ok(stage2.every((s) => s.bnTraining === true));
    assert.notDeepEqual(stage2[stage2.length - 1]!.bnMean, stage2[0]!.bnMean, 'unfrozen BatchNorm statistics move');
  });
}

test('batchNorm "inference": the exported code runs a training BatchNorm in eval mode, its statistics fixed, its weight and bias trained', () => {
  const ws = workspace({ ...STAGED_PLAN('stage'), layers: { 'classifier.bn': { batchNorm: 'inference' } } }, STAGED_MODEL);
  const module = join(ws.dir, 'plan.py');
  exportTo(ws.planFile, 'pytorch', module);
  const run = py<LrRun>('lrs', { module, model: STAGED_MODEL, stepsPerEpoch: STEPS_PER_EPOCH });
  const stage2 = run.steps.filter((s) => s.stage === 1);
  assert.ok(stage2.length > 0);
  assert.ok(stage2.every((s) => s.bnTraining === false), 'BatchNorm in eval mode while its group trains');
  assert.ok(stage2.every((s) => s.requiresGrad['classifier.bn.weight'] === true && s.lrs['classifier.bn.weight']! > 0), 'gamma still trains');
  assert.ok(run.steps.every((s) => JSON.stringify(s.bnMean) === JSON.stringify(run.steps[0]!.bnMean)), 'running statistics never move');
});

test('control: a LambdaLR built before later stages leaves their groups at a constant LR (what PlanSchedule prevents)', () => {
  const ws = workspace(STAGED_PLAN('stage'), STAGED_MODEL);
  const module = join(ws.dir, 'plan.py');
  exportTo(ws.planFile, 'pytorch', module);
  const plan = JSON.parse(readFileSync(ws.planFile, 'utf8')) as Plan;
  const { resolution } = inspectJson(ws.planFile);
  const run = py<LrRun>('lrs', { module, model: STAGED_MODEL, stepsPerEpoch: STEPS_PER_EPOCH, naive: true });
  const joined = run.steps.filter((s) => s.stage === 1).map((s) => s.lrs['pooler.dense.weight']!);
  assert.equal(new Set(joined).size, 1, `the late group stays at one LR: ${joined.join(', ')}`);
  const wrong = run.steps.filter((s) => {
    const want = expectedLrs(plan, resolution, s.step, STEPS_PER_EPOCH);
    return [...want].some(([name, lr]) => !close(s.lrs[name] ?? NaN, lr));
  });
  assert.ok(wrong.length > 0, 'the comparison above would catch it');
});

// ---- whole runs against the engine and the PyTorch reference -----------------------------------

const caseB = torchCaseB();

/** Case B's model as a plan-only PyTorch model: Linear modules dense_1 and dense_2. */
function mlpWorkspace(plan: Record<string, unknown>): { dir: string; planFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-export-mlp-'));
  const names = [
    { name: 'dense_1.weight', shape: [5, 6] },
    { name: 'dense_1.bias', shape: [5] },
    { name: 'dense_2.weight', shape: [3, 5] },
    { name: 'dense_2.bias', shape: [3] },
  ];
  writeFileSync(join(dir, 'parameters.json'), JSON.stringify(names));
  const planFile = join(dir, 'layerwise.json');
  writeFileSync(planFile, JSON.stringify({ model: 'parameters.json', ...plan }, null, 2));
  return { dir, planFile };
}

function runMlp(planFile: string, dir: string, batchSize: number): { losses: number[]; trajectory: number[][] } {
  const module = join(dir, 'plan.py');
  exportTo(planFile, 'pytorch', module);
  return py('mlp', { module, case: { ...caseB, batchSize } });
}

function maxRelError(got: readonly number[], want: readonly number[]): number {
  assert.equal(got.length, want.length);
  return got.reduce((m, g, i) => Math.max(m, Math.abs(g - want[i]!) / Math.max(1e-3, Math.abs(want[i]!))), 0);
}

test('the generated optimizer and schedule reproduce the PyTorch reference run the engine matches (Case B)', () => {
  const training = caseB.plan['training'] as { batchSize: number; epochs: number };
  const ws = mlpWorkspace({ ...caseB.plan, data: undefined });
  const got = runMlp(ws.planFile, ws.dir, training.batchSize);
  assert.equal(got.losses.length, caseB.steps);
  got.losses.forEach((l, t) => assert.ok(Math.abs(l - caseB.losses[t]!) < 1e-6, `loss at step ${t}: ${l} vs ${caseB.losses[t]}`));
  got.trajectory.forEach((w, t) => {
    const err = maxRelError(w, caseB.trajectory[t]!);
    assert.ok(err < 1e-6, `weights after step ${t}: max relative error ${err}`);
  });
});

async function writeTfjsReferenceModel(dir: string): Promise<void> {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [6], units: 5, activation: 'relu', name: 'dense_1' }));
  m.add(tf.layers.dense({ units: 3, name: 'dense_2' }));
  m.setWeights(caseB.paramOrder.map((n) => tf.tensor(caseB.initial[n]!, caseB.shapes[n])));
  await saveModel(m, dir);
  m.dispose();
}

test('with stages and a schedule, the exported code trains the same trajectory as the engine', async () => {
  const plan = {
    task: 'classification',
    training: { batchSize: 4, lr: 1e-2, optimizer: 'adamw', weightDecay: 0.01, schedule: { type: 'cosine', warmup: 0.3 } },
    groups: [
      { name: 'dense_1', layers: ['dense_1'], lrMult: 0.3 },
      { name: 'dense_2', layers: ['dense_2'] },
    ],
    unfreeze: { stages: [{ epochs: 1, train: ['dense_2'] }, { epochs: 2, train: 'all', lr: 5e-3 }] },
  };
  // the engine, on the tfjs twin of the model
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-export-engine-'));
  await writeTfjsReferenceModel(join(dir, 'model'));
  mkdirSync(join(dir, 'data'));
  const header = [...Array.from({ length: 6 }, (_, i) => `f${i}`), 'label'].join(',');
  const rows = caseB.labels.map((l, r) => [...caseB.x.slice(r * 6, (r + 1) * 6).map(String), String(l)].join(','));
  writeFileSync(join(dir, 'data', 'train.csv'), [header, ...rows].join('\n') + '\n');
  writeFileSync(join(dir, 'layerwise.json'), JSON.stringify({ model: 'model/model.json', data: { train: 'data/train.csv', label: 'label', shuffle: false }, ...plan }));
  const losses: number[] = [];
  const outcome = await train({
    planFile: join(dir, 'layerwise.json'),
    backend: 'cpu',
    outDir: join(dir, 'runs', 'r'),
    progressIntervalMs: 0,
    onEvent: (e) => {
      if (e.kind === 'step') losses.push((e as StepEvent).loss);
    },
  });
  const m = await loadModel(outcome.report.outputs.model);
  const engineWeights = m.layers.flatMap((l) => l.weights.flatMap((w) => Array.from(w.read().dataSync())));
  m.dispose();

  // the exported code, on the PyTorch model with the same weights and data
  const ws = mlpWorkspace(plan);
  const got = runMlp(ws.planFile, ws.dir, 4);
  assert.equal(got.losses.length, losses.length);
  got.losses.forEach((l, t) => assert.ok(Math.abs(l - losses[t]!) < 1e-5, `loss at step ${t}: python ${l} vs engine ${losses[t]}`));
  const err = maxRelError(got.trajectory[got.trajectory.length - 1]!, engineWeights);
  assert.ok(err < 2e-5, `final weights: max relative error ${err}`);
  // stage 1 trained only dense_2: dense_1 unchanged through it
  const dense1 = (w: number[]) => w.slice(0, 35).map(Math.fround);
  assert.deepEqual(dense1(got.trajectory[2]!), dense1(caseB.paramOrder.flatMap((n) => caseB.initial[n]!)));
});

// ---- hf-trainer and mmengine -------------------------------------------------------------------

function pyCompile(file: string): void {
  requireTorch();
  const r = spawnSync(PYTHON, ['-m', 'py_compile', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

test('hf-trainer: compiles, has the Trainer subclass and the stage callback, and under a stand-in Trainer loop gives the engine\'s LR at every step', () => {
  const ws = workspace(STAGED_PLAN('stage'), STAGED_MODEL);
  const file = join(ws.dir, 'plan_hf.py');
  const text = exportTo(ws.planFile, 'hf-trainer', file);
  pyCompile(file);
  assert.match(text, /^from transformers import Trainer, TrainerCallback$/m);
  assert.match(text, /^class LayerwiseTrainer\(Trainer\):$/m);
  assert.match(text, /^ {4}def create_optimizer\(self, \*args, \*\*kwargs\):$/m);
  assert.match(text, /^ {4}def create_scheduler\(self, num_training_steps, optimizer=None\):$/m);
  assert.match(text, /^class LayerwiseStages\(TrainerCallback\):$/m);
  assert.match(text, /^ {4}def on_epoch_begin\(self, args, state, control, model=None, optimizer=None, \*\*kwargs\):$/m);

  const plan = JSON.parse(readFileSync(ws.planFile, 'utf8')) as Plan;
  const { resolution } = inspectJson(ws.planFile);
  // the stand-in wraps the optimizer as accelerate does (an AcceleratedOptimizer IS a torch Optimizer),
  // and train() runs twice on one Trainer: the second run gets a fresh schedule (_created_lr_scheduler)
  const run = py<{ steps: HfStep[]; again: HfStep[] }>('hf', { module: file, model: STAGED_MODEL, stepsPerEpoch: STEPS_PER_EPOCH, again: true });
  assert.equal(run.steps.length, 4 * STEPS_PER_EPOCH);
  assert.equal(run.again.length, 4 * STEPS_PER_EPOCH);
  for (const [label, steps] of [['first train()', run.steps], ['second train()', run.again]] as const) {
    for (const s of steps) {
      const want = expectedLrs(plan, resolution, s.step, STEPS_PER_EPOCH);
      assert.deepEqual(Object.keys(s.lrs).sort(), [...want.keys()].sort(), `${label} step ${s.step}`);
      for (const [name, lr] of want) assert.ok(close(s.lrs[name]!, lr), `${label} step ${s.step} ${name}: ${s.lrs[name]} vs ${lr}`);
    }
  }
  const wrongEpochs = py<{ error?: string }>('hf', { module: file, model: STAGED_MODEL, stepsPerEpoch: 2, epochs: 3 });
  assert.match(wrongEpochs.error ?? '', /set num_train_epochs=4/);
});

interface HfStep {
  step: number;
  lrs: Record<string, number>;
}

test('hf-trainer: resuming mid-epoch in stage 3 from a checkpoint loads the stage-3 optimizer and continues the LRs and weights of an uninterrupted run', () => {
  const ws = workspace(STAGED_PLAN('stage'), STAGED_MODEL);
  const file = join(ws.dir, 'plan_hf.py');
  exportTo(ws.planFile, 'hf-trainer', file);
  const plan = JSON.parse(readFileSync(ws.planFile, 'utf8')) as Plan;
  const { resolution } = inspectJson(ws.planFile);
  // step 8 of 12 (3 an epoch): 2 steps into epoch 3, the first of stage 3 ("all")
  const r = py<{ whole: HfStep[]; resumed: HfStep[]; maxWeightDiff: number; error?: string }>('hf_resume', {
    module: file, model: STAGED_MODEL, stepsPerEpoch: STEPS_PER_EPOCH, saveAt: 8, checkpoint: join(ws.dir, 'checkpoint-8'),
  });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.resumed.map((s) => s.step), [8, 9, 10, 11]);
  for (const s of r.resumed) {
    const want = expectedLrs(plan, resolution, s.step, STEPS_PER_EPOCH);
    assert.deepEqual(Object.keys(s.lrs).sort(), [...want.keys()].sort(), `resumed step ${s.step}`);
    for (const [name, lr] of want) assert.ok(close(s.lrs[name]!, lr), `resumed step ${s.step} ${name}: ${s.lrs[name]} vs ${lr}`);
  }
  assert.ok(r.maxWeightDiff < 1e-6, `resumed weights differ from the uninterrupted run's by ${r.maxWeightDiff}`);
});

test('hf-trainer: on 2 gloo ranks under DDP, parameters unfrozen by a later stage are all-reduced (both ranks end with the same weights)', () => {
  const ws = workspace(STAGED_PLAN('stage'), STAGED_MODEL);
  const file = join(ws.dir, 'plan_hf.py');
  exportTo(ws.planFile, 'hf-trainer', file);
  const r = py<{ differ: string[]; params: number }>('hf_ddp', { module: file, model: STAGED_MODEL, stepsPerEpoch: STEPS_PER_EPOCH });
  assert.ok(r.params > 0);
  assert.deepEqual(r.differ, []);
});

test('mmengine: compiles, and MMEngine\'s custom_keys matching gives every parameter the lr and weight decay of `inspect` (frozen: 0 and 0)', () => {
  const ws = workspace(RICH_PLAN, MODEL);
  const file = join(ws.dir, 'plan_mm.py');
  const text = exportTo(ws.planFile, 'mmengine', file);
  pyCompile(file);
  assert.match(text, /^optim_wrapper = dict\($/m);
  assert.match(text, /paramwise_cfg=dict\(\n {8}bypass_duplicate=True,\n {8}custom_keys=\{/);
  assert.match(text, /expanded into one key per layer they take:\n# "re:encoder/);
  assert.match(text, /Unfreezing stages/);
  const { resolution } = inspectJson(ws.planFile);
  const audit = new Map(resolution.params.map((p) => [p.name, p]));
  const got = py<{ rows: Array<{ name: string; lr: number; weight_decay: number; requires_grad: boolean }>; optimizer: string }>('mmengine', { config: file, model: MODEL });
  assert.equal(got.optimizer, 'AdamW');
  assert.equal(got.rows.length, resolution.params.length);
  for (const r of got.rows) {
    const a = audit.get(r.name)!;
    if (a.frozen) {
      // frozen in effect under any constructor: no step, no decay (the step test below runs one)
      assert.deepEqual([r.lr, r.weight_decay], [0, 0], `${r.name}: frozen`);
      continue;
    }
    assert.ok(close(r.lr, a.effectiveLr, 1e-9), `${r.name}: lr ${r.lr} vs ${a.effectiveLr}`);
    assert.ok(close(r.weight_decay, a.weightDecay, 1e-9), `${r.name}: weight decay ${r.weight_decay} vs ${a.weightDecay}`);
  }
});

test('mmengine: under a constructor that does not freeze (MMEngine 0.11.0rc0\'s add_params), one real step leaves every frozen weight bit-identical and trains the rest at inspect\'s LR; tied weights build', () => {
  const ws = workspace(RICH_PLAN, MODEL);
  const file = join(ws.dir, 'plan_mm.py');
  const text = exportTo(ws.planFile, 'mmengine', file);
  const { resolution } = inspectJson(ws.planFile);
  const audit = new Map(resolution.params.map((p) => [p.name, p]));
  const got = py<{ rows: Array<{ name: string; lr: number; weight_decay: number; changed: boolean }>; error?: string }>('mmengine_step', { config: file, model: MODEL });
  assert.equal(got.error, undefined);
  assert.equal(got.rows.length, resolution.params.length);
  const frozen = got.rows.filter((r) => audit.get(r.name)!.frozen);
  assert.ok(frozen.length > 0);
  for (const r of frozen) assert.equal(r.changed, false, `${r.name} is frozen by the plan but one step changed it`);
  for (const r of got.rows.filter((x) => !audit.get(x.name)!.frozen)) {
    const a = audit.get(r.name)!;
    assert.ok(close(r.lr, a.effectiveLr, 1e-9), `${r.name}: lr ${r.lr} vs ${a.effectiveLr}`);
    assert.ok(close(r.weight_decay, a.weightDecay, 1e-9), `${r.name}: weight decay ${r.weight_decay} vs ${a.weightDecay}`);
  }
  // the comments say what the config does: no claim that MMEngine freezes
  assert.doesNotMatch(text, /MMEngine sets requires_grad=False/);
  assert.match(text, /bypass_duplicate=True/);
  const tied = py<{ rows: unknown[]; error?: string }>('mmengine_step', { config: file, model: MODEL, tie: true });
  assert.equal(tied.error, undefined, 'a tied embedding/decoder weight builds (bypass_duplicate)');
});

// ---- the seed's example ------------------------------------------------------------------------

test('examples/bert-seed: the committed PyTorch export is what the CLI generates now, and it runs on BERT\'s names', () => {
  const committed = readFileSync(join(repo, 'examples', 'bert-seed', 'layerwise_plan.py'), 'utf8');
  const r = runCli(['export', 'examples/bert-seed/layerwise.json', '--to', 'pytorch'], { from: 'sources' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, committed, 'examples/bert-seed/layerwise_plan.py is stale: run `layerwise export examples/bert-seed/layerwise.json --to pytorch --out examples/bert-seed/layerwise_plan.py` from the repository root');

  // the toy BERT has the real model's names: every parameter lands in the group inspect reports
  const { resolution } = inspectJson(join(repo, 'examples', 'bert-seed', 'layerwise.json'));
  const audit = new Map(resolution.params.map((p) => [p.name, p]));
  const got = py<{ settings: Array<{ name: string; group: string; lr: number; weightDecay: number }> }>('groups', {
    module: join(repo, 'examples', 'bert-seed', 'layerwise_plan.py'),
    model: { head_hidden: 128 },
  });
  assert.equal(got.settings.length, resolution.params.length);
  for (const s of got.settings) {
    const a = audit.get(s.name);
    assert.ok(a, `${s.name} is in parameters.json`);
    assert.equal(s.group, a.group, s.name);
    assert.ok(close(s.lr, a.effectiveLr), s.name);
    assert.equal(s.weightDecay, a.weightDecay, s.name);
  }
});

test('the seed snippet\'s defects, as the README states them, are what torch does with it', () => {
  const r = py<{
    automodel: { error?: string; groupSizes: number[]; headParamsFrozenByStage1: number; headParams: number };
    sequenceClassification: {
      groupSizes: number[];
      frozenParamsInStage1Optimizer: number;
      baseRequiresGradInStage2: boolean;
      headStateAfterStage1: number;
      headStateInStage2Optimizer: number;
      oneDimParamsDecayedInStage2: number;
    };
  }>('seed', {});
  assert.equal(r.automodel.error, 'some parameters appear in more than one parameter group');
  assert.equal(r.automodel.headParamsFrozenByStage1, r.automodel.headParams);
  const s = r.sequenceClassification;
  assert.equal(s.groupSizes[1], 0, 'the "extra" group is empty');
  assert.equal(s.frozenParamsInStage1Optimizer, s.groupSizes[0], 'every frozen parameter is handed to the optimizer');
  assert.equal(s.baseRequiresGradInStage2, false, 'stage 2 never unfreezes the base');
  assert.equal(s.headStateAfterStage1, 4);
  assert.equal(s.headStateInStage2Optimizer, 0, 'stage 2 starts the head\'s AdamW state over');
  assert.ok(s.oneDimParamsDecayedInStage2 > 0, 'biases and LayerNorm weights are decayed');
});

// ---- plan-only models in the engine and the CLI ------------------------------------------------

test('plan-only models: described without tfjs, inspected and initialised by the CLI; train and find-lr refuse and point to export', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-plan-only-'));
  writeFileSync(join(dir, 'parameters.json'), readFileSync(join(repo, 'examples', 'bert-seed', 'parameters.json')));
  const planFile = join(dir, 'layerwise.json');
  writeFileSync(planFile, JSON.stringify({ model: 'parameters.json', data: { train: 'train.csv' }, groups: [{ name: 'head', layers: ['classifier.*'] }] }));

  const prepared = await prepareModel({ planFile }, { withData: 'ifNeeded' });
  assert.equal(prepared.kind, 'pytorch');
  assert.equal(prepared.model, undefined);
  assert.equal(prepared.info.layers.length, 103);
  assert.equal(prepared.resolution.params.length, 203);

  await assert.rejects(prepareRun({ planFile }), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError);
    assert.equal(e.field, 'model');
    assert.match(e.problem, /plan-only PyTorch model .* run "layerwise export layerwise\.json --to pytorch"/);
    return true;
  });
  for (const command of ['train', 'find-lr']) {
    const r = runCli([command, planFile], { from: 'sources', cwd: dir });
    assert.equal(r.code, 1, `${command}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /layerwise export layerwise\.json --to pytorch/);
  }

  writeFileSync(planFile, JSON.stringify({ model: 'parameters.json', head: { outputs: 2 } }));
  await assert.rejects(prepareModel({ planFile }, { withData: false }), (e: unknown) => e instanceof LayerwiseError && e.field === 'head');

  const inspect = runCli(['inspect', join(dir, 'parameters.json')], { from: 'sources', cwd: dir });
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, /^plan-only PyTorch model/);
  assert.match(inspect.stdout, /embeddings\.LayerNorm\.weight \[768\] .* \[wd: noDecay "bias" \(1-D weight\)\]/);
  const init = runCli(['init', 'parameters.json', '--out', 'bert.layerwise.json', '--json'], { from: 'sources', cwd: dir });
  assert.equal(init.code, 0, init.stderr);
  const initPlan = (JSON.parse(init.stdout) as { plan: Plan }).plan;
  assert.equal(initPlan.model, 'parameters.json');
  assert.ok((initPlan.groups ?? []).some((g) => g.layers.includes('encoder.layer.0.*')), JSON.stringify(initPlan.groups));
  const exported = runCli(['export', 'bert.layerwise.json', '--to', 'mmengine'], { from: 'sources', cwd: dir });
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /^optim_wrapper = dict\(/m);
  const usage = runCli(['export', 'bert.layerwise.json', '--to', 'keras'], { from: 'sources', cwd: dir });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--to must be one of pytorch, hf-trainer, mmengine/);
});

test('the worker describes plan-only models (a plan, and a bare parameter list) and refuses to train them without a pytorch entry', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-worker-plan-only-'));
  writeFileSync(join(dir, 'parameters.json'), readFileSync(join(repo, 'examples', 'bert-seed', 'parameters.json')));
  const planFile = join(dir, 'layerwise.json');
  writeFileSync(planFile, JSON.stringify({ model: 'parameters.json' }));
  const w = new WorkerHarness(workerSources);
  try {
    const target = { planFile, workspaceRoot: dir, backend: 'cpu' as const };
    const described = await w.ask({ type: 'describe', id: 'd1', ...target });
    assert.equal(described.type, 'described');
    if (described.type === 'described') {
      assert.equal(described.model.kind, 'pytorch');
      assert.equal(described.model.layers.length, 103);
    }
    const bare = await w.ask({ type: 'describeModel', id: 'd2', modelFile: join(dir, 'parameters.json'), workspaceRoot: dir, backend: 'cpu' });
    assert.equal(bare.type === 'described' && bare.model.layers[0]!.name, 'embeddings.word_embeddings');
    const trained = await w.ask({ type: 'train', id: 't1', ...target, progressIntervalMs: 250 });
    assert.equal(trained.type, 'failed');
    if (trained.type === 'failed') {
      assert.equal(trained.problem.field, 'pytorch');
      assert.match(trained.problem.message, /add "pytorch": \{ "entry": .*"layerwise export layerwise\.json --to pytorch"/);
    }
  } finally {
    w.kill();
  }
});
