/**
 * The cut finder for frozen-prefix caching (src/core/layer-graph.ts) on sequential, residual
 * (MobileNetV2's adds), branching and multi-input/multi-output graphs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frozenCut, topologicalOrder, type GraphNode } from '../../src/core/layer-graph.ts';

const g = (spec: Record<string, string[]>): GraphNode[] => Object.entries(spec).map(([name, inputs]) => ({ name, inputs }));

const chain = g({ in: [], a: ['in'], b: ['a'], c: ['b'], d: ['c'] });

test('sequential: cut just below the lowest layer that trains', () => {
  assert.deepEqual(frozenCut(chain, ['d'], new Set(['d'])), { cut: 'c', prefix: ['a', 'b', 'c'], suffix: ['d'] });
  assert.deepEqual(frozenCut(chain, ['d'], new Set(['c', 'd'])), { cut: 'b', prefix: ['a', 'b'], suffix: ['c', 'd'] });
  assert.deepEqual(frozenCut(chain, ['d'], new Set(['a', 'd'])), { cut: undefined, reason: 'the first layer trains' });
  assert.deepEqual(frozenCut(chain, ['d'], new Set()), { cut: undefined, reason: 'no layer trains in this stage' });
});

// MobileNetV2-style: stem → block 1 → block 2 (expand/project + add with its input) → block 3 (same) → pool → head
const residual = g({
  input: [],
  stem: ['input'],
  b1_project: ['stem'],
  b2_expand: ['b1_project'],
  b2_project: ['b2_expand'],
  b2_add: ['b1_project', 'b2_project'],
  b3_expand: ['b2_add'],
  b3_project: ['b3_expand'],
  b3_add: ['b2_add', 'b3_project'],
  pool: ['b3_add'],
  head: ['pool'],
});

test('residual: the cut is the deepest tensor every path passes through (an add, the pooling), never inside a block', () => {
  // head only: everything up to the pooling is computed once
  const head = frozenCut(residual, ['head'], new Set(['head']));
  assert.equal(head.cut, 'pool');
  assert.deepEqual(head.cut !== undefined && head.suffix, ['head']);
  // block 3 trains: cut at the add below it, which both of block 3's paths read
  const top = frozenCut(residual, ['head'], new Set(['b3_expand', 'b3_project', 'head']));
  assert.deepEqual(top, {
    cut: 'b2_add',
    prefix: ['stem', 'b1_project', 'b2_expand', 'b2_project', 'b2_add'],
    suffix: ['b3_expand', 'b3_project', 'b3_add', 'pool', 'head'],
  });
  // only the project conv of block 3 trains: b3_expand is frozen but sits on a path around it, the cut stays at the add
  assert.equal(frozenCut(residual, ['head'], new Set(['b3_project'])).cut, 'b2_add');
  // a layer inside block 2 trains: the cut drops below block 2 (b1_project feeds both of its paths)
  assert.equal(frozenCut(residual, ['head'], new Set(['b2_project', 'head'])).cut, 'b1_project');
});

test('a skip from the bottom to the top: no single tensor carries everything, no cut', () => {
  const skip = g({ in: [], a: ['in'], b: ['a'], c: ['b'], sum: ['a', 'c'], out: ['sum'] });
  // a feeds both paths: the cut can sit at a while b trains
  assert.equal(frozenCut(skip, ['out'], new Set(['b'])).cut, 'a');
  const wide = g({ in: [], a: ['in'], b: ['in'], sum: ['a', 'b'], out: ['sum'] });
  assert.equal(frozenCut(wide, ['out'], new Set(['out'])).cut, 'sum');
  const r = frozenCut(wide, ['out'], new Set(['a', 'out']));
  assert.equal(r.cut, undefined);
  assert.equal(r.cut === undefined && r.reason, 'the first layer trains');
  const deep = g({ in: [], s: ['in'], a: ['s'], a2: ['a'], b: ['s'], sum: ['a2', 'b'], out: ['sum'] });
  assert.equal(frozenCut(deep, ['out'], new Set(['a2'])).cut, 's');
});

test('multi-input: the cut must lie where every input has merged; a second input reaching the top prevents it', () => {
  const merged = g({ image: [], meta: [], conv: ['image'], dense_meta: ['meta'], concat: ['conv', 'dense_meta'], fc: ['concat'], out: ['fc'] });
  assert.deepEqual(frozenCut(merged, ['out'], new Set(['out'])), { cut: 'fc', prefix: ['conv', 'dense_meta', 'concat', 'fc'], suffix: ['out'] });
  assert.equal(frozenCut(merged, ['out'], new Set(['fc', 'out'])).cut, 'concat');
  // the second input joins only at the top: nothing below the head reads both inputs
  const late = g({ image: [], meta: [], conv: ['image'], pool: ['conv'], concat: ['pool', 'meta'], out: ['concat'] });
  const r = frozenCut(late, ['out'], new Set(['out']));
  assert.equal(r.cut, 'concat');
  const r2 = frozenCut(late, ['out'], new Set(['concat', 'out']));
  assert.equal(r2.cut, undefined);
  assert.match(r2.cut === undefined ? r2.reason : '', /no single layer output below concat/);
});

test('several outputs: the cut dominates all of them; dead branches are ignored', () => {
  const twoHeads = g({ in: [], a: ['in'], b: ['a'], h1: ['b'], h2: ['b'], unused: ['a'] });
  assert.deepEqual(frozenCut(twoHeads, ['h1', 'h2'], new Set(['h1', 'h2', 'unused'])), { cut: 'b', prefix: ['a', 'b'], suffix: ['h1', 'h2'] });
  const early = g({ in: [], a: ['in'], b: ['a'], h1: ['b'], h2: ['a'] });
  assert.equal(frozenCut(early, ['h1', 'h2'], new Set(['h1'])).cut, 'a');
});

test('topologicalOrder: inputs first whatever the listing order; unknown inputs and cycles are errors', () => {
  const names = topologicalOrder(g({ out: ['b'], b: ['a'], a: ['in'], in: [] })).map((n) => n.name);
  assert.deepEqual(names, ['in', 'a', 'b', 'out']);
  assert.throws(() => topologicalOrder(g({ a: ['x'] })), /reads x/);
  assert.throws(() => topologicalOrder(g({ a: ['b'], b: ['a'] })), /cycle/);
});
