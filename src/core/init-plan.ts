/**
 * The plan `layerwise init` and "Create Plan from Model…" write: the model, a new head where the
 * model ends in a classifier, groups from `autoGroups`, a preset that spreads the multipliers,
 * and a recipe (presets.ts) for the stages, the schedule and the BatchNorm mode. The plan runs
 * as written: explicit stages, every layer in a named group (the top group ends in a catch-all
 * `*`, so layers a head adds later land there too, never in the implicit "default" group).
 */
import { autoGroups, headLayers } from './autogroup.ts';
import type { LayerInfo, ModelInfo } from './model-info.ts';
import { DEFAULTS, type DataSpec, type GroupSpec, type HeadSpec, type Plan, type Task } from './plan.ts';
import { DEFAULT_PRESET, DEFAULT_RECIPE, getPreset, getRecipe } from './presets.ts';

export interface InitPlanOptions {
  /** The model's `model.json`, relative to the plan file's folder. */
  modelPath: string;
  /** A preset id from PRESETS (default "ulmfit"). */
  preset?: string;
  /** A recipe id from RECIPES (default DEFAULT_RECIPE). */
  recipe?: string;
  data?: DataSpec;
  /** The head to write; default: `proposeHead(model)`. */
  head?: HeadSpec;
  /** Keep the model's own top layers: write no head even when the model ends in a classifier. */
  keepTop?: boolean;
  task?: Task;
  maxGroups?: number;
  /** Total epochs over every stage; default: the recipe's own. */
  epochs?: number;
  /** The `$schema` reference written at the top. */
  schema?: string;
}

/** Names `applyHead` (engine/model-io.ts) gives the layers it adds: head_out, head_dense_1, head_dropout, … */
export const NEW_HEAD_PATTERN = 'head_*';
/** The top group's last pattern: whatever no group below takes (the new head, layers added later). */
export const CATCH_ALL = '*';

const DROPOUT = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianDropout', 'GaussianNoise', 'AlphaDropout']);
/** What an old classifier on top of a pooled feature vector is made of. */
const CLASSIFIER_TAIL = new Set([...DROPOUT, 'Dense', 'Activation', 'Softmax', 'ReLU', 'BatchNormalization']);

/** A layer whose output is the pooled feature vector: a global pooling, or a Flatten of a 1×1 map. */
function isPooledFeatures(layer: LayerInfo, below: LayerInfo | undefined): boolean {
  if (/^Global(Average|Max)Pooling[123]D$/.test(layer.className)) return true;
  const spatial = below?.outputShape?.slice(1, -1);
  return layer.className === 'Flatten' && spatial !== undefined && spatial.length > 0 && spatial.every((d) => d === 1);
}

/**
 * A new head for a TensorFlow.js model that ends in a classifier (its last weighted layer is a
 * Dense layer with nothing weighted above it), with one output per class. The cut is the pooled
 * feature vector the old classifier reads (a global pooling, or a Flatten of a 1×1 map: Keras
 * MobileNetV2, nsfwjs), past the old classifier's hidden Dense and Dropout layers; else the
 * layer the classifier reads, past any dropout (an embedding such as the example's "features").
 * Undefined for plan-only PyTorch models (no head can be added) and models without one.
 */
export function proposeHead(model: ModelInfo): HeadSpec | undefined {
  if (model.kind !== 'tfjs') return undefined;
  const head = headLayers(model);
  const classifier = head[0];
  if (classifier === undefined || head.length !== 1 || classifier.className !== 'Dense') return undefined;
  const top = model.layers.indexOf(classifier);
  for (let at = top - 1; at > 0; at--) {
    const layer = model.layers[at]!;
    if (isPooledFeatures(layer, model.layers[at - 1])) return { cut: layer.name, outputs: 'auto' };
    if (!CLASSIFIER_TAIL.has(layer.className)) break;
  }
  let at = top - 1;
  while (at >= 0 && DROPOUT.has(model.layers[at]!.className)) at--;
  const cut = model.layers[at];
  if (cut === undefined || cut.className === 'InputLayer') return undefined;
  return { cut: cut.name, outputs: 'auto' };
}

/** The model as the plan's head leaves it: up to the cut, then the new output layer. */
function modelWithHead(model: ModelInfo, head: HeadSpec): ModelInfo {
  const cut = head.cut === undefined ? model.layers.length - 1 : model.layers.findIndex((l) => l.name === head.cut);
  const kept = model.layers.slice(0, cut < 0 ? model.layers.length : cut + 1);
  const out: LayerInfo = {
    name: 'head_out',
    className: 'Dense',
    depth: kept.length,
    weights: [
      { name: 'head_out/kernel', shortName: 'kernel', shape: [1, 1], trainable: true },
      { name: 'head_out/bias', shortName: 'bias', shape: [1], trainable: true },
    ],
    isNewHead: true,
  };
  return { ...model, layers: [...kept, out] };
}

/** The top group takes the new head by name and, last, everything no group below took. */
function withCatchAll(groups: readonly GroupSpec[], hasHead: boolean): GroupSpec[] {
  const top = groups[groups.length - 1];
  if (top === undefined) return [];
  const own = hasHead ? [NEW_HEAD_PATTERN] : top.layers.filter((p) => p !== CATCH_ALL);
  return [...groups.slice(0, -1), { ...top, layers: [...own, CATCH_ALL] }];
}

export function initPlan(model: ModelInfo, opts: InitPlanOptions): Plan {
  const preset = getPreset(opts.preset ?? DEFAULT_PRESET);
  const recipe = getRecipe(opts.recipe ?? DEFAULT_RECIPE);
  const head = opts.head ?? (opts.keepTop === true ? undefined : proposeHead(model));
  const shaped = head === undefined ? model : modelWithHead(model, head);
  const draft: Plan = {
    model: opts.modelPath,
    groups: autoGroups(shaped, opts.maxGroups === undefined ? {} : { maxGroups: opts.maxGroups }),
  };
  const applied = preset.apply(draft, shaped);
  const groups = withCatchAll(applied.groups ?? [], head !== undefined);
  const built = recipe.build({ groups, lr: applied.training?.lr, epochs: opts.epochs });
  const training = applied.training ?? {};
  return {
    // no $schema by default: the extension maps plan files to the bundled schema by name, and a
    // made-up URL would only earn an "unable to load schema" warning
    ...(opts.schema !== undefined && { $schema: opts.schema }),
    model: opts.modelPath,
    ...(head === undefined ? {} : { head }),
    ...(opts.data === undefined ? {} : { data: opts.data }),
    ...(opts.task === undefined ? {} : { task: opts.task }),
    training: {
      lr: built.lr,
      batchSize: training.batchSize ?? DEFAULTS.batchSize,
      optimizer: training.optimizer ?? 'adamw',
      schedule: built.schedule,
    },
    groups,
    ...(applied.discriminative === undefined ? {} : { discriminative: applied.discriminative }),
    batchNorm: built.batchNorm,
    unfreeze: { stages: built.stages },
    output: DEFAULTS.output,
  };
}
