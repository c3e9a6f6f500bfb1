/**
 * The plan init writes (src/core/init-plan.ts) and the recipes (src/core/presets.ts): a new head
 * where the model ends in a classifier, the head in the top group (now and when a head is added
 * later), no layer in the implicit "default" group, plain ASCII group names, explicit stages that
 * resolve as written, and LP-FT / gradual as specified.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LayerwiseError } from '../../src/core/errors.ts';
import { resolveGroups } from '../../src/core/groups.ts';
import { initPlan, proposeHead } from '../../src/core/init-plan.ts';
import { DEFAULT_RECIPE, getRecipe, LP_FT } from '../../src/core/presets.ts';
import { DEFAULT_GROUP, type Plan } from '../../src/core/plan.ts';
import { buildTimeline, resolveStages } from '../../src/core/timeline.ts';
import { validatePlanValue } from '../../src/core/validate.ts';
import { dense, layer, mobileNetV2Like, model, withNewHead } from './model-builders.ts';

const groupOf = (r: ReturnType<typeof resolveGroups>, name: string): string | undefined =>
  r.groups.find((g) => g.layers.some((l) => l.name === name))?.name;

test('the default recipe is the one the study chose: gradual unfreezing (docs/study/)', () => {
  assert.equal(DEFAULT_RECIPE, 'gradual');
  const p = initPlan(mobileNetV2Like(8), { modelPath: 'm.json' });
  assert.deepEqual(p.unfreeze, initPlan(mobileNetV2Like(8), { modelPath: 'm.json', recipe: 'gradual' }).unfreeze);
  assert.equal(p.batchNorm, 'inference');
});

test('init on a MobileNetV2-like model: a new head on the global pooling, LP-FT, BatchNorm in inference mode', () => {
  const m = mobileNetV2Like(8);
  const data = { train: 'data/train', validationSplit: 0.2 };
  const p = initPlan(m, { modelPath: 'models/mobilenet/model.json', data, recipe: 'lp-ft' });
  assert.deepEqual(Object.keys(p), ['model', 'head', 'data', 'training', 'groups', 'discriminative', 'batchNorm', 'unfreeze', 'output']);
  assert.deepEqual(p.head, { cut: 'global_average_pooling2d', outputs: 'auto' });
  assert.deepEqual(p.training, { lr: LP_FT.lr, batchSize: 32, optimizer: 'adamw', schedule: { type: 'stlr' } });
  assert.equal(p.batchNorm, 'inference');
  assert.deepEqual(p.discriminative, { type: 'ulmfit', factor: 2.6 });
  assert.deepEqual(p.unfreeze, { stages: [{ epochs: 4, train: ['head'], lr: 3e-3 }, { epochs: 4, train: 'all' }] });
  const names = (p.groups ?? []).map((g) => g.name);
  assert.equal(names[names.length - 1], 'head');
  for (const n of names) assert.match(n, /^[\x20-\x7e]+$/, `group name ${JSON.stringify(n)} is plain ASCII`);
  assert.deepEqual(p.groups?.[p.groups.length - 1]?.layers, ['head_*', '*']);
  validatePlanValue(p, 'layerwise.json');

  // as the run sees it: the model cut at the pooling, with the new head
  const shaped = withNewHead(m, 'global_average_pooling2d');
  const r = resolveGroups(shaped, p);
  assert.deepEqual(r.warnings, []);
  assert.ok(!r.groups.some((g) => g.name === DEFAULT_GROUP), 'no layer in the implicit default group');
  assert.equal(groupOf(r, 'head_out'), 'head');
  assert.deepEqual(r.groups.find((g) => g.name === 'head')?.layers.map((l) => l.name), ['head_out']);
  const stages = resolveStages(p, r);
  assert.deepEqual(stages.map((s) => [s.epochs, s.trainGroups, s.lr]), [
    [4, ['head'], 3e-3],
    [4, names, 1e-4],
  ]);
  assert.equal(buildTimeline(stages, 5).totalSteps, 40);
  // the BatchNorm layers that train in stage 2 run in inference mode
  const bn = r.groups.flatMap((g) => g.layers).filter((l) => l.className === 'BatchNormalization');
  assert.ok(bn.length > 0 && bn.every((l) => l.batchNorm === 'inference' && l.batchNormRule?.detail === 'batchNorm'));
});

test('proposeHead: past a dropout to the pooling; none for a plan-only model, a model without a Dense classifier, or with --keep-top', () => {
  assert.deepEqual(proposeHead(mobileNetV2Like(4, { dropout: true })), { cut: 'global_average_pooling2d', outputs: 'auto' });
  const fashion = model([layer('image', 'InputLayer'), layer('conv', 'Conv2D', [['kernel', [3, 3, 1, 4]]]), layer('flatten', 'Flatten'), dense('features', 4, 32), dense('classifier', 32, 6)]);
  assert.deepEqual(proposeHead(fashion), { cut: 'features', outputs: 'auto' });
  assert.equal(proposeHead({ ...fashion, kind: 'pytorch' }), undefined);
  const convTop = model([layer('input', 'InputLayer'), layer('conv', 'Conv2D', [['kernel', [3, 3, 1, 4]]]), layer('conv_out', 'Conv2D', [['kernel', [1, 1, 4, 2]]])]);
  assert.equal(proposeHead(convTop), undefined);
  assert.equal(initPlan(fashion, { modelPath: 'm.json', keepTop: true }).head, undefined);
  // nsfwjs's MobileNetV2: pooled to 1×1, flattened, then an old classifier with hidden layers: cut at the pooled vector
  const shaped = (l: ReturnType<typeof layer>, outputShape: Array<number | null>) => ({ ...l, outputShape });
  const nsfw = model([
    layer('input_1', 'InputLayer'),
    layer('Conv_1', 'Conv2D', [['kernel', [1, 1, 8, 16]]]),
    shaped(layer('out_relu', 'ReLU'), [null, 7, 7, 16]),
    shaped(layer('average_pooling2d_1', 'AveragePooling2D'), [null, 1, 1, 16]),
    shaped(layer('flatten_1', 'Flatten'), [null, 16]),
    dense('dense_1', 16, 8),
    layer('dropout_2', 'Dropout'),
    dense('dense_2', 8, 8),
    layer('dropout_3', 'Dropout'),
    dense('dense_3', 8, 5),
  ]);
  assert.deepEqual(proposeHead(nsfw), { cut: 'flatten_1', outputs: 'auto' });
  // a Flatten of a 7×7 map is not a pooled vector: the embedding above it is the feature layer
  const spatial = model([
    layer('image', 'InputLayer'),
    layer('conv', 'Conv2D', [['kernel', [3, 3, 1, 4]]]),
    shaped(layer('pool', 'MaxPooling2D'), [null, 7, 7, 4]),
    shaped(layer('flatten', 'Flatten'), [null, 196]),
    dense('features', 196, 32),
    dense('classifier', 32, 6),
  ]);
  assert.deepEqual(proposeHead(spatial), { cut: 'features', outputs: 'auto' });
});

test('a head added to an init plan later lands in the top group, with its hidden layers; only the old classifier pattern goes quiet', () => {
  const m = mobileNetV2Like(6);
  const p = initPlan(m, { modelPath: 'm.json', keepTop: true });
  const top = p.groups?.[p.groups.length - 1];
  assert.deepEqual(top?.layers, ['predictions', '*']);
  assert.deepEqual(resolveGroups(m, p).warnings, []);
  const withHead: Plan = { ...p, head: { cut: 'global_average_pooling2d', hidden: [32] } };
  const r = resolveGroups(withNewHead(m, 'global_average_pooling2d', [32]), withHead);
  assert.equal(groupOf(r, 'head_out'), 'head');
  assert.equal(groupOf(r, 'head_dense_1'), 'head');
  assert.ok(!r.groups.some((g) => g.name === DEFAULT_GROUP));
  assert.deepEqual(r.warnings.map((w) => [w.code, w.field]), [['patternMatchesNothing', `groups[${p.groups!.length - 1}].layers[0]`]]);
  // stage 1 still trains the new head alone
  assert.deepEqual(resolveStages(withHead, r)[0]?.trainGroups, ['head']);
});

test('the gradual recipe: explicit stages, top k groups each, the rest of the epochs with every group', () => {
  const m = mobileNetV2Like(8);
  const p = initPlan(m, { modelPath: 'm.json', recipe: 'gradual' });
  const names = (p.groups ?? []).map((g) => g.name);
  assert.equal(names.length, 4);
  assert.deepEqual(p.unfreeze, {
    stages: [
      { epochs: 1, train: names.slice(3) },
      { epochs: 1, train: names.slice(2) },
      { epochs: 1, train: names.slice(1) },
      { epochs: 2, train: 'all' },
    ],
  });
  assert.equal(p.training?.lr, 1e-3);
  assert.equal(p.batchNorm, 'inference');
  const r = resolveGroups(withNewHead(m, 'global_average_pooling2d'), p);
  assert.deepEqual(resolveStages(p, r).map((s) => s.trainGroups.length), [1, 2, 3, 4]);
  const nine = initPlan(m, { modelPath: 'm.json', recipe: 'gradual', epochs: 9 });
  assert.deepEqual(nine.unfreeze && 'stages' in nine.unfreeze ? nine.unfreeze.stages.map((s) => s.epochs) : [], [1, 1, 1, 6]);
  const lpft = initPlan(m, { modelPath: 'm.json', recipe: 'lp-ft', epochs: 5 });
  assert.deepEqual(lpft.unfreeze && 'stages' in lpft.unfreeze ? lpft.unfreeze.stages.map((s) => s.epochs) : [], [2, 3]);
});

test('init refuses epochs that cannot run as written, and unknown recipes', () => {
  const m = mobileNetV2Like(8);
  const bad = (opts: { recipe?: string; epochs?: number }, re: RegExp) =>
    assert.throws(() => initPlan(m, { modelPath: 'm.json', ...opts }), (e: unknown) => e instanceof LayerwiseError && re.test(e.message));
  bad({ recipe: 'gradual', epochs: 3 }, /gradual recipe has 4 stages: it needs a whole number of epochs ≥ 4 \(got 3\)/);
  bad({ recipe: 'lp-ft', epochs: 1 }, /lp-ft recipe has 2 stages/);
  bad({ recipe: 'fastest' }, /unknown recipe "fastest" \(known recipes: lp-ft, gradual\)/);
  assert.equal(getRecipe('lp-ft').id, 'lp-ft');
});

test('the seed preset keeps its base LR under LP-FT; the head stage runs at 30× it', () => {
  const m = mobileNetV2Like(8);
  const p = initPlan(m, { modelPath: 'm.json', preset: 'seed', recipe: 'lp-ft' });
  assert.equal(p.training?.lr, 1e-5);
  assert.equal(p.discriminative, undefined);
  assert.deepEqual(p.unfreeze, { stages: [{ epochs: 4, train: ['head'], lr: 3e-4 }, { epochs: 4, train: 'all' }] });
  assert.deepEqual(resolveGroups(withNewHead(m, 'global_average_pooling2d'), p).warnings, []);
});

test('explicit stages may name "default", whether or not any layer is in it', () => {
  const m = model([layer('input', 'InputLayer'), dense('a', 2, 2), dense('b', 2, 2)]);
  const plan = (groups: Plan['groups']): Plan => ({ model: 'm', groups, unfreeze: { stages: [{ epochs: 1, train: ['top'] }, { epochs: 1, train: ['default', 'top'] }] } });
  const empty = plan([{ name: 'low', layers: ['a', 'input'] }, { name: 'top', layers: ['b'] }]);
  assert.deepEqual(resolveStages(empty, resolveGroups(m, empty)).map((s) => s.trainGroups), [['top'], ['top']]);
  const some = plan([{ name: 'top', layers: ['b'] }]);
  assert.deepEqual(resolveStages(some, resolveGroups(m, some)).map((s) => s.trainGroups), [['top'], ['default', 'top']]);
  assert.throws(() => resolveStages({ ...some, unfreeze: { stages: [{ epochs: 1, train: ['nope'] }] } }, resolveGroups(m, some)), /unknown group "nope"/);
});
