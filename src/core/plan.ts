/**
 * The plan file's types (PLAN-SPEC.md). The JSON Schema in `plan.schema.json` is the source of
 * truth for what a file may contain; these types mirror it, and `parsePlanText` (src/core/validate.ts) turns a
 * file into a `Plan` or throws a `LayerwiseError` naming the field.
 */

export type Task = 'classification' | 'regression';
export type OptimizerName = 'adamw' | 'adam' | 'sgd';
export type ScheduleType = 'constant' | 'linear' | 'cosine' | 'stlr' | 'onecycle';
export type ScheduleScope = 'stage' | 'run';
export type DataFormat = 'csv' | 'imagefolder';
export type HeadActivation = 'softmax' | 'linear' | 'sigmoid';
/**
 * How a BatchNormalization layer that trains runs: `train` = batch statistics, moving mean and
 * variance updated (Keras/PyTorch default); `inference` = moving statistics used and kept fixed
 * while gamma/beta still train (Keras's advice for fine-tuning, PyTorch's `module.eval()`).
 */
export type BatchNormPolicy = 'train' | 'inference';

export interface HeadSpec {
  /** Name of the last layer kept from the pre-trained model. */
  cut?: string;
  /** Units of new hidden dense layers (ReLU) placed before the output layer. */
  hidden?: number[];
  dropout?: number;
  /** Units of the new output layer; `"auto"` = number of classes (classification) or targets. */
  outputs?: number | 'auto';
  activation?: HeadActivation;
}

export interface DataSpec {
  train: string;
  validation?: string;
  validationSplit?: number;
  /** Held-out data, same format and classes as train, evaluated once after the last epoch. */
  test?: string;
  format?: DataFormat;
  /** CSV: the label column (default: the last column). */
  label?: string;
  /** CSV: the feature columns (default: every column but the label). */
  features?: string[];
  /** Image folder: [height, width] the images are resized to (default: the model's input). */
  size?: [number, number];
  /** Image folder: 1 or 3 (default: the model's input channels). */
  channels?: number;
  /** Image folder: pixel values are multiplied by this (default 1/255). */
  scale?: number;
  /** Image folder: how 0–255 pixel values become inputs (default "unit": [0, 1]). */
  normalize?: NormalizeSpec;
  /** Image folder: random transforms of training samples (never validation). */
  augment?: AugmentSpec;
  /** Image folder: a corrupt or unsupported image stops the run or is left out (default "skip"). */
  onBadImage?: 'error' | 'skip';
  shuffle?: boolean;
  seed?: number;
}

export type NormalizePreset = 'unit' | 'symmetric' | 'imagenet';
/** A preset, or per-channel mean and std in [0, 1] units (one value or one per channel). */
export type NormalizeSpec = NormalizePreset | { mean: number[]; std: number[] };

/** The "imagenet" preset: torchvision's per-channel (RGB) mean and std, in [0, 1] units. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

export interface RandomResizedCropSpec {
  /** Fraction of the image area, [min, max] (default [0.08, 1]). */
  scale?: [number, number];
  /** Aspect ratio width/height, [min, max] (default [3/4, 4/3]). */
  ratio?: [number, number];
}

export interface AugmentSpec {
  randomResizedCrop?: boolean | RandomResizedCropSpec;
  horizontalFlip?: boolean;
  verticalFlip?: boolean;
  /** Largest rotation, degrees. */
  rotation?: number;
  /** Largest shift, as a fraction of width and height. */
  translate?: number;
  /** Brightness factor in [1 − b, 1 + b]. */
  brightness?: number;
  /** Contrast factor in [1 − c, 1 + c]. */
  contrast?: number;
}

/** The image-folder settings the plan editor's data section edits, as paths under `data`. */
export const DATA_FIELDS = [
  'normalize',
  'onBadImage',
  'augment.randomResizedCrop',
  'augment.horizontalFlip',
  'augment.verticalFlip',
  'augment.rotation',
  'augment.translate',
  'augment.brightness',
  'augment.contrast',
] as const satisfies ReadonlyArray<'normalize' | 'onBadImage' | `augment.${keyof AugmentSpec}`>;
export type DataField = (typeof DATA_FIELDS)[number];

export interface ScheduleSpec {
  type: ScheduleType;
  /** Fraction of the scope's steps (< 1, rounded up) or a whole number of steps (≥ 1). */
  warmup?: number;
  cutFrac?: number;
  ratio?: number;
  pctStart?: number;
  divFactor?: number;
  finalDivFactor?: number;
  scope?: ScheduleScope;
}

export interface EarlyStoppingSpec {
  /** Epochs without improvement before stopping. */
  patience: number;
  metric?: 'valLoss' | 'valAccuracy';
  minDelta?: number;
}

export interface TrainingSpec {
  epochs?: number;
  batchSize?: number;
  lr?: number;
  optimizer?: OptimizerName;
  betas?: [number, number];
  eps?: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  noDecay?: string[];
  schedule?: ScheduleSpec;
  seed?: number;
  earlyStopping?: EarlyStoppingSpec;
  /** Collect per-layer gradient norms and update ratios every N steps (0 = never). */
  diagnosticsEvery?: number;
}

export interface GroupSpec {
  name: string;
  layers: string[];
  lrMult?: number;
  frozen?: boolean;
  weightDecay?: number;
  batchNorm?: BatchNormPolicy;
}

export type DiscriminativeSpec =
  | { type: 'ulmfit'; factor?: number }
  | { type: 'layerDecay'; gamma: number }
  /** fastai's `slice(low, high)`: multipliers spread geometrically from low/high (bottom) to 1 (top). */
  | { type: 'geometric'; low: number; high: number };

export interface LayerOverride {
  lrMult?: number;
  frozen?: boolean;
  weightDecay?: number;
  batchNorm?: BatchNormPolicy;
}

export interface UnfreezeStageSpec {
  epochs: number;
  /** Group names trained in this stage, or "all". */
  train: string[] | 'all';
  /** Replaces `training.lr` for this stage. */
  lr?: number;
}

export type UnfreezeSpec =
  | { mode: 'gradual'; epochsPerStage?: number }
  | { stages: UnfreezeStageSpec[] };

export interface LastRunResult {
  folder: string;
  date: string;
  backend: string;
  epochs: number;
  stopped: 'completed' | 'earlyStopping' | 'cancelled' | 'nonFinite';
  best?: { epoch: number; valLoss?: number; valAccuracy?: number };
  final?: { trainLoss?: number; valLoss?: number; valAccuracy?: number };
  /** data.test, evaluated once: final weights, and the best epoch's when a best copy was kept. */
  test?: { accuracy?: number; loss: number; bestAccuracy?: number; bestLoss?: number };
}

export interface LrFinderResult {
  date: string;
  suggestedLr: number;
  method: 'valley' | 'steep' | 'minimum';
  mode: 'global' | 'group';
  group?: string;
  curve: string;
  plot?: string;
}

export type DistributedBackend = 'gloo' | 'nccl' | 'auto';

/** How `layerwise train` runs a plan-only PyTorch model (src/engine/pytorch-run.ts). */
export interface PytorchSpec {
  /** `file.py:function`; the file relative to the plan's folder. */
  entry: string;
  /** Ranks on this machine (default 1); > 1 runs under torch.distributed.run with DDP. */
  nproc?: number;
  backend?: DistributedBackend;
  /** The interpreter (default `python3`); the CLI's --python and the setting layerwise.pythonPath win. */
  python?: string;
}

export interface PlanResults {
  lastRun?: LastRunResult;
  lrFinder?: LrFinderResult;
  [key: string]: unknown;
}

export interface Plan {
  $schema?: string;
  model: string;
  head?: HeadSpec;
  data?: DataSpec;
  task?: Task;
  training?: TrainingSpec;
  groups?: GroupSpec[];
  /** BatchNorm mode of every BN layer that trains, unless its group or layers[name] says otherwise (default "train"). */
  batchNorm?: BatchNormPolicy;
  discriminative?: DiscriminativeSpec;
  layers?: Record<string, LayerOverride>;
  unfreeze?: UnfreezeSpec;
  output?: string;
  pytorch?: PytorchSpec;
  results?: PlanResults;
}

/** Defaults the spec fixes; one place so the resolver, trainer, schema docs and UI agree. */
export const DEFAULTS = {
  epochs: 1,
  batchSize: 32,
  lr: 1e-3,
  optimizer: 'adamw' as OptimizerName,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  momentum: 0,
  nesterov: false,
  /** AdamW's default; Adam and SGD default to 0 as in PyTorch. */
  adamwWeightDecay: 0.01,
  noDecay: ['bias', 'norm'],
  ulmfitFactor: 2.6,
  stlrCutFrac: 0.1,
  stlrRatio: 32,
  onecyclePctStart: 0.25,
  onecycleDivFactor: 25,
  onecycleFinalDivFactor: 1e4,
  scheduleScope: 'stage' as ScheduleScope,
  shuffle: true,
  seed: 0,
  output: 'runs',
  epochsPerStage: 1,
  diagnosticsEvery: 10,
  imageScale: 1 / 255,
  batchNorm: 'train' as BatchNormPolicy,
  normalize: 'unit' as NormalizePreset,
  onBadImage: 'skip' as 'error' | 'skip',
  /** torchvision RandomResizedCrop's defaults. */
  cropScale: [0.08, 1] as [number, number],
  cropRatio: [3 / 4, 4 / 3] as [number, number],
} as const;

export const DEFAULT_GROUP = 'default';

export function defaultWeightDecay(optimizer: OptimizerName): number {
  return optimizer === 'adamw' ? DEFAULTS.adamwWeightDecay : 0;
}

/** Is any augmentation switched on? An empty `augment: {}` (or every transform off) is the same as none. */
export function augmentIsOn(spec: AugmentSpec | undefined): boolean {
  if (spec === undefined) return false;
  return (spec.randomResizedCrop !== undefined && spec.randomResizedCrop !== false) ||
    spec.horizontalFlip === true || spec.verticalFlip === true ||
    (spec.rotation ?? 0) > 0 || (spec.translate ?? 0) > 0 || (spec.brightness ?? 0) > 0 || (spec.contrast ?? 0) > 0;
}
