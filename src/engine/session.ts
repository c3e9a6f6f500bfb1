/**
 * Everything a run needs before its first step, shared by `train`, `find-lr` and `describe`:
 * the plan (validated), the backend (chosen before any tensor exists), the model (with its new
 * head), the data, and the resolved parameter groups tied to the model's variables.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LayerwiseError } from '../core/errors.ts';
import { resolveGroups } from '../core/groups.ts';
import type { ParamAudit, Resolution } from '../core/groups.types.ts';
import type { ModelInfo } from '../core/model-info.ts';
import { resolvePlanPath } from '../core/paths.ts';
import { planOnlyFormat, readPytorchModel } from '../core/pytorch-model.ts';
import { DEFAULTS, type Plan, type Task } from '../core/plan.ts';
import { resolveStages } from '../core/timeline.ts';
import { parsePlanText } from '../core/validate.ts';
import type { BackendPreference } from '../protocol/worker.ts';
import { selectBackend, type BackendChoice } from './backend.ts';
import type { TrainEvent } from '../core/progress.ts';
import { loadData, type LoadedData, type LoadOptions } from './data.ts';
import { applyHead, describeModel, layerClassNames, loadModel, readModelJson } from './model-io.ts';

export interface RunTarget {
  planFile: string;
  workspaceRoot?: string;
  /** Unsaved editor text; read from disk when absent. */
  planText?: string;
  backend?: BackendPreference;
  /** How image folders are read (tests and benchmarks): threads, decoder, stream or memory. */
  dataOptions?: Omit<LoadOptions, 'onEvent' | 'onWarn'>;
}

/** A model weight tied to its audit entry. */
export interface BoundParam {
  audit: ParamAudit;
  layerName: string;
  variable: tf.Variable;
}

export interface PreparedRun {
  planFile: string;
  workspaceRoot: string;
  planText: string;
  plan: Plan;
  backend: BackendChoice;
  model: tf.LayersModel;
  info: ModelInfo;
  resolution: Resolution;
  data: LoadedData;
  task: Task;
  params: BoundParam[];
  loadSeconds: number;
}

export function readPlan(target: RunTarget): { text: string; plan: Plan; workspaceRoot: string } {
  let text = target.planText;
  if (text === undefined) {
    try {
      text = readFileSync(target.planFile, 'utf8');
    } catch (e) {
      throw new LayerwiseError(`cannot read the plan file (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
        file: target.planFile,
      });
    }
  }
  const plan = parsePlanText(text, target.planFile);
  return { text, plan, workspaceRoot: target.workspaceRoot ?? dirname(target.planFile) };
}

/** What `describe`, `inspect` and `export` need: the plan, the model's layers and their groups. */
interface DescribedPlan {
  planFile: string;
  workspaceRoot: string;
  planText: string;
  plan: Plan;
  info: ModelInfo;
  resolution: Resolution;
  data?: LoadedData;
}

/**
 * A tfjs model loaded on a backend, or a plan-only PyTorch model (`.safetensors` header or a
 * parameter list): names and shapes without weights, so no backend and no tfjs model.
 */
export type PreparedModel =
  | (DescribedPlan & { kind: 'tfjs'; model: tf.LayersModel; backend: BackendChoice })
  | (DescribedPlan & { kind: 'pytorch'; model?: undefined; backend?: undefined });

/** Loads the model (and its replacement head) and describes it, without data; for `describe`. */
export async function prepareModel(
  target: RunTarget,
  opts: { withData: boolean | 'ifNeeded'; onEvent?: ((e: TrainEvent) => void) | undefined },
): Promise<PreparedModel> {
  const { text, plan, workspaceRoot } = readPlan(target);
  const ctx = { planFile: target.planFile, field: 'model' };
  const modelPath = resolvePlanPath(target.planFile, plan.model, 'model', workspaceRoot);
  if (planOnlyFormat(modelPath) !== undefined) {
    if (plan.head !== undefined) {
      throw new LayerwiseError(
        'a plan-only PyTorch model has no layers Layerwise could cut or add: define the new head in PyTorch and list its parameters with the others',
        { file: target.planFile, field: 'head' },
      );
    }
    const info = readPytorchModel(modelPath, ctx);
    const resolution = resolveGroups(info, plan, target.planFile);
    return { kind: 'pytorch', planFile: target.planFile, workspaceRoot, planText: text, plan, info, resolution };
  }
  const modelJson = readModelJson(modelPath, ctx);
  const classNames = [...layerClassNames(modelJson), ...(plan.head ? ['Dense', 'Dropout'] : [])];
  const backend = await selectBackend(target.backend ?? 'auto', { trainableClassNames: classNames });
  let model = await loadModel(modelPath, ctx);
  const inputShape = (model.inputs[0]?.shape ?? []) as Array<number | null>;
  let data: LoadedData | undefined;
  const needData = opts.withData === 'ifNeeded' ? plan.head !== undefined && (plan.head.outputs ?? 'auto') === 'auto' : opts.withData;
  if (needData && plan.data !== undefined) {
    const emit = opts.onEvent;
    data = await loadData(plan, target.planFile, workspaceRoot, inputShape, {
      // a streamed CSV's parsed rows: beside the runs, on the workspace's disk (the system's temporary folder may be memory)
      scratchDir: outputRoot({ plan, planFile: target.planFile, workspaceRoot }),
      ...target.dataOptions,
      onEvent: emit,
      onWarn: emit === undefined ? undefined : (message) => emit({ kind: 'log', level: 'warn', message }),
    });
  }
  let newLayers: string[] = [];
  if (plan.head) {
    let outputs: number;
    if (plan.head.outputs === undefined || plan.head.outputs === 'auto') {
      const fromData = data?.classes?.length ?? data?.train.targetSize;
      if (fromData === undefined) {
        const last = model.outputs[0]?.shape;
        outputs = typeof last?.[last.length - 1] === 'number' ? (last[last.length - 1] as number) : 1;
      } else outputs = fromData;
    } else outputs = plan.head.outputs;
    const replaced = applyHead(model, plan.head, outputs, plan.training?.seed ?? DEFAULTS.seed, target.planFile);
    // the layers cut off above the head are in no model anyone disposes: free their weights now
    const keptLayers = new Set(replaced.model.layers);
    for (const layer of model.layers) if (!keptLayers.has(layer)) for (const w of layer.weights) w.dispose();
    model = replaced.model;
    newLayers = replaced.newLayers;
  }
  const info = describeModel(model, basename(modelPath), new Set(newLayers));
  const resolution = resolveGroups(info, plan);
  return { kind: 'tfjs', planFile: target.planFile, workspaceRoot, planText: text, plan, backend, model, info, resolution, data };
}

/**
 * A bare model file (no plan) described for `init`, `inspect` and "Create Plan from Model…": a
 * plan-only PyTorch file is read without tfjs; a tfjs model is validated, loaded and released.
 */
export async function describeModelFile(modelFile: string, backend: BackendPreference, ctx: { planFile?: string; field?: string } = {}): Promise<ModelInfo> {
  if (planOnlyFormat(modelFile) !== undefined) return readPytorchModel(modelFile, ctx);
  readModelJson(modelFile, ctx);
  await selectBackend(backend, { trainableClassNames: [] });
  const model = await loadModel(modelFile, ctx);
  try {
    return describeModel(model, basename(modelFile));
  } finally {
    model.dispose();
  }
}

/** The plan's output folder (`output`, default "runs"), where runs write their folders. */
export function outputRoot(run: Pick<PreparedRun, 'plan' | 'planFile' | 'workspaceRoot'>): string {
  const output = run.plan.output ?? DEFAULTS.output;
  const root = resolvePlanPath(run.planFile, output, 'output', run.workspaceRoot);
  if (existsSync(root) && !statSync(root).isDirectory()) {
    throw new LayerwiseError(`${JSON.stringify(output)} is a file, not a folder; runs write their folders inside "output"`, { file: run.planFile, field: 'output' });
  }
  return root;
}


/** A new run (or LR range test) writes into a new or empty folder, so nothing kept there is overwritten. */
export function assertNewRunFolder(outDir: string): void {
  if (!existsSync(outDir)) return;
  const where = { file: outDir, field: '--out' };
  if (!statSync(outDir).isDirectory()) throw new LayerwiseError('is a file, not a folder; a run writes into a folder of its own', where);
  const held = readdirSync(outDir);
  if (held.length > 0) {
    const shown = held.slice(0, 3).join(', ') + (held.length > 3 ? `, … (${held.length} entries)` : '');
    throw new LayerwiseError(
      `already holds files (${shown}); a new run writes into a new or empty folder — choose another --out, or continue a stopped run there with --resume`,
      where,
    );
  }
}

/** `onEvent` hears the data being prepared (counting and checking images, skipped files). */
export async function prepareRun(target: RunTarget, onEvent?: (e: TrainEvent) => void): Promise<PreparedRun> {
  const started = performance.now();
  const base = await prepareModel(target, { withData: true, onEvent });
  if (base.kind === 'pytorch') {
    throw new LayerwiseError(
      `${JSON.stringify(base.plan.model)} is a plan-only PyTorch model (parameter names and shapes, no weights Layerwise can train): run "layerwise export ${basename(base.planFile)} --to pytorch" (or hf-trainer, mmengine) and train with the exported code`,
      { file: base.planFile, field: 'model' },
    );
  }
  const data = base.data;
  if (data === undefined) throw new LayerwiseError('the plan has no "data": training needs a dataset', { file: base.planFile, field: 'data' });
  checkOutputs(base.model, base.plan, data, base.planFile);
  // stages the plan cannot build are refused here, before a run creates its output folder
  resolveStages(base.plan, base.resolution, base.planFile);
  const params = bindParams(base.model, base.info, base.resolution);
  return { ...base, data, task: data.task, params, loadSeconds: (performance.now() - started) / 1000 };
}

/** The model's output width must equal the targets' width, or no loss can be computed. */
function checkOutputs(model: tf.LayersModel, plan: Plan, data: LoadedData, planFile: string): void {
  const shape = model.outputs[0]?.shape ?? [];
  const width = shape[shape.length - 1];
  if (typeof width === 'number' && width !== data.train.targetSize) {
    const what = data.task === 'classification' ? `${data.train.targetSize} classes` : `${data.train.targetSize} targets`;
    if (typeof plan.head?.outputs === 'number') {
      throw new LayerwiseError(`head.outputs is ${plan.head.outputs} but the data has ${what}; set it to ${data.train.targetSize} or "auto"`, {
        file: planFile,
        field: 'head.outputs',
      });
    }
    throw new LayerwiseError(
      `the model has ${width} outputs but the data has ${what}; add a "head" with "outputs": "auto" to replace the top of the model`,
      { file: planFile, field: 'head' },
    );
  }
}

/** The parameters that get gradients when `groups` train (all groups when omitted): never a frozen one, never a statistic. */
export function trainingParams(params: readonly BoundParam[], groups?: ReadonlySet<string>): BoundParam[] {
  return params.filter((p) => p.audit.trainable && !p.audit.frozen && (groups === undefined || groups.has(p.audit.group)));
}

/** Ties each audited parameter to the tfjs variable at the same position in the model. */
export function bindParams(model: tf.LayersModel, info: ModelInfo, resolution: Resolution): BoundParam[] {
  const audits = new Map(resolution.params.map((p) => [p.name, p]));
  const out: BoundParam[] = [];
  model.layers.forEach((layer, li) => {
    const layerInfo = info.layers[li];
    if (layerInfo === undefined || layerInfo.name !== layer.name) {
      throw new Error(`model description out of step with the model at layer ${li} (${layer.name})`);
    }
    layer.weights.forEach((w, wi) => {
      const wInfo = layerInfo.weights[wi];
      const audit = wInfo === undefined ? undefined : audits.get(wInfo.name);
      if (audit === undefined) throw new Error(`no audit entry for weight ${w.name} of layer ${layer.name}`);
      out.push({ audit, layerName: layer.name, variable: w.read() as tf.Variable });
    });
  });
  return out;
}
