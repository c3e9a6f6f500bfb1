/**
 * `layerwise train` for a plan-only PyTorch model with a `pytorch` entry: generates the runner
 * (src/core/export/runner.ts) into the run folder and launches it — plain Python for one
 * process, `python -m torch.distributed.run` for more — relaying its guarded JSON lines as the
 * engine's TrainEvents. Stop asks the ranks to end after the current step (a stop file rank 0
 * polls and all-reduces); a rank that dies makes torch.distributed.run stop the others, and the
 * whole process group is killed on the way out, so no rank outlives the run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { ADVICE_LIMITS, adviseRun } from '../core/advice.ts';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { LayerwiseError } from '../core/errors.ts';
import { exportRunner, LAUNCHER, RUNNER_LINE_PREFIX } from '../core/export/runner.ts';
import { resolvePlanPath } from '../core/paths.ts';
import { DEFAULTS, type PlanResults } from '../core/plan.ts';
import type { RunReport, StepEvent, TrainEvent } from '../core/progress.ts';
import { planOnlyFormat } from '../core/pytorch-model.ts';
import { resolveStages } from '../core/timeline.ts';
import { CHECKPOINT_FILE } from '../core/interrupted-runs.ts';
import { describeFingerprintChanges, runFingerprint, type RunFingerprint } from '../core/run-fingerprint.ts';
import { acquireRunLock } from '../core/run-lock.ts';
import { errnoText, fileIdentity, fileSha256 } from './checkpoint.ts';
import { isRunnerMessage, isTorchCheckpointManifest, type RunnerDone, type RunnerError, type RunnerStarted } from '../protocol/runner.ts';
import { LossSmoother, shouldStop, sweepLr, type LrCurvePoint } from '../core/lr-finder.ts';
import { findLr, finishLrFinder, groupApply, groupMult, lrFinderOptions, type FindLrOptions, type FindLrResult } from './lr-finder.ts';
import { assertNewRunFolder, outputRoot, prepareModel, readPlan, type PreparedModel } from './session.ts';
import { defaultOutDir, resolvedPlan, resolveOutDir, train, type TrainOptions, type TrainOutcome } from './trainer.ts';

export interface PlanTrainOptions extends TrainOptions {
  /** The Python interpreter; wins over the plan's `pytorch.python` (CLI --python, setting layerwise.pythonPath). */
  python?: string;
  /** Milliseconds between a stop request and killing the ranks that did not stop (default 30 s). */
  stopGraceMs?: number;
}

/** Trains any plan: a tfjs model in this process, a plan-only PyTorch model with a `pytorch` entry on torch. */
export async function trainPlan(opts: PlanTrainOptions): Promise<TrainOutcome> {
  const { plan, workspaceRoot } = readPlan(opts);
  const modelPath = resolvePlanPath(opts.planFile, plan.model, 'model', workspaceRoot);
  if (planOnlyFormat(modelPath) === undefined) {
    if (plan.pytorch !== undefined) {
      throw new LayerwiseError('trains a plan-only PyTorch model (a .safetensors checkpoint or a parameter list); this plan\'s "model" is a TensorFlow.js model, which Layerwise trains itself: remove "pytorch"', {
        file: opts.planFile,
        field: 'pytorch',
      });
    }
    return train(opts);
  }
  if (plan.pytorch === undefined) {
    throw new LayerwiseError(
      `${JSON.stringify(plan.model)} is a plan-only PyTorch model: add "pytorch": { "entry": "train_lw.py:build", "nproc": 1 } (a function that builds the model, the datasets and the loss; see the README) to train it with torch, or run "layerwise export ${basename(opts.planFile)} --to pytorch" and train with the exported code`,
      { file: opts.planFile, field: 'pytorch' },
    );
  }
  const prepared = await prepareModel(opts, { withData: false });
  if (prepared.kind !== 'pytorch') throw new Error('a plan-only model prepared as tfjs');
  const outDir = resolveOutDir(prepared, opts);
  const fingerprint = torchFingerprint(prepared);
  let resume: string | undefined;
  if (opts.resumeFrom !== undefined) resume = checkTorchResume(prepared, outDir, fingerprint, opts.onEvent);
  else assertNewRunFolder(outDir);
  const lock = acquireRunLock(outputRoot(prepared), prepared.planFile, outDir);
  try {
    return await trainPytorch(prepared, { ...opts, outDir }, { fingerprint, resume });
  } finally {
    lock.release();
  }
}

/** The checkpoint files the runner writes into its run folder (runner.ts save_checkpoint). */
const TORCH_CHECKPOINT_FILES = [CHECKPOINT_FILE, 'checkpoint.json.tmp', 'checkpoint.pt', 'checkpoint.pt.tmp', 'checkpoint-previous.pt'];

/**
 * What a PyTorch run's numbers depend on: the engine's fingerprint (core/run-fingerprint.ts) of the
 * plan, with the plan-only model's file, and the entry (its file builds the model, data and loss)
 * in place of the data the engine measures itself.
 */
export function torchFingerprint(prepared: PytorchPrepared): RunFingerprint {
  const { plan, planFile, workspaceRoot, resolution } = prepared;
  const modelFiles: Record<string, string> = { [plan.model]: fileIdentity(resolvePlanPath(planFile, plan.model, 'model', workspaceRoot)) };
  const spec = plan.pytorch;
  const entryRel = spec === undefined ? undefined : spec.entry.slice(0, spec.entry.lastIndexOf(':'));
  const entryFile = entryRel === undefined ? undefined : resolvePlanPath(planFile, entryRel, 'pytorch.entry', workspaceRoot);
  const fp = runFingerprint(plan, resolution, resolveStages(plan, resolution, planFile), { modelFiles, trainData: '(built by pytorch.entry)', trainSamples: 0 });
  fp.model['pytorch.entry'] = spec?.entry ?? null;
  if (entryRel !== undefined && entryFile !== undefined) fp.model[entryRel] = fileIdentity(entryFile);
  return fp;
}

/** The checkpoint.pt to continue from in `folder`, or a refusal naming what changed since that run started. */
function checkTorchResume(prepared: PytorchPrepared, folder: string, now: RunFingerprint, onEvent: PlanTrainOptions['onEvent']): string {
  const where = relative(dirname(prepared.planFile), folder) || folder;
  const manifestFile = join(folder, CHECKPOINT_FILE);
  if (!existsSync(manifestFile)) {
    throw new LayerwiseError(`cannot resume ${where}: it holds no checkpoint (${CHECKPOINT_FILE}); a run that finished removes its checkpoint`, { file: folder, field: 'resume' });
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  } catch (e) {
    throw new LayerwiseError(`cannot resume ${where}: ${CHECKPOINT_FILE} is not readable JSON (${(e as Error).message})`, { file: manifestFile, field: 'resume' });
  }
  if (!isTorchCheckpointManifest(manifest)) {
    throw new LayerwiseError(`cannot resume ${where}: ${CHECKPOINT_FILE} is not a checkpoint of a PyTorch run`, { file: manifestFile, field: 'resume' });
  }
  if (resolve(manifest.planFile) !== resolve(prepared.planFile)) {
    throw new LayerwiseError(`cannot resume ${where}: it is a run of ${manifest.planFile}, not of this plan`, { file: prepared.planFile, field: 'resume' });
  }
  const changes = describeFingerprintChanges(manifest.fingerprint, now);
  if (changes.length > 0) throw new LayerwiseError(`cannot resume ${where}: ${changes.join('; ')}`, { file: prepared.planFile, field: 'resume' });
  const checkpoint = join(folder, basename(manifest.checkpoint));
  const previous = join(folder, 'checkpoint-previous.pt');
  const warn = (message: string): void => onEvent?.({ kind: 'log', level: 'warn', message });
  if (manifest.data === undefined) {
    // version 1 (no identities): a crash between keeping the old checkpoint and renaming the new one into place leaves the previous one whole
    if (existsSync(checkpoint)) return checkpoint;
    if (existsSync(previous)) {
      warn(`${basename(checkpoint)} is missing in ${where}; resuming from the previous checkpoint (checkpoint-previous.pt)`);
      return previous;
    }
    throw new LayerwiseError(`cannot resume ${where}: ${basename(checkpoint)} is missing`, { file: folder, field: 'resume' });
  }
  const data = manifest.data;
  const state = (file: string, want: { bytes: number; sha256: string }): string | undefined => {
    if (!existsSync(file)) return 'is missing';
    let got: { bytes: number; sha256: string };
    try {
      got = fileSha256(file);
    } catch (e) {
      return `cannot be read (${errnoText(e)})`;
    }
    if (got.bytes !== want.bytes) return `is ${got.bytes} bytes, not the ${want.bytes} ${CHECKPOINT_FILE} records (damaged)`;
    return got.sha256 === want.sha256 ? undefined : `does not match the sha256 ${CHECKPOINT_FILE} records (damaged)`;
  };
  const problem = state(checkpoint, data);
  if (problem === undefined) return checkpoint;
  // killed between renaming the new checkpoint into place and writing its manifest: the one the manifest names was just kept as the previous one
  if (existsSync(previous) && state(previous, data) === undefined) return previous;
  const before = manifest.previous;
  const previousProblem = before ? state(previous, before) : 'was not kept';
  if (before && previousProblem === undefined) {
    warn(`${basename(checkpoint)} in ${where} ${problem}; resuming from the previous checkpoint (checkpoint-previous.pt, step ${before.position.globalStep} instead of ${manifest.position.globalStep})`);
    return previous;
  }
  throw new LayerwiseError(`cannot resume ${where}: ${basename(checkpoint)} ${problem}, and the previous checkpoint (checkpoint-previous.pt) ${previousProblem}`, {
    file: checkpoint,
    field: 'resume',
  });
}

/** The LR range test on any plan: tfjs in this process, a PyTorch plan with a `pytorch` entry on one torch process. */
export async function findLrPlan(opts: FindLrOptions & { python?: string }): Promise<FindLrResult> {
  const { plan, workspaceRoot } = readPlan(opts);
  const modelPath = resolvePlanPath(opts.planFile, plan.model, 'model', workspaceRoot);
  if (planOnlyFormat(modelPath) === undefined || plan.pytorch === undefined) return findLr(opts);
  const o = lrFinderOptions(opts.options);
  const prepared = await prepareModel(opts, { withData: false });
  if (prepared.kind !== 'pytorch') throw new Error('a plan-only model prepared as tfjs');
  const { resolution } = prepared;
  const stages = resolveStages(plan, resolution, opts.planFile);
  const stageIndex = (opts.stage ?? 1) - 1;
  const stage = stages[stageIndex];
  if (stage === undefined) throw new LayerwiseError(`the plan has ${stages.length} stage(s); there is no stage ${stageIndex + 1}`, { field: 'stage' });
  if (stage.trainGroups.length === 0) throw new LayerwiseError('nothing trains in that stage, so there is no learning rate to find', { file: opts.planFile });
  let sweptGroup: string | undefined;
  if (o.mode === 'group') {
    sweptGroup = o.group;
    if (sweptGroup === undefined || !stage.trainGroups.includes(sweptGroup)) {
      throw new LayerwiseError(`group mode needs the name of a group that trains in stage ${stageIndex + 1} (groups: ${stage.trainGroups.join(', ')})`, { field: 'group' });
    }
  }
  // the engine's sweep (core/lr-finder.ts): global moves every group, ratios kept; group moves one
  const swept = Array.from({ length: o.steps }, (_, i) => sweepLr(o, i));
  const sweep = swept.map((lr) =>
    resolution.groups.map((g) => (sweptGroup === undefined ? lr : g.name === sweptGroup ? lr / groupMult(prepared, g.name) : stage.lr)),
  );
  const outDir = opts.outDir ?? defaultOutDir(prepared, 'lr-find-');
  assertNewRunFolder(outDir);
  const stopFile = join(outDir, STOP_FILE);
  const smoother = new LossSmoother(o.beta);
  const points: LrCurvePoint[] = [];
  let stoppedEarly = false;
  const onEvent = (e: TrainEvent) => {
    if (e.kind === 'step' && !stoppedEarly) {
      const lr = swept[e.step - 1] ?? NaN;
      const { smoothed, best } = smoother.add(e.loss);
      points.push({ lr, loss: e.loss, smoothed });
      // the runner checks the file before its next step
      if (shouldStop(smoothed, best, o.divergeFactor) && e.step > 1) {
        stoppedEarly = true;
        writeFileSync(stopFile, 'diverged\n');
      }
    }
    opts.onEvent?.(e);
  };
  const { done } = await launchRunner(prepared, { planFile: opts.planFile, python: opts.python, signal: opts.signal, onEvent, progressIntervalMs: 0 }, {
    mode: { kind: 'findLr', stage: stageIndex, sweep },
    outDir,
    nproc: 1,
  });
  if (opts.signal?.aborted) throw new LayerwiseError('the LR range test was cancelled');
  const apply = (suggested: number) =>
    sweptGroup === undefined
      ? { field: 'training.lr', path: ['training', 'lr'], value: suggested }
      : groupApply(prepared, sweptGroup, Number((suggested / stage.lr).toPrecision(3)));
  return finishLrFinder({ points, o, sweptGroup, stoppedEarly: stoppedEarly || done.steps < o.steps, stage: stageIndex + 1, apply, outDir, planFile: opts.planFile });
}

interface PythonProbe {
  python: string;
  executable: string;
  torch?: string;
  distributed?: boolean;
  cuda?: boolean;
  error?: string;
}

const PROBE = `import json, sys
out = {"python": sys.version.split()[0], "executable": sys.executable}
try:
    import torch, torch.distributed
    out.update(torch=torch.__version__, distributed=torch.distributed.is_available(), cuda=torch.cuda.is_available())
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))`;

/** Which field named the interpreter, for messages. */
function pythonSource(opts: PlanTrainOptions): string {
  return opts.python !== undefined ? 'the interpreter given by --python or the setting layerwise.pythonPath' : 'pytorch.python';
}

/** Runs the interpreter once to learn its Python and torch versions; one clear error when either is missing. */
export function probePython(python: string, where: { file: string; field: string; source: string }): PythonProbe {
  const r = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  const err = r.error as NodeJS.ErrnoException | undefined;
  if (err?.code === 'ENOENT') {
    throw new LayerwiseError(`the Python interpreter ${JSON.stringify(python)} was not found (${where.source}); install Python 3 with torch or name the interpreter that has it`, where);
  }
  if (err !== undefined || r.status !== 0) {
    const tail = (r.stderr || err?.message || '').trim().split('\n').pop() ?? '';
    throw new LayerwiseError(`the Python interpreter ${JSON.stringify(python)} did not run (${err?.code ?? `exit ${r.status}`}): ${tail}`, where);
  }
  let probe: unknown;
  try {
    probe = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  } catch {
    throw new LayerwiseError(`the Python interpreter ${JSON.stringify(python)} printed something unexpected: ${r.stdout.slice(0, 200)}`, where);
  }
  const p = probe as Partial<PythonProbe>;
  if (typeof probe !== 'object' || probe === null || typeof p.python !== 'string') {
    throw new LayerwiseError(`the Python interpreter ${JSON.stringify(python)} printed something unexpected`, where);
  }
  if (typeof p.error === 'string' || typeof p.torch !== 'string') {
    throw new LayerwiseError(`cannot import torch with ${JSON.stringify(python)} (Python ${p.python} at ${String(p.executable)}): ${String(p.error)}; install PyTorch for this interpreter or name another one`, where);
  }
  const [major = 0, minor = 0] = p.torch.split('.').map((x) => parseInt(x, 10));
  if (major < 1 || (major === 1 && minor < 10)) {
    throw new LayerwiseError(`torch ${p.torch} (Python ${p.python}) is too old: torch.distributed.run needs torch 1.10 or newer`, where);
  }
  if (p.distributed !== true) throw new LayerwiseError(`torch ${p.torch} (Python ${p.python}) was built without torch.distributed`, where);
  return p as PythonProbe;
}

/** How long the ranks may take to shut down after the runner's last message before they are killed. */
const DONE_GRACE_MS = 10_000;

/** The stop file rank 0 polls before every step. */
export const STOP_FILE = '.layerwise-stop';

type PytorchPrepared = Extract<PreparedModel, { kind: 'pytorch' }>;

interface RunnerLaunch {
  /** 'train', or 'findLr' with the per-step factor of every group (cfg.groups order). */
  mode: { kind: 'train' } | { kind: 'findLr'; stage: number; sweep: number[][] };
  outDir: string;
  /** Ranks to start (find-lr: always 1). */
  nproc: number;
  /** Written into every checkpoint manifest (train only). */
  fingerprint?: RunFingerprint;
  /** The checkpoint.pt to continue from. */
  resume?: string;
}

/** Writes the runner, its configuration (and the launcher) into the run folder and runs it to the end. */
async function launchRunner(prepared: PytorchPrepared, opts: PlanTrainOptions, launch: RunnerLaunch): Promise<RanksOutcome> {
  const { plan, planFile, workspaceRoot, resolution, info } = prepared;
  const spec = plan.pytorch;
  if (spec === undefined) throw new Error('a PyTorch run without a pytorch entry');
  const emit = opts.onEvent ?? (() => undefined);
  const colon = spec.entry.lastIndexOf(':');
  const entryRel = spec.entry.slice(0, colon);
  const entryFunction = spec.entry.slice(colon + 1);
  const entryFile = resolvePlanPath(planFile, entryRel, 'pytorch.entry', workspaceRoot);
  if (!existsSync(entryFile) || !statSync(entryFile).isFile()) {
    throw new LayerwiseError(`${JSON.stringify(entryRel)} does not exist (it is read relative to the plan's folder)`, { file: planFile, field: 'pytorch.entry' });
  }
  const { nproc, outDir } = launch;
  const backend = spec.backend ?? 'auto';
  const python = opts.python ?? spec.python ?? 'python3';
  const probe = probePython(python, { file: planFile, field: opts.python !== undefined ? 'python' : 'pytorch.python', source: pythonSource(opts) });
  if (backend === 'nccl' && probe.cuda !== true) {
    throw new LayerwiseError(`"nccl" needs CUDA, which torch ${probe.torch} here does not have; use "gloo" (or "auto")`, { file: planFile, field: 'pytorch.backend' });
  }
  const training = plan.training ?? {};
  const stages = resolveStages(plan, resolution, planFile);
  // the plan-only model is a list of names, usually beside the plan: a run folder below it is fine, the folder itself is not
  if (resolve(outDir) === dirname(resolvePlanPath(planFile, plan.model, 'model', workspaceRoot))) {
    throw new LayerwiseError(`the output folder ${outDir} is the model's folder; a run writes into a folder of its own`, { file: planFile, field: 'output' });
  }
  mkdirSync(outDir, { recursive: true });
  const planName = (relative(workspaceRoot, planFile) || basename(planFile)).split('\\').join('/');
  const runnerFile = join(outDir, 'layerwise_runner.py');
  writeFileSync(runnerFile, exportRunner({ plan, resolution, stages, model: info, planName, command: `layerwise train ${planName}` }));
  const stopFile = join(outDir, STOP_FILE);
  rmSync(stopFile, { force: true });
  const configFile = join(outDir, 'layerwise_run.json');
  const modelFile = resolvePlanPath(planFile, plan.model, 'model', workspaceRoot);
  writeFileSync(
    configFile,
    JSON.stringify(
      {
        mode: launch.mode,
        planFile,
        fingerprint: launch.fingerprint ?? null,
        resume: launch.resume ?? null,
        entry: spec.entry,
        entryFile,
        entryFunction,
        modelFile,
        outDir,
        stopFile,
        backend,
        batchSize: training.batchSize ?? DEFAULTS.batchSize,
        seed: plan.data?.seed ?? training.seed ?? DEFAULTS.seed,
        shuffle: plan.data?.shuffle ?? DEFAULTS.shuffle,
        diagnosticsEvery: training.diagnosticsEvery ?? DEFAULTS.diagnosticsEvery,
        adviceWindow: ADVICE_LIMITS.window,
        earlyStopping: training.earlyStopping ?? null,
        groups: resolution.groups.map((g) => ({ name: g.name, lrMult: g.lrMult })),
        planParams: resolution.params.filter((p) => p.trainable).map((p) => ({ name: p.name, shape: p.shape ?? null })),
      },
      null,
      2,
    ) + '\n',
  );

  const launcherFile = join(outDir, 'layerwise_launch.py');
  if (nproc > 1) writeFileSync(launcherFile, LAUNCHER);
  const args = nproc === 1
    ? [runnerFile, configFile]
    : [
        launcherFile,
        // --standalone would always rendezvous on localhost:29400: two runs at once (two plans, a
        // test beside a run) would meet in one store. A free port per run keeps them apart.
        '--rdzv_backend', 'c10d', '--rdzv_endpoint', `localhost:${await freePort()}`, '--rdzv_id', randomUUID(),
        '--nnodes', '1', '--nproc_per_node', String(nproc), '--max_restarts', '0', '--monitor_interval', '1', runnerFile, configFile,
      ];
  emit({ kind: 'log', level: 'info', message: `${python} (Python ${probe.python}, torch ${probe.torch}): ${nproc === 1 ? '1 process' : `${nproc} processes under torch.distributed.run`}` });
  try {
    return await runRanks(python, args, dirname(entryFile), opts, stopFile);
  } finally {
    rmSync(stopFile, { force: true });
  }
}

export async function trainPytorch(prepared: PytorchPrepared, opts: PlanTrainOptions, run: { fingerprint?: RunFingerprint; resume?: string } = {}): Promise<TrainOutcome> {
  const { plan, planFile, resolution } = prepared;
  const emit = opts.onEvent ?? (() => undefined);
  const training = plan.training ?? {};
  const batchSize = training.batchSize ?? DEFAULTS.batchSize;
  const outDir = opts.outDir ?? defaultOutDir(prepared);
  const startedAt = new Date();
  if (run.resume !== undefined) emit({ kind: 'log', level: 'info', message: `resuming the run in ${outDir}` });
  const { started, done } = await launchRunner(prepared, opts, {
    mode: { kind: 'train' },
    outDir,
    nproc: plan.pytorch?.nproc ?? 1,
    fingerprint: run.fingerprint ?? torchFingerprint(prepared),
    ...(run.resume !== undefined && { resume: run.resume }),
  });

  const finishedAt = new Date();
  const task = plan.task ?? (done.epochs.some((e) => e.trainAccuracy !== undefined) ? 'classification' : 'regression');
  const groupLrByEpoch: Record<string, number[]> = Object.fromEntries(resolution.groups.map((g) => [g.name, []]));
  for (const e of done.epochs) for (const g of e.groupLrs) groupLrByEpoch[g.group]?.push(g.lr);
  const replicasEqual = done.replicas.every((h) => h === done.replicas[0]);
  if (!done.frozenCheck.unchanged) emit({ kind: 'log', level: 'error', message: `frozen weights changed: ${done.frozenCheck.changed.join(', ')}` });
  if (!replicasEqual) emit({ kind: 'log', level: 'error', message: `the ${done.replicas.length} ranks ended with different weights` });
  const backendName = started.world > 1 ? `torch.distributed ${started.backend} ×${started.world}` : 'torch';
  const report: RunReport = {
    version: 1,
    planFile,
    plan: resolvedPlan(plan, task),
    task,
    backend: {
      name: backendName,
      reason: `Python ${started.python}, torch ${started.torch}${started.world > 1 ? `, DistributedDataParallel over ${started.world} ranks (${batchSize / started.world} samples each per step)` : ''}`,
    },
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    stopped: done.stopped,
    ...(done.message !== null ? { message: done.message } : {}),
    stages: done.stages,
    epochs: done.epochs,
    groupLrByEpoch,
    ...(done.best !== null ? { best: done.best } : {}),
    frozenCheck: done.frozenCheck,
    timings: { loadSeconds: started.loadSeconds, trainSeconds: done.trainSeconds, steps: done.steps, stepsPerSecond: done.steps / Math.max(done.trainSeconds, 1e-9) },
    ...(done.lastDiagnostics !== null ? { lastDiagnostics: done.lastDiagnostics } : {}),
    advice: adviseRun({ diagnostics: done.adviceSamples, epochs: done.epochs, groups: resolution.groups }),
    outputs: { folder: outDir, model: done.model, ...(done.bestModel !== '' && { best: done.bestModel }), ...(done.stopped === 'cancelled' && existsSync(join(outDir, CHECKPOINT_FILE)) && { checkpoint: join(outDir, CHECKPOINT_FILE) }) },
    distributed: { nproc: started.world, backend: started.backend, replicasEqual, replicas: done.replicas },
  };
  const reportFile = join(outDir, 'report.json');
  writeFileAtomic(reportFile, JSON.stringify(report, null, 2) + '\n');
  // the model and report are on disk: nothing is left to resume, so the checkpoint's space is freed
  if (done.stopped !== 'cancelled') for (const f of TORCH_CHECKPOINT_FILES) rmSync(join(outDir, f), { force: true });
  const last = done.epochs[done.epochs.length - 1];
  const results: PlanResults = {
    lastRun: {
      folder: relative(dirname(planFile), outDir) || '.',
      date: report.finishedAt,
      backend: backendName,
      epochs: done.epochs.length,
      stopped: done.stopped,
      ...(done.best !== null ? { best: done.best } : {}),
      ...(last !== undefined ? { final: { trainLoss: last.trainLoss, valLoss: last.valLoss, valAccuracy: last.valAccuracy } } : {}),
    },
  };
  return { report, reportFile, outDir, results, resolution };
}

/** Kills a detached child's whole process group (every rank and torch.distributed.run); ignores a group already gone. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

interface RanksOutcome {
  started: RunnerStarted;
  done: RunnerDone;
}

/** Runs the ranks to the end; relays their events; throws a LayerwiseError for a failure the runner named, or a death. */
function runRanks(python: string, args: string[], cwd: string, opts: PlanTrainOptions, stopFile: string): Promise<RanksOutcome> {
  const emit = opts.onEvent ?? (() => undefined);
  const interval = opts.progressIntervalMs ?? 250;
  const planFile = opts.planFile;
  return new Promise<RanksOutcome>((resolvePromise, reject) => {
    // its own process group: the ranks torch.distributed.run starts inherit it, and one kill reaches them all
    const child = spawn(python, args, {
      cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
    });
    const onExit = () => killGroup(child);
    process.on('exit', onExit);
    let started: RunnerStarted | undefined;
    let done: RunnerDone | undefined;
    let failure: RunnerError | undefined;
    let lastStepEmit = 0;
    let stepsPerEpoch = 1;
    let stopTimer: NodeJS.Timeout | undefined;
    let doneTimer: NodeJS.Timeout | undefined;
    const stderrTail: string[] = [];
    const onAbort = () => {
      writeFileSync(stopFile, 'stop\n');
      stopTimer = setTimeout(() => killGroup(child), opts.stopGraceMs ?? 30_000);
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });

    const relay = (e: TrainEvent) => {
      if (e.kind === 'step') {
        const now = performance.now();
        if (now - lastStepEmit < interval && !endsEpoch(e, stepsPerEpoch)) return;
        lastStepEmit = now;
      }
      emit(e);
    };
    const onLine = (line: string) => {
      if (!line.startsWith(RUNNER_LINE_PREFIX)) {
        if (line.trim() !== '') emit({ kind: 'log', level: 'info', message: line });
        return;
      }
      let m: unknown;
      try {
        m = JSON.parse(line.slice(RUNNER_LINE_PREFIX.length));
      } catch {
        m = undefined;
      }
      if (!isRunnerMessage(m)) {
        emit({ kind: 'log', level: 'warn', message: `ignored a malformed line from the runner: ${line.slice(0, 200)}` });
        return;
      }
      switch (m.kind) {
        case 'started':
          started = m;
          stepsPerEpoch = m.stepsPerEpoch;
          break;
        case 'event':
          relay(m.event);
          break;
        case 'done':
          done = m;
          // rank 0 has written everything; what is left is tearing the process group down
          doneTimer = setTimeout(() => killGroup(child), DONE_GRACE_MS);
          break;
        case 'error':
          failure ??= m;
          break;
        default: {
          const never: never = m;
          throw new Error(`unexpected runner message ${JSON.stringify(never)}`);
        }
      }
    };
    lines(child.stdout, onLine);
    lines(child.stderr, (l) => {
      stderrTail.push(l);
      if (stderrTail.length > 60) stderrTail.shift();
    });
    child.on('error', (e) => {
      process.off('exit', onExit);
      reject(new LayerwiseError(`could not start ${JSON.stringify(python)}: ${e.message}`, { file: planFile, field: 'pytorch.python' }));
    });
    child.on('close', (code, signal) => {
      process.off('exit', onExit);
      opts.signal?.removeEventListener('abort', onAbort);
      if (stopTimer !== undefined) clearTimeout(stopTimer);
      if (doneTimer !== undefined) clearTimeout(doneTimer);
      // whatever torch.distributed.run left behind goes with it
      killGroup(child);
      if (failure !== undefined) {
        const file = failure.file ?? planFile;
        reject(new LayerwiseError(`${failure.message}${failure.rank > 0 ? ` (rank ${failure.rank})` : ''}`, { file, field: failure.field ?? undefined }));
        return;
      }
      if (done !== undefined && started !== undefined && (code === 0 || signal === 'SIGKILL')) {
        resolvePromise({ started, done });
        return;
      }
      if (opts.signal?.aborted) {
        reject(new LayerwiseError('the run was stopped before it could write its outputs (the ranks did not stop in time and were killed)', { file: planFile, field: 'pytorch' }));
        return;
      }
      reject(new LayerwiseError(deathMessage(code, signal, stderrTail), { file: planFile, field: 'pytorch.entry' }));
    });
  });
}

function endsEpoch(e: StepEvent, stepsPerEpoch: number): boolean {
  return e.step % stepsPerEpoch === 0 || e.step === e.totalSteps;
}

/** What a dead run says: which rank died and how (torch.distributed.run's summary), else the last traceback line. */
export function deathMessage(code: number | null, signal: NodeJS.Signals | null, stderr: readonly string[]): string {
  const text = stderr.join('\n');
  // torch.distributed.run lists every failed rank ("Failures:", then "Root Cause"); the order says
  // when each death was noticed, not which came first. A rank killed by a signal is the cause the
  // others followed (they fail on the broken collective), so name it; else the root cause.
  const blocks = [...text.matchAll(/rank\s*:\s*(\d+)[^\n]*\n?[^\n]*?exitcode\s*:\s*(-?\d+)/g)];
  const rootAt = text.search(/Root Cause/);
  const rank = blocks.find((m) => Number(m[2]) < 0) ?? blocks.find((m) => (m.index ?? 0) > rootAt && rootAt >= 0) ?? blocks[0] ?? null;
  const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
  const last = [...stderr].reverse().find((l) => /^\w*(Error|Exception)\b|Error:/.test(l.trim()))?.trim() ?? stderr[stderr.length - 1]?.trim() ?? '';
  if (rank !== null) {
    const exit = Number(rank[2]);
    const died = exit < 0 ? `was killed by signal ${-exit}` : `exited with code ${exit}`;
    const cause = /^\w*(Error|Exception)\b/.test(last) && !/ChildFailedError/.test(last) ? ` (${last})` : '';
    return `rank ${rank[1]} ${died}; torch.distributed.run stopped the other ranks${cause}`;
  }
  return `the PyTorch run ${how}${last !== '' ? `: ${last}` : ''}`;
}

function lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (stream === null) return;
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      onLine(buffer.slice(0, nl).replace(/\r$/, ''));
      buffer = buffer.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (buffer !== '') onLine(buffer);
    buffer = '';
  });
}

/** A TCP port nothing listens on now, for torch.distributed's rendezvous store. */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolvePort(address.port) : reject(new Error('no free port'))));
    });
  });
}
