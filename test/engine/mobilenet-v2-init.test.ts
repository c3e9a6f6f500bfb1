/**
 * The tool's own path on a real model's graph: the Keras MobileNetV2 of nsfwjs (devDependency;
 * 162 layers with residual adds, topology only, weights random here). init proposes a new head
 * on the pooled features, puts every layer in a named group and the new head in the top one;
 * the head-only stage caches the whole trunk through the residual blocks, and a top-blocks stage
 * caches up to the add below them.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { resolveGroups } from '../../src/core/groups.ts';
import { initPlan } from '../../src/core/init-plan.ts';
import { resolveStages } from '../../src/core/timeline.ts';
import { selectBackend } from '../../src/engine/backend.ts';
import { applyHead, describeModel } from '../../src/engine/model-io.ts';
import { planPrefix } from '../../src/engine/prefix-cache.ts';

before(async () => {
  await selectBackend('cpu', { trainableClassNames: [] });
});

async function mobileNetV2(): Promise<tf.LayersModel> {
  // the package's exports do not list the model bundles: require the file by path
  const bundle = createRequire(__filename)(resolve('node_modules/nsfwjs/dist/models/mobilenet_v2/model.min.js')) as { modelTopology?: object; default?: { modelTopology: object } };
  const topology = bundle.modelTopology ?? bundle.default?.modelTopology;
  assert.ok(topology, 'the nsfwjs bundle holds the model topology');
  return tf.models.modelFromJSON({ modelTopology: topology } as tf.io.ModelJSON);
}

test('nsfwjs MobileNetV2: init writes a coherent plan, and head-only / top-block stages cache the frozen trunk', async () => {
  const original = await mobileNetV2();
  assert.equal(original.layers.length, 162);
  const info = describeModel(original, 'mobilenet_v2');
  const plan = initPlan(info, { modelPath: 'model.json' });
  assert.deepEqual(plan.head, { cut: 'flatten_1', outputs: 'auto' });
  for (const g of plan.groups ?? []) assert.match(g.name, /^[\x20-\x7e]+$/);

  const { model, newLayers } = applyHead(original, plan.head!, 10, 0);
  const shaped = describeModel(model, 'mobilenet_v2', new Set(newLayers));
  const r = resolveGroups(shaped, plan);
  assert.deepEqual(r.warnings, []);
  assert.ok(!r.groups.some((g) => g.implicit));
  assert.deepEqual(r.groups[r.groups.length - 1]?.layers.map((l) => l.name), newLayers);
  const stages = resolveStages(plan, r);
  assert.deepEqual(stages[0]?.trainGroups, ['head']);

  const layersOf = (groups: readonly string[]) => new Set(r.groups.filter((g) => groups.includes(g.name)).flatMap((g) => g.layers.filter((l) => l.params.some((p) => p.trainable)).map((l) => l.name)));
  const head = planPrefix(model, layersOf(['head']));
  assert.ok(head.cache, head.cache ? '' : head.reason);
  assert.equal(head.cut.name, 'flatten_1');
  assert.deepEqual(head.suffix.map((l) => l.name), newLayers);
  // the group just below the head (the top blocks) joins: the cut drops to the add below its first block
  const below = r.groups[r.groups.length - 2]!;
  const top = planPrefix(model, layersOf([below.name, 'head']));
  assert.ok(top.cache, top.cache ? '' : top.reason);
  assert.equal(top.cut.getClassName(), 'Add', `cut at ${top.cut.name}`);
  assert.ok(top.prefix.length > 100, `${top.prefix.length} layers computed once`);
  model.dispose();
});
