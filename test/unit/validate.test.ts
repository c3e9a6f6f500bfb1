import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import schema from '../../src/core/plan.schema.json';
import { collectPlanProblems, parsePlanText, SUPPORTED_KEYWORDS, validatePlanValue } from '../../src/core/validate.ts';
import { LayerwiseError } from '../../src/core/errors.ts';
import type {
  DataSpec,
  EarlyStoppingSpec,
  GroupSpec,
  HeadSpec,
  LayerOverride,
  Plan,
  TrainingSpec,
} from '../../src/core/plan.ts';

const FILE = 'layerwise.json';

// ajv (dev only) is an independent reader of the same schema: it must agree with the
// interpreter on which plans the schema itself rejects.
const ajv = new Ajv({ strict: false, allErrors: true });
const ajvValidate = ajv.compile(schema);

function basePlan(): Record<string, unknown> {
  return {
    model: 'models/base/model.json',
    data: { train: 'data/train.csv', validation: 'data/val.csv' },
    training: { epochs: 2, lr: 0.001 },
    groups: [
      { name: 'base', layers: ['conv2d_*'] },
      { name: 'head', layers: ['dense_*'] },
    ],
  };
}

type Mutable = Record<string, unknown> & {
  data: Record<string, unknown>;
  training: Record<string, unknown>;
  groups: Array<Record<string, unknown>>;
};

interface BadPlan {
  name: string;
  edit: (p: Mutable) => unknown;
  field: string;
  problem: string;
  /** Whether the JSON Schema alone rejects it (ajv must agree), or only the semantic checks. */
  bySchema: boolean;
}

const BAD_PLANS: BadPlan[] = [
  { name: 'lr is a word', edit: (p) => ((p.training.lr = 'fast'), p), field: 'training.lr', problem: 'must be a number > 0 (got "fast")', bySchema: true },
  { name: 'lr is zero', edit: (p) => ((p.training.lr = 0), p), field: 'training.lr', problem: 'must be a number > 0 (got 0)', bySchema: true },
  {
    name: 'lr_mult typo in a group',
    edit: (p) => ((p.groups[0]!.lr_mult = 0.1), p),
    field: 'groups[0].lr_mult',
    problem: 'unknown property "lr_mult" — did you mean "lrMult"?',
    bySchema: true,
  },
  { name: 'misspelt top-level field', edit: (p) => ({ ...p, trainig: {} }), field: 'trainig', problem: 'unknown property "trainig" — did you mean "training"?', bySchema: true },
  { name: 'learning_rate alias', edit: (p) => ((p.training.learning_rate = 0.1), p), field: 'training.learning_rate', problem: 'unknown property "learning_rate" — did you mean "lr"?', bySchema: true },
  { name: 'model missing', edit: (p) => ((delete p.model), p), field: 'model', problem: 'is required', bySchema: true },
  { name: 'model empty', edit: (p) => ((p.model = ''), p), field: 'model', problem: 'must not be empty', bySchema: true },
  {
    name: 'unknown optimizer',
    edit: (p) => ((p.training.optimizer = 'adamx'), p),
    field: 'training.optimizer',
    problem: 'must be one of "adamw", "adam", "sgd" (got "adamx") — did you mean "adamw"?',
    bySchema: true,
  },
  { name: 'fractional batch size', edit: (p) => ((p.training.batchSize = 1.5), p), field: 'training.batchSize', problem: 'must be a whole number >= 1 (got 1.5)', bySchema: true },
  { name: 'one beta', edit: (p) => ((p.training.betas = [0.9]), p), field: 'training.betas', problem: 'must be a list of 2 numbers >= 0 and < 1 (got 1 item)', bySchema: true },
  { name: 'beta2 of 1', edit: (p) => ((p.training.betas = [0.9, 1]), p), field: 'training.betas[1]', problem: 'must be a number >= 0 and < 1 (got 1)', bySchema: true },
  {
    name: 'fractional warm-up steps',
    edit: (p) => ((p.training.schedule = { type: 'cosine', warmup: 2.5 }), p),
    field: 'training.schedule.warmup',
    problem: 'must be a fraction >= 0 and < 1 of the steps, or a whole number of steps >= 1 (got 2.5)',
    bySchema: true,
  },
  {
    name: 'warm-up on a slanted triangular schedule',
    edit: (p) => ((p.training.schedule = { type: 'stlr', warmup: 0.1 }), p),
    field: 'training.schedule.warmup',
    problem: '"warmup" does not apply to type "stlr" (only to "constant", "linear", "cosine")',
    bySchema: true,
  },
  {
    name: 'schedule without a type',
    edit: (p) => ((p.training.schedule = { warmup: 0.1 }), p),
    field: 'training.schedule.type',
    problem: 'is required: one of "constant", "linear", "cosine", "stlr", "onecycle"',
    bySchema: true,
  },
  {
    name: 'misspelt discriminative type',
    edit: (p) => ({ ...p, discriminative: { type: 'ulmfitt' } }),
    field: 'discriminative.type',
    problem: 'must be one of "ulmfit", "layerDecay", "geometric" (got "ulmfitt") — did you mean "ulmfit"?',
    bySchema: true,
  },
  { name: 'ulmfit factor 0', edit: (p) => ({ ...p, discriminative: { type: 'ulmfit', factor: 0 } }), field: 'discriminative.factor', problem: 'must be a number > 0 (got 0)', bySchema: true },
  {
    name: 'layer decay gamma above 1',
    edit: (p) => ({ ...p, discriminative: { type: 'layerDecay', gamma: 1.5 } }),
    field: 'discriminative.gamma',
    problem: 'must be a number > 0 and <= 1 (got 1.5)',
    bySchema: true,
  },
  { name: 'layer decay without gamma', edit: (p) => ({ ...p, discriminative: { type: 'layerDecay' } }), field: 'discriminative.gamma', problem: 'is required', bySchema: true },
  {
    name: 'geometric low above high',
    edit: (p) => ({ ...p, discriminative: { type: 'geometric', low: 0.01, high: 0.001 } }),
    field: 'discriminative.low',
    problem: 'must be <= high (got low 0.01 > high 0.001)',
    bySchema: false,
  },
  {
    name: 'duplicate group names',
    edit: (p) => ((p.groups[1]!.name = 'base'), p),
    field: 'groups[1].name',
    problem: 'duplicate group name "base" (also groups[0].name)',
    bySchema: false,
  },
  {
    name: 'a group named default',
    edit: (p) => ((p.groups[0]!.name = 'default'), p),
    field: 'groups[0].name',
    problem: '"default" is reserved for the implicit group of layers no pattern matches; pick another name',
    bySchema: false,
  },
  {
    name: 'stage trains an unknown group',
    edit: (p) => ({ ...p, unfreeze: { stages: [{ epochs: 1, train: ['head'] }, { epochs: 2, train: ['haed', 'base'] }] } }),
    field: 'unfreeze.stages[1].train[0]',
    problem: 'unknown group "haed" — did you mean "head"? (the plan\'s groups are "base", "head"; "default" is the group of unmatched layers)',
    bySchema: false,
  },
  {
    name: 'invalid regex pattern',
    edit: (p) => ((p.groups[0]!.layers = ['conv2d_*', 're:block(1']), p),
    field: 'groups[0].layers[1]',
    problem: 'invalid regular expression "block(1": Unterminated group',
    bySchema: false,
  },
  {
    name: 'regex valid only inside the matcher\'s wrapping',
    edit: (p) => ((p.groups[0]!.layers = ['re:a)(b']), p),
    field: 'groups[0].layers[0]',
    problem: 'invalid regular expression "a)(b": Unmatched \')\'',
    bySchema: false,
  },
  {
    name: 'validation and validationSplit',
    edit: (p) => ((p.data.validationSplit = 0.2), p),
    field: 'data.validationSplit',
    problem: 'cannot be used together with data.validation; keep one of them',
    bySchema: false,
  },
  {
    name: 'validationSplit of 1',
    edit: (p) => ((delete p.data.validation, (p.data.validationSplit = 1)), p),
    field: 'data.validationSplit',
    problem: 'must be a number > 0 and < 1 (got 1)',
    bySchema: true,
  },
  {
    name: 'early stopping without validation data',
    edit: (p) => ((delete p.data.validation, (p.training.earlyStopping = { patience: 3 })), p),
    field: 'training.earlyStopping',
    problem: 'needs validation data: set data.validation or data.validationSplit',
    bySchema: false,
  },
  {
    name: 'early stopping on accuracy for regression',
    edit: (p) => ({ ...p, task: 'regression', training: { earlyStopping: { patience: 2, metric: 'valAccuracy' } } }),
    field: 'training.earlyStopping.metric',
    problem: '"valAccuracy" needs a classification task (task is "regression"); use "valLoss"',
    bySchema: false,
  },
  {
    name: 'gradual mode and explicit stages together',
    edit: (p) => ({ ...p, unfreeze: { mode: 'gradual', stages: [{ epochs: 1, train: 'all' }] } }),
    field: 'unfreeze',
    problem: '"mode" and "stages" cannot be used together',
    bySchema: true,
  },
  { name: 'schedule given as its type name', edit: (p) => ((p.training.schedule = 'cosine'), p), field: 'training.schedule', problem: 'must be an object (got "cosine")', bySchema: true },
  { name: 'unfreeze given as its mode name', edit: (p) => ({ ...p, unfreeze: 'gradual' }), field: 'unfreeze', problem: 'must be an object (got "gradual")', bySchema: true },
  { name: 'misspelt unfreeze mode', edit: (p) => ({ ...p, unfreeze: { mode: 'gradually' } }), field: 'unfreeze.mode', problem: 'must be "gradual" (got "gradually")', bySchema: true },
  { name: 'empty unfreeze', edit: (p) => ({ ...p, unfreeze: {} }), field: 'unfreeze', problem: 'must have "mode" or "stages"', bySchema: true },
  {
    name: 'empty stage list',
    edit: (p) => ({ ...p, unfreeze: { stages: [] } }),
    field: 'unfreeze.stages',
    problem: 'must be a non-empty list of objects (got an empty list)',
    bySchema: true,
  },
  {
    name: 'stage train misspells all',
    edit: (p) => ({ ...p, unfreeze: { stages: [{ epochs: 1, train: 'alll' }] } }),
    field: 'unfreeze.stages[0].train',
    problem: 'must be "all" or a list of group names (got "alll")',
    bySchema: true,
  },
  {
    name: 'stage train list holds a number',
    edit: (p) => ({ ...p, unfreeze: { stages: [{ epochs: 1, train: ['head', 2] }] } }),
    field: 'unfreeze.stages[0].train[1]',
    problem: 'must be a non-empty string (got 2)',
    bySchema: true,
  },
  { name: 'head outputs misspelt auto', edit: (p) => ({ ...p, head: { outputs: 'auo' } }), field: 'head.outputs', problem: 'must be a whole number >= 1 or "auto" (got "auo")', bySchema: true },
  {
    name: 'layer override frozen as a word',
    edit: (p) => ({ ...p, layers: { 'block 1/conv': { frozen: 'yes' } } }),
    field: 'layers["block 1/conv"].frozen',
    problem: 'must be true or false (got "yes")',
    bySchema: true,
  },
  {
    name: 'negative layer multiplier',
    edit: (p) => ({ ...p, layers: { dense_1: { lrMult: -1 } } }),
    field: 'layers.dense_1.lrMult',
    problem: 'must be a number >= 0 (got -1)',
    bySchema: true,
  },
  { name: 'image size with one number', edit: (p) => ((p.data.size = [28]), p), field: 'data.size', problem: 'must be a list of 2 whole numbers >= 1 (got 1 item)', bySchema: true },
  { name: 'two channels', edit: (p) => ((p.data.channels = 2), p), field: 'data.channels', problem: 'must be one of 1, 3 (got 2)', bySchema: true },
  { name: 'misspelt augmentation', edit: (p) => ((p.data.augment = { hflip: true }), p), field: 'data.augment.hflip', problem: 'unknown property "hflip" (allowed: "randomResizedCrop", "horizontalFlip", "verticalFlip", "rotation", "translate", "brightness", "contrast")', bySchema: true },
  { name: 'unknown normalize preset', edit: (p) => ((p.data.normalize = 'imagnet'), p), field: 'data.normalize', problem: 'must be one of "unit", "symmetric", "imagenet" (got "imagnet") — did you mean "imagenet"?', bySchema: true },
  { name: 'onBadImage is a word it does not know', edit: (p) => ((p.data.onBadImage = 'ignore'), p), field: 'data.onBadImage', problem: 'must be one of "skip", "error" (got "ignore")', bySchema: true },
  { name: 'rotation beyond 180°', edit: (p) => ((p.data.augment = { rotation: 270 }), p), field: 'data.augment.rotation', problem: 'must be a number >= 0 and <= 180 (got 270)', bySchema: true },
  { name: 'scale and a normalize preset', edit: (p) => ((p.data.scale = 1), (p.data.normalize = 'symmetric'), p), field: 'data.scale', problem: 'cannot be combined with data.normalize "symmetric"; keep one of them', bySchema: false },
  { name: 'mean and std of different lengths', edit: (p) => ((p.data.normalize = { mean: [0.5, 0.5, 0.5], std: [0.5] }), p), field: 'data.normalize.std', problem: 'has 1 value(s) but mean has 3; give one per channel for both', bySchema: false },
  { name: 'crop scale upside down', edit: (p) => ((p.data.augment = { randomResizedCrop: { scale: [1, 0.5] } }), p), field: 'data.augment.randomResizedCrop.scale', problem: 'must be [min, max] with min <= max (got [1, 0.5])', bySchema: false },
  {
    name: 'image options on CSV data',
    edit: (p) => ((p.data.format = 'csv'), (p.data.size = [28, 28]), p),
    field: 'data.size',
    problem: 'applies to image folders only, but data.format is "csv"',
    bySchema: false,
  },
  {
    name: 'label listed as a feature',
    edit: (p) => ((p.data.label = 'y'), (p.data.features = ['x1', 'y']), p),
    field: 'data.features[1]',
    problem: '"y" is the label column (data.label) and cannot also be a feature',
    bySchema: false,
  },
  {
    name: 'a feature listed twice',
    edit: (p) => ((p.data.features = ['x1', 'x2', 'x1']), p),
    field: 'data.features[2]',
    problem: '"x1" is listed twice (also data.features[0])',
    bySchema: false,
  },
  {
    name: 'Nesterov without momentum',
    edit: (p) => ((p.training.optimizer = 'sgd'), (p.training.nesterov = true), p),
    field: 'training.nesterov',
    problem: 'Nesterov momentum needs training.momentum > 0 (as in torch.optim.SGD)',
    bySchema: false,
  },
  { name: 'misspelt task', edit: (p) => ({ ...p, task: 'regresion' }), field: 'task', problem: 'must be one of "classification", "regression" (got "regresion") — did you mean "regression"?', bySchema: true },
  { name: 'a list instead of a plan', edit: () => [], field: '(root)', problem: 'must be an object (got an empty list)', bySchema: true },
  { name: 'groups as an object', edit: (p) => ({ ...p, groups: { base: ['conv*'] } }), field: 'groups', problem: 'must be a list of objects (got an object)', bySchema: true },
  {
    name: 'a constructor key in a group',
    edit: (p) => ((p.groups[0]!['constructor'] = 1), p),
    field: 'groups[0].constructor',
    problem: 'unknown property "constructor" (allowed: "name", "layers", "lrMult", "frozen", "weightDecay", "batchNorm")',
    bySchema: true,
  },
  {
    name: 'a __proto__ key in a layer override',
    edit: (p) => ({ ...p, layers: JSON.parse('{ "__proto__": { "lrMult": "high" } }') as unknown }),
    field: 'layers.__proto__.lrMult',
    problem: 'must be a number >= 0 (got "high")',
    bySchema: true,
  },
  {
    name: 'group without layers',
    edit: (p) => ((p.groups[1] = { name: 'head', lrMult: 1 }), p),
    field: 'groups[1].layers',
    problem: 'is required',
    bySchema: true,
  },
];

test('the base plan of the bad-plan table is valid', () => {
  assert.doesNotThrow(() => validatePlanValue(basePlan(), FILE));
  assert.equal(ajvValidate(basePlan()), true);
});

test(`${BAD_PLANS.length} bad plans each name the file, the field and the problem`, () => {
  assert.ok(BAD_PLANS.length >= 20);
  assert.equal(new Set(BAD_PLANS.map((c) => c.name)).size, BAD_PLANS.length);
  for (const c of BAD_PLANS) {
    const plan = c.edit(basePlan() as Mutable);
    let error: unknown;
    try {
      validatePlanValue(plan, FILE);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof LayerwiseError, `${c.name}: expected a LayerwiseError, got ${String(error)}`);
    assert.equal(error.file, FILE, c.name);
    assert.equal(error.field, c.field, c.name);
    assert.equal(error.problem, c.problem, c.name);
    assert.equal(error.message, `${FILE}: ${c.field}: ${c.problem}`, c.name);
    // The same plan as text gives the same first problem.
    assert.throws(() => parsePlanText(JSON.stringify(plan, null, 2), FILE), { message: error.message }, c.name);
    assert.equal(ajvValidate(plan), !c.bySchema, `${c.name}: ajv ${c.bySchema ? 'should reject' : 'should accept'} it`);
  }
});

// Every field of the plan types, filled in: `Required<…>` makes the compiler list what is missing.
const head: Required<HeadSpec> = { cut: 'global_average_pooling2d', hidden: [64, 32], dropout: 0.2, outputs: 'auto', activation: 'softmax' };
// `validation` and `validationSplit` exclude each other, and `format` would rule out half the
// fields; the union-branch test below covers them.
const data: Required<Omit<DataSpec, 'validation' | 'format'>> = {
  train: 'data/train',
  validationSplit: 0.2,
  test: 'data/test',
  label: 'label',
  features: ['a'],
  size: [28, 28],
  channels: 1,
  scale: 1 / 255,
  normalize: 'unit',
  augment: {
    randomResizedCrop: { scale: [0.5, 1], ratio: [0.75, 1.25] },
    horizontalFlip: true,
    verticalFlip: false,
    rotation: 10,
    translate: 0.1,
    brightness: 0.2,
    contrast: 0.2,
  },
  onBadImage: 'error',
  shuffle: true,
  seed: 7,
};
const earlyStopping: Required<EarlyStoppingSpec> = { patience: 3, metric: 'valLoss', minDelta: 0.001 };
const training: Required<TrainingSpec> = {
  epochs: 6,
  batchSize: 64,
  lr: 3e-4,
  optimizer: 'sgd',
  betas: [0.9, 0.999],
  eps: 1e-8,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 0.01,
  noDecay: ['bias', 'norm', '*/gamma'],
  schedule: { type: 'onecycle', pctStart: 0.3, divFactor: 25, finalDivFactor: 1e4, scope: 'run' },
  seed: 42,
  earlyStopping,
  diagnosticsEvery: 5,
};
const groups: Array<Required<GroupSpec>> = [
  { name: 'embeddings', layers: ['embedding'], lrMult: 0.05, frozen: false, weightDecay: 0, batchNorm: 'train' },
  { name: 'base', layers: ['conv2d_*', 'block?_*', 're:batch_normalization(_[0-9]+)?'], lrMult: 0.1, frozen: false, weightDecay: 0.01, batchNorm: 'inference' },
  { name: 'head', layers: ['dense_*'], lrMult: 1, frozen: false, weightDecay: 0.02, batchNorm: 'train' },
];
const override: Required<LayerOverride> = { lrMult: 0, frozen: true, weightDecay: 0, batchNorm: 'inference' };
const FULL_PLAN: Required<Plan> = {
  $schema: './node_modules/layerwise/plan.schema.json',
  model: 'models/base/model.json',
  head,
  data,
  task: 'classification',
  training,
  groups,
  batchNorm: 'inference',
  discriminative: { type: 'ulmfit', factor: 2.6 },
  layers: { conv2d_1: override, 'block1/conv': { lrMult: 0.5 } },
  unfreeze: { stages: [{ epochs: 1, train: ['head'] }, { epochs: 2, train: ['base', 'head', 'default'], lr: 1e-4 }, { epochs: 3, train: 'all' }] },
  output: 'runs',
  pytorch: { entry: 'train_lw.py:build', nproc: 2, backend: 'gloo', python: 'python3' },
  results: {
    lastRun: { folder: 'runs/2025-01-01', date: '2025-01-01T00:00:00Z', backend: 'wasm', epochs: 6, stopped: 'completed', best: { epoch: 4, valLoss: 0.3 }, test: { loss: 0.4, accuracy: 0.8, bestLoss: 0.35, bestAccuracy: 0.82 } },
    lrFinder: { date: '2025-01-01T00:00:00Z', suggestedLr: 3e-4, method: 'valley', mode: 'global', curve: 'runs/lr-find/curve.csv' },
    note: 'results is a free object',
  },
};

const FULL_PLAN_TEXT = `// A plan that uses every field, with comments and trailing commas.
{
  "$schema": "./node_modules/layerwise/plan.schema.json",
  "model": "models/base/model.json", // the pre-trained model
  "head": { "cut": "global_average_pooling2d", "hidden": [64, 32], "dropout": 0.2, "outputs": "auto", "activation": "softmax" },
  "data": {
    "train": "data/train",
    "validationSplit": 0.2,
    "test": "data/test",
    "label": "label",
    "features": ["a"],
    "size": [28, 28],
    "channels": 1,
    "scale": ${1 / 255},
    "normalize": "unit",
    "augment": {
      "randomResizedCrop": { "scale": [0.5, 1], "ratio": [0.75, 1.25] },
      "horizontalFlip": true,
      "verticalFlip": false,
      "rotation": 10,
      "translate": 0.1,
      "brightness": 0.2,
      "contrast": 0.2
    },
    "onBadImage": "error",
    "shuffle": true,
    "seed": 7,
  },
  "task": "classification",
  /* the optimizer */
  "training": {
    "epochs": 6, "batchSize": 64, "lr": 3e-4, "optimizer": "sgd", "betas": [0.9, 0.999], "eps": 1e-8,
    "momentum": 0.9, "nesterov": true, "weightDecay": 0.01, "noDecay": ["bias", "norm", "*/gamma"],
    "schedule": { "type": "onecycle", "pctStart": 0.3, "divFactor": 25, "finalDivFactor": 1e4, "scope": "run" },
    "seed": 42,
    "earlyStopping": { "patience": 3, "metric": "valLoss", "minDelta": 0.001 },
    "diagnosticsEvery": 5,
  },
  "groups": [
    { "name": "embeddings", "layers": ["embedding"], "lrMult": 0.05, "frozen": false, "weightDecay": 0, "batchNorm": "train" },
    { "name": "base", "layers": ["conv2d_*", "block?_*", "re:batch_normalization(_[0-9]+)?"], "lrMult": 0.1, "frozen": false, "weightDecay": 0.01, "batchNorm": "inference" },
    { "name": "head", "layers": ["dense_*"], "lrMult": 1, "frozen": false, "weightDecay": 0.02, "batchNorm": "train" },
  ],
  "batchNorm": "inference",
  "discriminative": { "type": "ulmfit", "factor": 2.6 },
  "layers": { "conv2d_1": { "lrMult": 0, "frozen": true, "weightDecay": 0, "batchNorm": "inference" }, "block1/conv": { "lrMult": 0.5 } },
  "unfreeze": { "stages": [
    { "epochs": 1, "train": ["head"] },
    { "epochs": 2, "train": ["base", "head", "default"], "lr": 1e-4 },
    { "epochs": 3, "train": "all" },
  ] },
  "output": "runs",
  "pytorch": { "entry": "train_lw.py:build", "nproc": 2, "backend": "gloo", "python": "python3" },
  "results": {
    "lastRun": { "folder": "runs/2025-01-01", "date": "2025-01-01T00:00:00Z", "backend": "wasm", "epochs": 6, "stopped": "completed", "best": { "epoch": 4, "valLoss": 0.3 }, "test": { "loss": 0.4, "accuracy": 0.8, "bestLoss": 0.35, "bestAccuracy": 0.82 } },
    "lrFinder": { "date": "2025-01-01T00:00:00Z", "suggestedLr": 3e-4, "method": "valley", "mode": "global", "curve": "runs/lr-find/curve.csv" },
    "note": "results is a free object",
  },
}
`;

test('a plan using every field parses from JSONC to exactly the written values', () => {
  assert.deepEqual(parsePlanText(FULL_PLAN_TEXT, FILE), FULL_PLAN);
  assert.deepEqual(collectPlanProblems(FULL_PLAN_TEXT, FILE), []);
  assert.equal(ajvValidate(FULL_PLAN), true, JSON.stringify(ajvValidate.errors));
  // and round-trips through plain JSON
  assert.deepEqual(validatePlanValue(JSON.parse(JSON.stringify(FULL_PLAN)), FILE), FULL_PLAN);
});

test('the other branches of every union are accepted too', () => {
  const variants: Array<Partial<Plan>> = [
    { discriminative: { type: 'layerDecay', gamma: 0.75 } },
    { discriminative: { type: 'geometric', low: 1e-5, high: 1e-3 } },
    { discriminative: { type: 'geometric', low: 1e-3, high: 1e-3 } },
    { unfreeze: { mode: 'gradual', epochsPerStage: 2 } },
    { unfreeze: { mode: 'gradual' } },
    { training: { schedule: { type: 'cosine', warmup: 0.1, scope: 'stage' } } },
    { training: { schedule: { type: 'linear', warmup: 100 } } },
    { training: { schedule: { type: 'constant', warmup: 0 } } },
    { training: { schedule: { type: 'stlr', cutFrac: 0.1, ratio: 32 } } },
    { head: { outputs: 10, activation: 'linear' } },
    { data: { train: 'd.csv', validation: 'v.csv', format: 'csv', label: 'y', features: ['a', 'b'] } },
    { data: { train: 'images', format: 'imagefolder', size: [32, 32], channels: 3, scale: 1 } },
    { data: { train: 'images', normalize: 'symmetric', augment: { randomResizedCrop: true } } },
    { data: { train: 'images', normalize: 'imagenet', augment: { randomResizedCrop: false, horizontalFlip: false }, onBadImage: 'skip' } },
    { data: { train: 'images', normalize: { mean: [0.5], std: [0.25] }, augment: {} } },
    { groups: [{ name: 'empty for now', layers: [] }] },
    { layers: {} },
    { results: {} },
  ];
  for (const v of variants) {
    const plan = { model: 'm/model.json', ...v };
    assert.doesNotThrow(() => validatePlanValue(plan, FILE), JSON.stringify(v));
    assert.equal(ajvValidate(plan), true, JSON.stringify(v));
  }
});

test('syntax errors name the file and line:column', () => {
  const text = '{\n  "model": "m/model.json"\n  "task": "regression"\n}';
  assert.throws(() => parsePlanText(text, FILE), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError);
    assert.equal(e.file, FILE);
    assert.equal(e.field, '3:3');
    assert.equal(e.message, `${FILE}: 3:3: syntax error: a comma is expected`);
    return true;
  });
  assert.throws(() => parsePlanText('', FILE), { message: `${FILE}: 1:1: the file is empty (a plan is a JSON object)` });
  assert.throws(() => parsePlanText('{ "model": "m" /* open', FILE), { message: /^layerwise\.json: 1:16: syntax error: the comment is not closed/ });
  // an invisible byte-order mark (Notepad's "UTF-8 with BOM") is named, not "unexpected character"
  assert.throws(() => parsePlanText('\ufeff{ "model": "m/model.json" }', FILE), {
    message: `${FILE}: 1:1: the file starts with a byte-order mark (BOM); save it as UTF-8 without BOM`,
  });
});

test('comments and trailing commas are allowed', () => {
  const plan = parsePlanText('// c\n{ /* c */ "model": "m/model.json", // c\n "task": "regression", }\n', FILE);
  assert.deepEqual(plan, { model: 'm/model.json', task: 'regression' });
});

test('a duplicate key is a problem at the second key', () => {
  const text = '{\n  "model": "a/model.json",\n  "model": "b/model.json"\n}';
  assert.throws(() => parsePlanText(text, FILE), { message: `${FILE}: model: duplicate property "model" (JSON keeps only the last one; remove one)` });
  const [p] = collectPlanProblems(text, FILE);
  assert.equal(p?.offset, text.lastIndexOf('"model"'));
  assert.equal(p?.length, '"model"'.length);
});

test('collectPlanProblems returns every problem with its text range, in document order', () => {
  const text = `{
  // three mistakes
  "model": "m/model.json",
  "training": { "lr": "fast", "epochs": 0 },
  "groups": [{ "name": "head", "layers": ["dense_*"], "lr_mult": 2 }],
  "unfreeze": { "stages": [{ "epochs": 1, "train": ["haed"] }] }
}`;
  const problems = collectPlanProblems(text, FILE);
  const at = (needle: string, from = 0): { offset: number; length: number } => ({ offset: text.indexOf(needle, from), length: needle.length });
  assert.deepEqual(
    problems.map((p) => ({ field: p.field, offset: p.offset, length: p.length })),
    [
      { field: 'training.lr', ...at('"fast"') },
      { field: 'training.epochs', ...at('0', text.indexOf('"epochs": 0') + 10) },
      { field: 'groups[0].lr_mult', ...at('"lr_mult"') },
      { field: 'unfreeze.stages[0].train[0]', ...at('"haed"') },
    ],
  );
  assert.deepEqual(problems[2]?.path, ['groups', 0, 'lr_mult']);
  assert.equal(problems[0]?.message, 'must be a number > 0 (got "fast")');
  // parsePlanText throws the first of them
  assert.throws(() => parsePlanText(text, FILE), { message: `${FILE}: training.lr: must be a number > 0 (got "fast")` });
});

test('a missing property is placed at the key of the object that lacks it', () => {
  const text = '{\n  "model": "m/model.json",\n  "data": { "validation": "v.csv" }\n}';
  const [p] = collectPlanProblems(text, FILE);
  assert.equal(p?.field, 'data.train');
  assert.equal(p?.message, 'is required');
  assert.equal(text.slice(p.offset, p.offset + p.length), '"data"');
  const [q] = collectPlanProblems('{ "task": "regression" }', FILE);
  assert.deepEqual({ field: q?.field, offset: q?.offset, length: q?.length }, { field: 'model', offset: 0, length: 1 });
});

test('syntax problems carry their offset and stop further checks', () => {
  const text = '{ "model": 12, "task": }';
  const problems = collectPlanProblems(text, FILE);
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.offset, text.indexOf('}'));
  assert.equal(problems[0]?.field, '1:24');
});

// ---------------------------------------------------------------------------------------------
// The schema file itself

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const DOCUMENTATION = new Set(['$schema', 'title', 'description', 'markdownDescription', 'default', 'examples', 'enumDescriptions', 'defaultSnippets']);

function walkSchemas(node: Json, visit: (s: { [k: string]: Json }, where: string) => void, where = '#'): void {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return;
  visit(node, where);
  const children = (key: string): void => {
    const v = node[key];
    if (Array.isArray(v)) v.forEach((c, i) => walkSchemas(c, visit, `${where}/${key}/${i}`));
    else if (v !== null && typeof v === 'object') walkSchemas(v, visit, `${where}/${key}`);
  };
  for (const key of ['properties', 'definitions']) {
    const map = node[key];
    if (map !== null && typeof map === 'object' && !Array.isArray(map)) {
      for (const [k, v] of Object.entries(map)) walkSchemas(v, visit, `${where}/${key}/${k}`);
    }
  }
  for (const key of ['items', 'anyOf', 'oneOf', 'additionalProperties']) children(key);
}

test('the schema uses only keywords the interpreter enforces (or documentation)', () => {
  walkSchemas(schema as unknown as Json, (s, where) => {
    for (const key of Object.keys(s)) assert.ok(SUPPORTED_KEYWORDS.has(key) || DOCUMENTATION.has(key), `${where}: unsupported keyword ${key}`);
  });
});

test('every property in the schema is documented, and objects reject unknown members except results', () => {
  walkSchemas(schema as unknown as Json, (s, where) => {
    const props = s.properties;
    if (props !== null && typeof props === 'object' && !Array.isArray(props)) {
      for (const [name, p] of Object.entries(props)) {
        assert.ok(p !== null && typeof p === 'object' && !Array.isArray(p));
        // a bare $ref takes its documentation from the definition
        const documented = typeof p.$ref === 'string' || (typeof p.description === 'string' && typeof p.markdownDescription === 'string');
        assert.ok(documented, `${where}/properties/${name} lacks description/markdownDescription`);
      }
      const underResults = where.includes('/definitions/results');
      if (s.type === 'object' && !underResults) assert.equal(s.additionalProperties, false, `${where} must set additionalProperties: false`);
    }
  });
  assert.equal((schema as { $schema: string }).$schema, 'http://json-schema.org/draft-07/schema#');
});

test('the schema documents the rules users must know', () => {
  const text = JSON.stringify(schema);
  for (const phrase of ['implicit group `\\"default\\"`', 'first** group', '`layers[name]` → its group → `discriminative`', '`[]` disables', 'any run of characters (including `.` and `/`)', '`re:`', 'W = ⌈warmup·T⌉', 'replaces `training.lr`', 'the last stage gets the remaining epochs']) {
    assert.ok(text.includes(phrase), `schema should mention: ${phrase}`);
  }
});
