import assert from 'node:assert/strict';
import test from 'node:test';
import { modelOutline } from '../../src/core/model-outline.ts';
import { batchNorm, conv, dense, layer, model } from './model-builders.ts';

const m = model([
  layer('input_1', 'InputLayer'),
  conv('block_1_conv', 3, 3, 8),
  batchNorm('block_1_bn', 8),
  conv('block_2_conv', 3, 8, 16),
  layer('flatten', 'Flatten'),
  dense('predictions', 16, 4),
]);

test('the outline lists every layer with its class, weights, parameter count and proposed group', () => {
  const text = modelOutline(m, 'model/model.json');
  const rows = text.split('\n').filter((l) => /^\| \d+ \|/.test(l));
  assert.equal(rows.length, m.layers.length);
  // 3·3·3·8 + 8 = 224 parameters; BatchNorm: 4 × 8 = 32, two of which are statistics
  assert.match(rows[1]!, /^\| 1 \| block_1_conv \| Conv2D \| kernel 3×3×3×8, bias 8 \| 224 \| [^|]+ \|$/);
  assert.match(rows[2]!, /moving_mean 8 \(statistic\)/);
  assert.match(rows[0]!, /\| input_1 \| InputLayer \| – \| – \|/);
  // 224 + 32 + (3·3·8·16 + 16 = 1168) + (16·4 + 4 = 68) = 1492
  assert.match(text, /6 layers \(4 with weights\), 1\.5 K parameters/);
  // every weighted layer lands in one of the groups the header names
  const named = [...text.matchAll(/`([^`]+)`/g)].map((x) => x[1]);
  for (const row of rows.filter((r) => !/\| – \|$/.test(r))) {
    const group = row.split('|').at(-2)!.trim();
    assert.ok(named.includes(group), `${group} is one of the proposed groups ${named.join(', ')}`);
  }
});

test('a layer name with a pipe does not break the table', () => {
  const text = modelOutline(model([dense('a|b', 2, 2)]), 'm.json');
  assert.match(text, /\| a\\\|b \| Dense \|/);
});
