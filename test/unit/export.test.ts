/**
 * The exporters' text, without Python: literals, pattern translation, the structure of each
 * target, and MMEngine's key matching replayed on every parameter. test/engine/export-torch.test.ts
 * runs the generated code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LayerwiseError } from '../../src/core/errors.ts';
import { exportPlan, type ExportInput } from '../../src/core/export/index.ts';
import { mmengineKeyOrder, mmengineKeys, mmengineWinner } from '../../src/core/export/mmengine.ts';
import { globToPython, jsRegexToPython, pyFloat, pyRegex } from '../../src/core/export/python.ts';
import { resolveGroups } from '../../src/core/groups.ts';
import type { Plan } from '../../src/core/plan.ts';
import { parsePlanText } from '../../src/core/validate.ts';
import { pytorchModelInfo, readPytorchModel, type TensorEntry } from '../../src/core/pytorch-model.ts';
import { resolveStages } from '../../src/core/timeline.ts';

const repo = join(import.meta.dirname, '..', '..');

function input(plan: Plan, tensors: TensorEntry[]): ExportInput {
  const model = pytorchModelInfo(tensors, 'test', 'given');
  const resolution = resolveGroups(model, plan);
  return { plan, resolution, stages: resolveStages(plan, resolution), model, planName: 'test.layerwise.json' };
}

const t = (name: string, ...shape: number[]): TensorEntry => ({ name, shape, trainable: true });

test('Python literals read back as the same values', () => {
  assert.equal(pyFloat(1e-5), '1e-05');
  assert.equal(pyFloat(1.5e-7), '1.5e-07');
  assert.equal(pyFloat(0.0001), '0.0001');
  assert.equal(pyFloat(0.1), '0.1');
  assert.equal(pyFloat(1), '1.0');
  assert.equal(pyFloat(0), '0.0');
  assert.equal(pyFloat(1e16), '1e+16');
  assert.equal(pyFloat(2.6 ** -3), String(2.6 ** -3));
  assert.throws(() => pyFloat(NaN));
  assert.equal(pyRegex('a\\.b'), 'r"a\\.b"');
  assert.equal(pyRegex('a\\'), '"a\\\\"', 'a raw string cannot end in one backslash');
  assert.equal(pyRegex('say "x"'), '"say \\"x\\""');
});

test('globs and re: patterns become Python regexes with the same meaning', () => {
  assert.equal(globToPython('encoder.layer.?.*'), 'encoder\\.layer\\..\\..*');
  assert.equal(globToPython('a(b)+[c]'), 'a\\(b\\)\\+\\[c\\]');
  assert.equal(jsRegexToPython('(?<n>\\d+)\\.\\k<n>', {}), '(?P<n>\\d+)\\.(?P=n)');
  assert.equal(jsRegexToPython('(?<=a)b(?<!c)', {}), '(?<=a)b(?<!c)', 'lookbehinds are the same');
  for (const [source, what] of [['\\p{L}+', 'Unicode property'], ['a[^]', 'empty character class'], ['\\u{1F600}', 'code point']] as const) {
    assert.throws(
      () => jsRegexToPython(source, { field: 'groups[0].layers[0]' }),
      (e: unknown) => e instanceof LayerwiseError && e.field === 'groups[0].layers[0]' && e.problem.includes(what),
    );
  }
  const plan: Plan = { model: 'm', groups: [{ name: 'g', layers: ['re:\\p{L}+\\..*'] }] };
  assert.throws(() => exportPlan('pytorch', input(plan, [t('a.weight', 2, 2)])), (e: unknown) => e instanceof LayerwiseError && e.field === 'groups[0].layers[0]');
});

const PLAN: Plan = {
  model: 'm',
  groups: [
    { name: 'body', layers: ['encoder.*'], weightDecay: 0.1 },
    { name: 'head', layers: ['classifier'], lrMult: 1 },
  ],
  discriminative: { type: 'ulmfit', factor: 4 },
  layers: { 'encoder.0.fc': { lrMult: 0.5, frozen: true } },
  training: { lr: 3e-4, optimizer: 'sgd', momentum: 0.9, nesterov: true, schedule: { type: 'onecycle', scope: 'run' } },
  unfreeze: { mode: 'gradual', epochsPerStage: 2 },
};
const TENSORS = [t('encoder.0.fc.weight', 4, 4), t('encoder.0.fc.bias', 4), t('encoder.1.fc.weight', 4, 4), t('classifier.weight', 2, 4), t('classifier.bias', 2)];

test('pytorch: the plan\'s groups, overrides, stages, optimizer and schedule, resolved', () => {
  const text = exportPlan('pytorch', input(PLAN, TENSORS));
  assert.match(text, /^BASE_LR = 0\.0003 {2}# training\.lr$/m);
  assert.match(text, /^OPTIMIZER = "sgd"/m);
  assert.match(text, /^MOMENTUM = 0\.9 {2}# training\.momentum$/m);
  assert.match(text, /^NESTEROV = True/m);
  assert.match(text, /torch\.optim\.SGD\(groups, lr=BASE_LR, momentum=MOMENTUM, dampening=0, nesterov=NESTEROV, weight_decay=0\.0\)/);
  assert.doesNotMatch(text, /AdamW\(/);
  // the preset's multiplier, resolved, with its rule
  assert.match(text, /"name": "body",\n {8}"patterns": \[\n {12}\("encoder\.\*", re\.compile\(r"encoder\\\..\*", re\.DOTALL\)\),\n {8}\],\n {8}"lr_mult": 0\.25,\n {8}"lr_mult_rule": "discriminative ulmfit: 4\^-1",/);
  assert.match(text, /"weight_decay": 0\.1,/);
  assert.match(text, /^ {4}"encoder\.0\.fc": \{"lr_mult": 0\.5, "frozen": True, "weight_decay": None\},$/m);
  assert.match(text, /^STAGES = \[\n {4}\{"epochs": 2, "train": \["head"\], "lr": 0\.0003\},\n {4}\{"epochs": 2, "train": \["body", "head"\], "lr": 0\.0003\},\n\]\nTOTAL_EPOCHS = 4$/m);
  assert.match(text, /^SCHEDULE_SCOPE = "run"/m);
  assert.match(text, /torch 1\.13 OneCycleLR/);
  for (const fn of ['param_groups(model, stage=0)', 'make_optimizer(model)', 'schedule_factor(t, T)', 'apply_stage(model, optimizer, k)', 'print_plan(model, file=None)']) {
    assert.ok(text.includes(`def ${fn}:`), fn);
  }
  assert.match(text, /^class PlanSchedule\(_LRScheduler\):$/m);
  assert.doesNotMatch(text, /^(from|import) (?!json|math|re|types|torch)/m, 'torch and the standard library only');
});

test('hf-trainer: the PyTorch code plus a Trainer subclass and a stage callback', () => {
  const text = exportPlan('hf-trainer', input(PLAN, TENSORS));
  assert.match(text, /^from transformers import Trainer, TrainerCallback$/m);
  assert.match(text, /^class LayerwiseTrainer\(Trainer\):\n {4}"""/m);
  assert.match(text, /^class LayerwiseStages\(TrainerCallback\):$/m);
  assert.ok(text.includes('def apply_stage(model, optimizer, k):'));
  assert.ok(text.indexOf('class PlanSchedule') < text.indexOf('class LayerwiseTrainer'));
});

test('mmengine: custom_keys reproduce every parameter\'s settings under MMEngine\'s substring matching', () => {
  const cases: Array<{ plan: Plan; tensors: TensorEntry[] }> = [
    { plan: PLAN, tensors: TENSORS },
    {
      // a top-level `dense` whose key would also match `pooler.dense`, a root parameter, a
      // prefix without a dot, a regex, and a norm exempt from decay
      plan: {
        model: 'm',
        groups: [
          { name: 'emb', layers: ['cls_token', 'embed.*'], lrMult: 0.01 },
          { name: 'blocks', layers: ['blocks.1*', 're:blocks\\.[2-9]\\..*'], lrMult: 0.3 },
          { name: 'dense', layers: ['dense'], lrMult: 2 },
        ],
        training: { optimizer: 'adam' },
        layers: { 'blocks.12.norm': { weightDecay: 0.3 } },
      },
      tensors: [
        t('cls_token', 1, 4),
        t('embed.proj.weight', 4, 4),
        t('blocks.1.fc.weight', 4, 4),
        t('blocks.12.fc.weight', 4, 4),
        t('blocks.12.norm.weight', 4),
        t('blocks.3.fc.weight', 4, 4),
        t('blocks.3.fc.bias', 4),
        t('dense.weight', 4, 4),
        t('pooler.dense.weight', 4, 4),
        t('pooler.dense.bias', 4),
      ],
    },
  ];
  const bert = readPytorchModel(join(repo, 'examples', 'bert-seed', 'parameters.json'));
  const bertPlan = parsePlanText(readFileSync(join(repo, 'examples', 'bert-seed', 'layerwise.json'), 'utf8'), 'layerwise.json');
  for (const [i, c] of [...cases.map((c) => input(c.plan, c.tensors)), (() => {
    const resolution = resolveGroups(bert, bertPlan);
    return { plan: bertPlan, resolution, stages: resolveStages(bertPlan, resolution), model: bert, planName: 'bert' };
  })()].entries()) {
    const { keys, baseWeightDecay } = mmengineKeys(c);
    const ordered = mmengineKeyOrder(keys.keys());
    for (const p of c.resolution.params.filter((x) => x.trainable)) {
      const k = mmengineWinner(ordered, p.name);
      const s = k === undefined ? { lrMult: 1, decayMult: 1, frozen: false } : keys.get(k)!;
      assert.equal(s.frozen, p.frozen, `case ${i} ${p.name}: frozen (key ${k})`);
      if (p.frozen) continue;
      assert.ok(Math.abs(s.lrMult - p.lrMult) < 1e-15, `case ${i} ${p.name}: lr_mult ${s.lrMult} vs ${p.lrMult} (key ${k})`);
      assert.ok(Math.abs(baseWeightDecay * (s.decayMult ?? 1) - p.weightDecay) < 1e-15, `case ${i} ${p.name}: decay (key ${k})`);
    }
  }
  const text = exportPlan('mmengine', input(cases[1]!.plan, cases[1]!.tensors));
  assert.match(text, /optimizer=dict\(type="Adam", lr=0\.001, betas=\(0\.9, 0\.999\), eps=1e-08, weight_decay=0\.3\)/, 'Adam decays nothing by default: the base is the largest decay asked for');
  assert.match(text, /^ {12}"dense\.": dict\(lr_mult=2\.0, decay_mult=0\.0\),$/m);
  assert.match(text, /^ {12}"pooler\.dense\.": dict\(lr_mult=1\.0, decay_mult=0\.0\),$/m, 'pooler.dense gets its own key so "dense." does not take it');
  assert.match(text, /expanded into one key per layer they take:\n# "blocks\.1\*" \(groups\[1\]\.layers\[0\]\),/);
});

test('every target names the command that regenerates it and says what the plan warns about', () => {
  const plan: Plan = { model: 'm', groups: [{ name: 'a', layers: ['nothing.*'] }] };
  for (const target of ['pytorch', 'hf-trainer', 'mmengine'] as const) {
    const text = exportPlan(target, input(plan, [t('fc.weight', 2, 2)]));
    assert.ok(text.includes(`layerwise export test.layerwise.json --to ${target}`), target);
    assert.match(text, /pattern "nothing\.\*" of group "a" matches no layer/, target);
  }
});

test('examples/bert-seed/parameters.json is what scripts/make-bert-names.ts writes: BERT-base\'s 109,482,240 values plus the seed\'s classifier', async () => {
  const { bertParameters, renderParameterList } = await import('../../scripts/make-bert-names.ts');
  const params = bertParameters();
  assert.equal(readFileSync(join(repo, 'examples', 'bert-seed', 'parameters.json'), 'utf8'), renderParameterList(params));
  const count = (ps: ReadonlyArray<{ name: string; shape: number[] }>) => ps.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  // the published size of bert-base-uncased's BertModel
  assert.equal(count(params.filter((p) => !p.name.startsWith('classifier.'))), 109_482_240);
  assert.equal(count(params.filter((p) => p.name.startsWith('classifier.'))), 768 * 128 + 128 + 128 * 2 + 2);
});
