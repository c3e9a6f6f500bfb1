/**
 * The effectiveness study: does a learning rate per module help on real transfer tasks, against
 * a tuned single learning rate, on the same epoch budget? (docs/study/README.md has the results.)
 *
 *   npm run study                     # every task, arm and seed not yet in docs/study/results.json
 *   npm run study -- --quick          # 2 seeds, fewer epochs and images: a smoke run (own results file)
 *   npm run study -- --tasks t1-10,t2 --arms probe,lpft --seeds 1,2,3 [--force]
 *   npm run study -- --report         # only the table and plots from results.json
 *
 * Tasks: t1-10 / t1-50 — the MobileNetV2 of examples/mobilenet-fashion (ImageNet-initialised)
 * on Fashion-MNIST, 10 classes, 10 or 50 labelled images per class; t2 — the bundled small CNN
 * (examples/fashion, pre-trained on classes 0–5) on the four classes it never saw; t2-inv — the
 * same with inverted images (an input shift). A seed fixes the labelled subset, the new head's
 * initialisation and the data order; validation and test images are the same for every seed.
 *
 * Each arm is a plan written into a temporary folder beside that seed's data and trained
 * in-process by the engine (`prepareRun` + `trainPrepared`, frozen-prefix cache on). Test
 * accuracy is measured for the final weights and for the best-validation epoch's weights (the
 * headline figure: every arm gets the same early-stopping-by-validation). Compute counts every
 * optimizer step the arm needed: the grid's six trials, the LR range test's sweep, tune's probes.
 * Results are appended to docs/study/results.json one run at a time; a (task, arm, seed) already
 * there is skipped unless --force.
 */
import * as tf from '@tensorflow/tfjs';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../src/core/atomic-write.ts';
import { initPlan } from '../src/core/init-plan.ts';
import { LR_FINDER_DEFAULTS } from '../src/core/lr-finder.ts';
import type { GroupSpec, Plan } from '../src/core/plan.ts';
import { parsePlanText } from '../src/core/validate.ts';
import { selectBackend } from '../src/engine/backend.ts';
import { loadData, type Dataset } from '../src/engine/data.ts';
import { lossSpecFor } from '../src/engine/forward.ts';
import { findLrPrepared } from '../src/engine/lr-finder.ts';
import { loadModel } from '../src/engine/model-io.ts';
import { describeModelFile, prepareRun } from '../src/engine/session.ts';
import { evaluate, trainPrepared } from '../src/engine/trainer.ts';
import { writeFewShot, type FewShotOptions } from './make-fewshot-data.ts';
import { mean, pairedComparison, sampleSd } from './study-stats.ts';

const root = path.join(__dirname, '..');
const studyDir = path.join(root, 'docs', 'study');

// ─── tasks ─────────────────────────────────────────────────────────────────────────────────────

interface Task {
  id: string;
  title: string;
  /** Folder holding model.json + weights (copied next to the data). */
  modelDir: string;
  cut: string;
  classes: number[];
  trainPerClass: number;
  valPerClass: number;
  testPerClass: number;
  epochs: number;
  batchSize: number;
  invert?: boolean;
  /** Input size the copied model is set to (the network is fully convolutional up to its pooling). */
  inputSize?: number;
  /** The single-LR baseline's grid. */
  lrGrid: number[];
  /** Seeds run by default. */
  seeds: number[];
}

const SEEDS_5 = [1, 2, 3, 4, 5];

function tasks(quick: boolean): Task[] {
  const mobilenet = path.join(root, 'examples', 'mobilenet-fashion', 'model');
  const cnn = path.join(root, 'examples', 'fashion', 'model');
  const q = <T>(full: T, short: T): T => (quick ? short : full);
  return [
    {
      id: 't1-10', title: 'T1 MobileNetV2 (48 px) → Fashion-MNIST, 10 labels/class', modelDir: mobilenet, cut: 'features', inputSize: 48,
      classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], trainPerClass: 10, valPerClass: q(10, 5), testPerClass: q(30, 10),
      epochs: q(8, 4), batchSize: 16, lrGrid: LR_GRID_BACKBONE, seeds: q(SEEDS_5, [1, 2]),
    },
    {
      id: 't1-50', title: 'T1 MobileNetV2 (48 px) → Fashion-MNIST, 50 labels/class', modelDir: mobilenet, cut: 'features', inputSize: 48,
      classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], trainPerClass: 50, valPerClass: q(10, 5), testPerClass: q(30, 10),
      epochs: q(8, 4), batchSize: 16, lrGrid: LR_GRID_BACKBONE, seeds: q([1, 2, 3], [1]),
    },
    {
      id: 't2', title: 'T2 small CNN (classes 0–5) → 4 unseen classes, 24 labels/class', modelDir: cnn, cut: 'features',
      classes: [6, 7, 8, 9], trainPerClass: 24, valPerClass: 16, testPerClass: q(100, 20),
      epochs: q(8, 4), batchSize: 16, lrGrid: LR_GRID_SMALL_CNN, seeds: q(SEEDS_5, [1, 2]),
    },
    {
      id: 't2-inv', title: 'T2 with inverted images (input shift)', modelDir: cnn, cut: 'features',
      classes: [6, 7, 8, 9], trainPerClass: 24, valPerClass: 16, testPerClass: q(100, 20),
      epochs: q(8, 4), batchSize: 16, invert: true, lrGrid: LR_GRID_SMALL_CNN, seeds: q(SEEDS_5, [1, 2]),
    },
  ];
}

// ─── arms ──────────────────────────────────────────────────────────────────────────────────────

/** The single-LR grids: six points, log-spaced, each placed so its best point is not at an edge. */
const LR_GRID_BACKBONE = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3];
const LR_GRID_SMALL_CNN = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2];
const PROBE_LR = 3e-3;
const LPFT_HEAD_LR = 3e-3;
const LPFT_ALL_LR = 1e-4;

type ArmKind = 'probe' | 'full-grid' | 'lpft' | 'ulmfit' | 'tune-rgn' | 'tune-search' | 'init-default' | 'init-findlr' | 'retired';

interface Arm {
  id: string;
  kind: ArmKind;
  /** BatchNorm in inference mode everywhere (plan field `batchNorm`, when the engine has it). */
  bnInference: boolean;
  label: string;
  /** For a retired arm: what it spent besides training (its kind no longer says). */
  retiredCompute?: 'none' | 'rangeTest';
}

const ARMS: Arm[] = [
  { id: 'probe', kind: 'probe', bnInference: false, label: 'head only (linear probe)' },
  { id: 'full-grid', kind: 'full-grid', bnInference: false, label: 'full FT, one LR tuned on a 6-point grid' },
  { id: 'full-grid-bn', kind: 'full-grid', bnInference: true, label: 'full FT, tuned one LR, BN inference' },
  { id: 'lpft', kind: 'lpft', bnInference: false, label: 'LP-FT (head 3e-3, then all 1e-4)' },
  { id: 'lpft-bn', kind: 'lpft', bnInference: true, label: 'LP-FT, BN inference' },
  { id: 'ulmfit', kind: 'ulmfit', bnInference: false, label: 'ULMFiT: find-lr, ÷2.6, gradual, STLR' },
  { id: 'ulmfit-bn', kind: 'ulmfit', bnInference: true, label: 'ULMFiT, BN inference' },
  { id: 'tune-rgn', kind: 'tune-rgn', bnInference: false, label: 'tune (rgn), then train' },
  { id: 'tune-search', kind: 'tune-search', bnInference: false, label: 'tune (search), then train' },
  { id: 'tune-rgn-bn', kind: 'tune-rgn', bnInference: true, label: 'tune (rgn), BN inference' },
  { id: 'tune-search-bn', kind: 'tune-search', bnInference: true, label: 'tune (search), BN inference' },
  { id: 'init-default', kind: 'init-default', bnInference: false, label: '`init` default, unchanged' },
  { id: 'init-findlr', kind: 'init-findlr', bnInference: false, label: '`init` default + `find-lr --apply`' },
  // recorded before the recipe branch changed init (new head in the implicit "default" group,
  // gradual unfreezing, ULMFiT ÷2.6, STLR, lr 1e-3, BatchNorm training); no longer runnable
  { id: 'init-v0', kind: 'retired', bnInference: false, label: '`init` default before the recipe change', retiredCompute: 'none' },
  // init's first LP-FT default (head 4 epochs at 3e-3, then all 4 at 1e-4, ÷2.6, STLR, BN inference):
  // recorded, then replaced as the default by the gradual recipe because of these figures
  { id: 'init-lpft', kind: 'retired', bnInference: false, label: '`init --recipe lp-ft`, unchanged', retiredCompute: 'none' },
  { id: 'init-lpft-findlr', kind: 'retired', bnInference: false, label: '`init --recipe lp-ft` + `find-lr --apply`', retiredCompute: 'rangeTest' },
];

const BASELINE_ARM = 'full-grid';

/** The order a seed's arms run in: cheap and most informative first, so a cut-short study still pairs. */
const RUN_ORDER = [
  'probe', 'init-default', 'lpft-bn', 'init-findlr', 'ulmfit', 'full-grid', 'lpft', 'ulmfit-bn', 'full-grid-bn',
  'tune-rgn', 'tune-rgn-bn', 'tune-search', 'tune-search-bn',
];

/** Arms that need no search (no grid, no range test, no tune): candidates for `init`'s default. */
const NO_SEARCH: ReadonlySet<ArmKind> = new Set(['probe', 'lpft', 'init-default']);
/** Arms whose only search is one LR range test (about 100 steps, no extra training run). */
const RANGE_TEST_ONLY: ReadonlySet<ArmKind> = new Set(['ulmfit', 'init-findlr']);
const needsNoSearch = (a: Arm): boolean => NO_SEARCH.has(a.kind) || a.retiredCompute === 'none';
const needsOnlyRangeTest = (a: Arm): boolean => RANGE_TEST_ONLY.has(a.kind) || a.retiredCompute === 'rangeTest';

// ─── records ───────────────────────────────────────────────────────────────────────────────────

export interface TrialRecord {
  lr?: number;
  bestValAccuracy: number;
  testAccuracyBest: number;
  testAccuracyFinal: number;
  steps: number;
  seconds: number;
}

export interface RunRecord {
  task: string;
  arm: string;
  seed: number;
  /** Test accuracy of the best-validation epoch's weights: the headline figure. */
  testAccuracy: number;
  testAccuracyFinal: number;
  bestValAccuracy: number;
  bestEpoch: number;
  /** Every optimizer step the arm needed (grid trials, LR sweep, tune probes included). */
  steps: number;
  seconds: number;
  /** The chosen LR (grid) or the found one (ULMFiT). */
  lr?: number;
  trials?: TrialRecord[];
  notes?: string;
  backend: string;
  date: string;
}

function resultsFile(quick: boolean): string {
  return path.join(studyDir, quick ? 'results-quick.json' : 'results.json');
}

function readResults(file: string): RunRecord[] {
  if (!existsSync(file)) return [];
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(parsed)) throw new Error(`${file}: expected an array of run records`);
  return parsed as RunRecord[];
}

const keyOf = (r: Pick<RunRecord, 'task' | 'arm' | 'seed'>): string => `${r.task}/${r.arm}/${r.seed}`;

/** Re-reads before writing, so two study processes writing the same file lose nothing but a race of milliseconds. */
function appendResult(file: string, record: RunRecord): void {
  const all = readResults(file).filter((r) => keyOf(r) !== keyOf(record));
  all.push(record);
  all.sort((a, b) => a.task.localeCompare(b.task) || a.arm.localeCompare(b.arm) || a.seed - b.seed);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, `${JSON.stringify(all, null, 1)}\n`);
}

// ─── optional engine features (other branches) ─────────────────────────────────────────────────

/** Whether the plan schema knows `batchNorm` (the BatchNorm policy). */
function batchNormFieldAvailable(): boolean {
  const schema = JSON.parse(readFileSync(path.join(root, 'src', 'core', 'plan.schema.json'), 'utf8')) as { properties?: Record<string, unknown> };
  return schema.properties?.['batchNorm'] !== undefined;
}

/** The parts of the tune helper's API (src/engine/tune.ts, src/core/tune.ts) the study uses. */
interface TuneApi {
  tune(opts: Record<string, unknown>): Promise<{ steps: number; seconds: number; groups: Array<{ name: string; lrMult: number }> }>;
  applyTuneResult(planText: string, result: unknown): string;
}

async function tuneApi(): Promise<TuneApi | undefined> {
  const engineFile = path.join(root, 'src', 'engine', 'tune.ts');
  const coreFile = path.join(root, 'src', 'core', 'tune.ts');
  if (!existsSync(engineFile) || !existsSync(coreFile)) return undefined;
  const engine = (await import(engineFile)) as Partial<TuneApi>;
  const core = (await import(coreFile)) as Partial<TuneApi>;
  if (typeof engine.tune !== 'function' || typeof core.applyTuneResult !== 'function') return undefined;
  return { tune: engine.tune, applyTuneResult: core.applyTuneResult };
}

// ─── one seed's data and plans ─────────────────────────────────────────────────────────────────

interface SeedFolder {
  dir: string;
  modelPath: string;
  test: Dataset;
}

const workRoot = path.join(tmpdir(), 'layerwise-study');
/** One backend for the whole process, chosen before any tensor exists (tensors never cross backends). */
const BACKEND = 'wasm';

async function prepareSeed(task: Task, seed: number): Promise<SeedFolder> {
  const dir = path.join(workRoot, task.id, `seed-${seed}`);
  mkdirSync(dir, { recursive: true });
  const modelDir = path.join(dir, 'model');
  if (!existsSync(path.join(modelDir, 'model.json'))) {
    cpSync(task.modelDir, modelDir, { recursive: true });
    if (task.inputSize !== undefined) setInputSize(path.join(modelDir, 'model.json'), task.inputSize);
  }
  const dataDir = path.join(dir, 'data');
  if (!existsSync(path.join(dataDir, 'complete'))) {
    // written aside and renamed: another study process may be training on this seed's data
    const scratch = path.join(dir, `data-${process.pid}`);
    rmSync(scratch, { recursive: true, force: true });
    const o: FewShotOptions = {
      classes: task.classes,
      trainPerClass: task.trainPerClass,
      valPerClass: task.valPerClass,
      testPerClass: task.testPerClass,
      seed,
      outDir: scratch,
      ...(task.invert ? { transform: (px: Uint8Array) => px.map((v) => 255 - v) } : {}),
    };
    writeFewShot(o);
    writeFileSync(path.join(scratch, 'complete'), '');
    rmSync(dataDir, { recursive: true, force: true });
    renameSync(scratch, dataDir);
  }
  // the test set through the engine's own loader, sized for the model's input
  const model = await loadModel(path.join(modelDir, 'model.json'));
  const inputShape = model.inputs[0]!.shape;
  model.dispose();
  const planFile = path.join(dir, 'test.layerwise.json');
  const loaded = await loadData({ model: 'model/model.json', data: { train: 'data/test', format: 'imagefolder' } }, planFile, dir, inputShape);
  return { dir, modelPath: 'model/model.json', test: loaded.train };
}

/** Rewrites the input layer's batch_input_shape (Keras topology) to size × size. */
function setInputSize(modelJson: string, size: number): void {
  const json = JSON.parse(readFileSync(modelJson, 'utf8')) as {
    modelTopology: { model_config: { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } } };
  };
  const input = json.modelTopology.model_config.config.layers[0];
  const shape = input?.config['batch_input_shape'];
  if (input?.class_name !== 'InputLayer' || !Array.isArray(shape) || shape.length !== 4) throw new Error(`${modelJson}: the first layer is not an image InputLayer`);
  input.config['batch_input_shape'] = [null, size, size, shape[3]];
  writeFileSync(modelJson, JSON.stringify(json));
}

function basePlan(task: Task, seed: number, bnInference: boolean): Plan {
  const plan: Plan & { batchNorm?: string } = {
    model: 'model/model.json',
    head: { cut: task.cut, outputs: 'auto' },
    data: { train: 'data/train', validation: 'data/val', format: 'imagefolder', seed },
    training: { epochs: task.epochs, batchSize: task.batchSize, optimizer: 'adamw', seed, diagnosticsEvery: 0 },
    output: 'runs',
  };
  if (bnInference) plan.batchNorm = 'inference';
  return plan;
}

const HEAD_PATTERN = 'head_*';
const NOT_HEAD = 're:(?!head_).*';

/**
 * What `layerwise init model.json` writes for the task's model (with the task's epoch budget), as
 * a user gets it: init proposes the head itself where the model ends in a classifier (the small
 * CNN); for the converted MobileNetV2, which ends at its features, the user adds the head and the
 * top group's catch-all "*" takes it. Its groups, with the new head in the top group.
 */
async function initGroups(task: Task, folder: SeedFolder): Promise<{ groups: GroupSpec[]; init: Plan }> {
  const info = await describeModelFile(path.join(folder.dir, folder.modelPath), BACKEND);
  const init = initPlan(info, { modelPath: folder.modelPath, epochs: task.epochs });
  const groups = structuredClone(init.groups ?? []);
  const top = groups[groups.length - 1];
  if (top !== undefined && !top.layers.some((p: string) => p === HEAD_PATTERN)) top.layers = [...top.layers, HEAD_PATTERN];
  return { groups, init };
}

// ─── running ───────────────────────────────────────────────────────────────────────────────────

interface TrainResult extends TrialRecord {
  bestEpoch: number;
  backend: string;
}

async function trainPlan(plan: Plan, folder: SeedFolder, name: string): Promise<TrainResult> {
  const planFile = path.join(folder.dir, `${name}.layerwise.json`);
  const planText = JSON.stringify(plan, null, 2);
  writeFileSync(planFile, planText);
  const outDir = path.join(folder.dir, 'runs', name);
  rmSync(outDir, { recursive: true, force: true });
  const started = performance.now();
  const run = await prepareRun({ planFile, planText, workspaceRoot: folder.dir, backend: BACKEND });
  try {
    const { report } = await trainPrepared(run, { planFile, outDir, frozenPrefixCache: true });
    if (report.stopped !== 'completed') throw new Error(`${name}: the run stopped (${report.stopped}): ${report.message ?? ''}`);
    const spec = lossSpecFor(run.model, run.task);
    const final = (await evaluate(run.model, spec, folder.test, 64)).accuracy;
    let best = final;
    if (report.outputs.best !== undefined) {
      const bestModel = await loadModel(report.outputs.best);
      best = (await evaluate(bestModel, spec, folder.test, 64)).accuracy;
      bestModel.dispose();
    }
    return {
      bestValAccuracy: report.best?.valAccuracy ?? NaN,
      bestEpoch: report.best?.epoch ?? report.epochs.length,
      testAccuracyBest: best,
      testAccuracyFinal: final,
      steps: report.timings.steps,
      seconds: (performance.now() - started) / 1000,
      backend: report.backend.name,
    };
  } finally {
    run.model.dispose();
    rmSync(outDir, { recursive: true, force: true });
  }
}

/** The LR range test on the plan's first stage (the head's group), fastai's `valley`, as `find-lr --apply` does. */
async function findLr(plan: Plan, folder: SeedFolder, name: string): Promise<{ lr: number; steps: number; seconds: number; path: Array<string | number> }> {
  const planFile = path.join(folder.dir, `${name}.layerwise.json`);
  const planText = JSON.stringify(plan, null, 2);
  writeFileSync(planFile, planText);
  const outDir = path.join(folder.dir, 'runs', `${name}-lr`);
  const started = performance.now();
  const run = await prepareRun({ planFile, planText, workspaceRoot: folder.dir, backend: BACKEND });
  try {
    const r = await findLrPrepared(run, { ...LR_FINDER_DEFAULTS }, { outDir });
    return { lr: r.outcome.suggested, steps: r.outcome.points.length, seconds: (performance.now() - started) / 1000, path: r.outcome.apply.path };
  } finally {
    run.model.dispose();
    rmSync(outDir, { recursive: true, force: true });
  }
}

type Skip = { skip: string };

/** init's plan, unchanged except what the task fixes: head, data, epoch budget, batch, seed. */
async function initDefaultPlan(task: Task, seed: number, folder: SeedFolder, base: Plan): Promise<Plan> {
  const { init } = await initGroups(task, folder);
  return {
    ...init,
    head: base.head,
    data: { ...init.data, ...base.data!, train: base.data!.train },
    training: { ...init.training, epochs: task.epochs, batchSize: task.batchSize, seed, diagnosticsEvery: 0 },
    output: 'runs',
  };
}

/** Sets a value at a JSON path (the LR finder's `apply.path`) in a plain object. */
function setAtPath(target: Record<string, unknown>, at: ReadonlyArray<string | number>, value: unknown): void {
  let node: Record<string | number, unknown> = target;
  for (const key of at.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) throw new Error(`the plan has nothing at ${at.join('.')}`);
    node = next as Record<string | number, unknown>;
  }
  node[at[at.length - 1]!] = value;
}

async function runArm(task: Task, arm: Arm, seed: number, folder: SeedFolder): Promise<RunRecord | Skip> {
  if (arm.bnInference && !batchNormFieldAvailable()) return { skip: 'the plan field "batchNorm" is not available in this engine yet' };
  const base = basePlan(task, seed, arm.bnInference);
  const record = (r: TrainResult, extra: Partial<RunRecord> = {}): RunRecord => ({
    task: task.id,
    arm: arm.id,
    seed,
    testAccuracy: r.testAccuracyBest,
    testAccuracyFinal: r.testAccuracyFinal,
    bestValAccuracy: r.bestValAccuracy,
    bestEpoch: r.bestEpoch,
    steps: r.steps,
    seconds: r.seconds,
    backend: r.backend,
    date: new Date().toISOString(),
    ...extra,
  });
  switch (arm.kind) {
    case 'retired':
      return { skip: 'recorded with an earlier version of init; kept for the record, not rerun' };
    case 'probe': {
      const plan: Plan = {
        ...base,
        training: { ...base.training, lr: PROBE_LR, schedule: { type: 'constant' } },
        groups: [{ name: 'backbone', layers: [NOT_HEAD], frozen: true }, { name: 'head', layers: [HEAD_PATTERN] }],
      };
      return record(await trainPlan(plan, folder, arm.id), { lr: PROBE_LR });
    }
    case 'full-grid': {
      const trials: TrainResult[] = [];
      for (const lr of task.lrGrid) {
        const plan: Plan = {
          ...base,
          training: { ...base.training, lr, schedule: { type: 'constant' } },
          groups: [{ name: 'all', layers: ['*'] }],
        };
        // a finished trial is kept beside the seed's data, so an interrupted grid resumes
        const cache = path.join(folder.dir, 'trials', `${arm.id}-${lr}.json`);
        let r: TrainResult;
        if (existsSync(cache)) {
          r = JSON.parse(readFileSync(cache, 'utf8')) as TrainResult;
        } else {
          r = await trainPlan(plan, folder, `${arm.id}-${lr}`);
          mkdirSync(path.dirname(cache), { recursive: true });
          writeFileSync(cache, JSON.stringify(r));
        }
        trials.push({ ...r, lr });
        log(`    ${arm.id} lr ${lr}: best val ${r.bestValAccuracy.toFixed(3)} (epoch ${r.bestEpoch}), test ${r.testAccuracyBest.toFixed(3)}`);
      }
      // chosen by validation only; ties go to the lower LR (the first in the grid)
      const chosen = trials.reduce((a, b) => (b.bestValAccuracy > a.bestValAccuracy ? b : a));
      return record(chosen, {
        lr: chosen.lr,
        steps: trials.reduce((s, t) => s + t.steps, 0),
        seconds: trials.reduce((s, t) => s + t.seconds, 0),
        trials: trials.map(({ lr, bestValAccuracy, testAccuracyBest, testAccuracyFinal, steps, seconds }) => ({
          lr, bestValAccuracy, testAccuracyBest, testAccuracyFinal, steps, seconds,
        })),
      });
    }
    case 'lpft': {
      const half = Math.floor(task.epochs / 2);
      const plan: Plan = {
        ...base,
        training: { ...base.training, lr: LPFT_HEAD_LR, schedule: { type: 'constant' } },
        groups: [{ name: 'backbone', layers: [NOT_HEAD] }, { name: 'head', layers: [HEAD_PATTERN] }],
        unfreeze: { stages: [{ epochs: half, train: ['head'] }, { epochs: task.epochs - half, train: 'all', lr: LPFT_ALL_LR }] },
      };
      return record(await trainPlan(plan, folder, arm.id));
    }
    case 'ulmfit': {
      const { groups } = await initGroups(task, folder);
      const plan: Plan = {
        ...base,
        training: { ...base.training, lr: 1e-3, schedule: { type: 'stlr' } },
        groups,
        discriminative: { type: 'ulmfit', factor: 2.6 },
        unfreeze: { mode: 'gradual', epochsPerStage: 1 },
      };
      const found = await findLr(plan, folder, arm.id);
      const r = await trainPlan({ ...plan, training: { ...plan.training, lr: found.lr } }, folder, arm.id);
      return record(r, { lr: found.lr, steps: r.steps + found.steps, seconds: r.seconds + found.seconds, notes: `LR range test: ${found.steps} steps` });
    }
    case 'tune-rgn':
    case 'tune-search': {
      const api = await tuneApi();
      if (api === undefined) return { skip: 'tune (src/engine/tune.ts, src/core/tune.ts) is not available in this engine yet' };
      // from init's groups (new head in the top group), every group training, STLR; tune decides the rest
      const { groups } = await initGroups(task, folder);
      const plan: Plan = { ...base, training: { ...base.training, lr: 1e-3, schedule: { type: 'stlr' } }, groups };
      const planFile = path.join(folder.dir, `${arm.id}.layerwise.json`);
      const planText = JSON.stringify(plan, null, 2);
      writeFileSync(planFile, planText);
      const method = arm.kind === 'tune-rgn' ? 'rgn' : 'search';
      // the search may spend what the single-LR grid spends: six runs' steps
      const budget = 6 * task.epochs * Math.ceil((task.trainPerClass * task.classes.length) / task.batchSize);
      const started = performance.now();
      const result = await api.tune({ planFile, planText, workspaceRoot: folder.dir, backend: BACKEND, method, budget });
      const tuneSeconds = (performance.now() - started) / 1000;
      const tuned = parsePlanText(api.applyTuneResult(planText, result), planFile);
      const r = await trainPlan(tuned, folder, arm.id);
      const mults = result.groups.map((g) => `${g.name} ×${g.lrMult}`).join(', ');
      return record(r, { steps: r.steps + result.steps, seconds: r.seconds + tuneSeconds, notes: `tune ${method}: ${result.steps} steps; ${mults}` });
    }
    case 'init-findlr': {
      // the documented two steps: init, then find-lr --apply (on a staged plan it sets the first stage's lr)
      const plan = await initDefaultPlan(task, seed, folder, base);
      const found = await findLr(plan, folder, arm.id);
      const applied = structuredClone(plan);
      setAtPath(applied as unknown as Record<string, unknown>, found.path, found.lr);
      const r = await trainPlan(applied, folder, arm.id);
      return record(r, { lr: found.lr, steps: r.steps + found.steps, seconds: r.seconds + found.seconds, notes: `find-lr: ${found.steps} steps, ${found.path.join('.')} = ${found.lr}` });
    }
    case 'init-default': {
      const plan = await initDefaultPlan(task, seed, folder, base);
      const r = await trainPlan(plan, folder, arm.id);
      return record(r, { lr: plan.training?.lr });
    }
  }
}

// ─── report ────────────────────────────────────────────────────────────────────────────────────

interface ArmSummary {
  arm: Arm;
  n: number;
  mean: number;
  sd: number;
  meanFinal: number;
  diff?: ReturnType<typeof pairedComparison>;
  steps: number;
  seconds: number;
}

function summarise(records: RunRecord[], taskId: string): ArmSummary[] {
  const ofTask = records.filter((r) => r.task === taskId);
  const byArm = (id: string): Map<number, RunRecord> => new Map(ofTask.filter((r) => r.arm === id).map((r) => [r.seed, r]));
  const baseline = new Map([...byArm(BASELINE_ARM)].map(([s, r]) => [s, r.testAccuracy]));
  const out: ArmSummary[] = [];
  for (const arm of ARMS) {
    const runs = [...byArm(arm.id).values()];
    if (runs.length === 0) continue;
    const accs = runs.map((r) => r.testAccuracy);
    const acc = new Map(runs.map((r) => [r.seed, r.testAccuracy]));
    out.push({
      arm,
      n: runs.length,
      mean: mean(accs),
      sd: sampleSd(accs),
      meanFinal: mean(runs.map((r) => r.testAccuracyFinal)),
      diff: arm.id === BASELINE_ARM ? undefined : pairedComparison(acc, baseline),
      steps: mean(runs.map((r) => r.steps)),
      seconds: mean(runs.map((r) => r.seconds)),
    });
  }
  return out;
}

const pct = (x: number): string => (100 * x).toFixed(1);
const signedPts = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`;

function markdownTable(s: ArmSummary[]): string {
  const rows = [
    '| arm | seeds | test acc % (mean ± sd) | final-epoch acc % | Δ vs tuned single LR, points [95% CI] | win rate | steps / run | seconds / run |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const a of s) {
    const d = a.diff;
    const delta = a.arm.id === BASELINE_ARM
      ? '(baseline)'
      : d === undefined ? '–' : `${signedPts(d.meanDiff)}${d.ci ? ` [${signedPts(d.ci[0])}, ${signedPts(d.ci[1])}]` : ''}`;
    rows.push(`| ${a.arm.label} | ${a.n} | ${pct(a.mean)} ± ${pct(a.sd)} | ${pct(a.meanFinal)} | ${delta} | ${d === undefined ? '–' : `${(100 * d.winRate).toFixed(0)}% (n=${d.n})`} | ${a.steps.toFixed(0)} | ${a.seconds.toFixed(0)} |`);
  }
  return rows.join('\n');
}

/** A strip plot: one row per arm, a dot per seed, a bar at the mean. */
function stripPlotSvg(title: string, records: RunRecord[], summaries: ArmSummary[]): string {
  const width = 760;
  const rowH = 26;
  const left = 300;
  const right = 30;
  const top = 40;
  const height = top + rowH * summaries.length + 44;
  const accs = records.map((r) => r.testAccuracy);
  const lo = Math.max(0, Math.floor(Math.min(...accs) * 20) / 20);
  const hi = Math.min(1, Math.ceil(Math.max(...accs) * 20) / 20 + 1e-9);
  const x = (v: number): number => left + ((v - lo) / Math.max(hi - lo, 1e-9)) * (width - left - right);
  const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/`/g, '');
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  const axisY = top + rowH * summaries.length + 6;
  const stepPct = hi - lo > 0.5 ? 10 : 5;
  for (let p = Math.round(100 * lo); p <= Math.round(100 * hi); p += stepPct) {
    const tx = x(p / 100).toFixed(1);
    out.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${axisY}" stroke="#eee"/>`);
    out.push(`<text x="${tx}" y="${axisY + 16}" text-anchor="middle">${p}</text>`);
  }
  out.push(`<text x="${(left + width - right) / 2}" y="${axisY + 34}" text-anchor="middle">test accuracy % (best-validation epoch); dots: seeds, bar: mean; red: tuned single LR, green: no search, purple: one LR range test</text>`);
  summaries.forEach((s, i) => {
    const y = top + rowH * i + rowH / 2;
    const colour = s.arm.id === BASELINE_ARM ? '#d62728' : needsNoSearch(s.arm) ? '#2ca02c' : needsOnlyRangeTest(s.arm) ? '#9467bd' : '#1f77b4';
    out.push(`<text x="${left - 8}" y="${y + 4}" text-anchor="end">${esc(s.arm.label)}</text>`);
    for (const r of records.filter((r) => r.arm === s.arm.id)) {
      out.push(`<circle cx="${x(r.testAccuracy).toFixed(1)}" cy="${y}" r="3.5" fill="${colour}" fill-opacity="0.6"/>`);
    }
    out.push(`<line x1="${x(s.mean).toFixed(1)}" y1="${y - 9}" x2="${x(s.mean).toFixed(1)}" y2="${y + 9}" stroke="${colour}" stroke-width="3"/>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function report(quick: boolean): void {
  const file = resultsFile(quick);
  const records = readResults(file);
  const sections: string[] = [];
  const suffix = quick ? '-quick' : '';
  for (const task of tasks(quick)) {
    const own = records.filter((r) => r.task === task.id);
    if (own.length === 0) continue;
    const s = summarise(records, task.id);
    const svg = `${task.id}${suffix}.svg`;
    writeFileSync(path.join(studyDir, svg), stripPlotSvg(task.title, own, s));
    const noSearch = s.filter((a) => needsNoSearch(a.arm)).sort((a, b) => b.mean - a.mean)[0];
    const rangeTest = s.filter((a) => needsNoSearch(a.arm) || needsOnlyRangeTest(a.arm)).sort((a, b) => b.mean - a.mean)[0];
    sections.push([
      `## ${task.title}`,
      '',
      `${task.trainPerClass} labelled images per class, ${task.valPerClass} validation and ${task.testPerClass} test images per class, ` +
        `${task.epochs} epochs of batch ${task.batchSize}, AdamW.${task.invert ? ' Pixels inverted (255 − x) in train, validation and test.' : ''}`,
      '',
      markdownTable(s),
      '',
      noSearch === undefined ? '' : `Best arm that needs no search: **${noSearch.arm.label}** (${pct(noSearch.mean)}%).` +
        (rangeTest === undefined || rangeTest === noSearch ? '' : ` Best with at most one LR range test: **${rangeTest.arm.label}** (${pct(rangeTest.mean)}%).`),
      '',
      `![${task.title}](${svg})`,
      '',
    ].join('\n'));
  }
  const text = [
    `# The study${quick ? ' (quick smoke run)' : ''}`,
    '',
    `Written by \`npm run study -- --report${quick ? ' --quick' : ''}\` from \`${path.basename(file)}\` (${records.length} runs). ` +
      'Test accuracy is that of the best-validation epoch\'s weights; Δ is the paired difference (same seed: same labelled subset, ' +
      'head initialisation and data order) to full fine-tuning with one LR tuned on a 6-point grid by validation accuracy, ' +
      'with a 95% t-interval; compute counts every optimizer step an arm needed (the grid\'s six trials, the LR range test\'s sweep).',
    '',
    ...sections,
  ].join('\n');
  writeFileSync(path.join(studyDir, `README${suffix}.md`), text);
  log(`wrote ${path.relative(root, path.join(studyDir, `README${suffix}.md`))} and ${sections.length} plot(s) from ${records.length} runs`);
}

// ─── command line ──────────────────────────────────────────────────────────────────────────────

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

function listOption(argv: readonly string[], name: string): string[] | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a comma-separated list`);
  return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const known = new Set(['--quick', '--force', '--report', '--tasks', '--arms', '--seeds']);
  argv.forEach((a, i) => {
    if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown option ${a} (options: ${[...known].join(' ')})`);
    if (!a.startsWith('--') && !['--tasks', '--arms', '--seeds'].includes(argv[i - 1] ?? '')) throw new Error(`unexpected argument ${a}`);
  });
  const quick = argv.includes('--quick');
  mkdirSync(studyDir, { recursive: true });
  if (argv.includes('--report')) {
    report(quick);
    return;
  }
  const allTasks = tasks(quick);
  const taskIds = listOption(argv, 'tasks');
  const armIds = listOption(argv, 'arms');
  const seedList = listOption(argv, 'seeds')?.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--seeds: "${s}" is not a whole number`);
    return n;
  });
  for (const id of taskIds ?? []) if (!allTasks.some((t) => t.id === id)) throw new Error(`unknown task ${id} (tasks: ${allTasks.map((t) => t.id).join(', ')})`);
  for (const id of armIds ?? []) if (!ARMS.some((a) => a.id === id)) throw new Error(`unknown arm ${id} (arms: ${ARMS.map((a) => a.id).join(', ')})`);
  await selectBackend(BACKEND, { trainableClassNames: [] });
  const file = resultsFile(quick);
  const force = argv.includes('--force');

  for (const task of allTasks.filter((t) => taskIds === undefined || taskIds.includes(t.id))) {
    for (const seed of seedList ?? task.seeds) {
      const arms = ARMS.filter((a) => armIds === undefined || armIds.includes(a.id));
      const done = new Set(readResults(file).map(keyOf));
      const todo = arms
        .filter((a) => force || !done.has(keyOf({ task: task.id, arm: a.id, seed })))
        .sort((a, b) => RUN_ORDER.indexOf(a.id) - RUN_ORDER.indexOf(b.id));
      if (todo.length === 0) continue;
      log(`${task.id} seed ${seed}: preparing data`);
      const folder = await prepareSeed(task, seed);
      for (const arm of todo) {
        log(`  ${task.id} seed ${seed} ${arm.id} …`);
        const r = await runArm(task, arm, seed, folder);
        if ('skip' in r) {
          log(`  ${task.id} seed ${seed} ${arm.id}: skipped — ${r.skip}`);
          continue;
        }
        appendResult(file, r);
        log(`  ${task.id} seed ${seed} ${arm.id}: test ${pct(r.testAccuracy)}% (final ${pct(r.testAccuracyFinal)}%, best val ${pct(r.bestValAccuracy)}% at epoch ${r.bestEpoch}), ${r.steps} steps, ${r.seconds.toFixed(0)} s, ${tf.memory().numTensors} tensors`);
      }
    }
  }
  report(quick);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
