import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LayerwiseError } from '../../src/core/errors.ts';
import { compilePattern, escapeGlob, isWildcardPattern } from '../../src/core/patterns.ts';

const matches = (pattern: string, name: string): boolean => compilePattern(pattern)(name);

test('* matches any run of characters, including . and /', () => {
  assert.ok(matches('bert.*.query', 'bert.encoder.layer.0.attention.self.query'));
  assert.ok(matches('encoder/*', 'encoder/layer_2/attention/self'));
  assert.ok(matches('*', ''));
  assert.ok(matches('block_1_*', 'block_1_'));
  assert.ok(!matches('block_1_*', 'block_10_expand'));
  assert.ok(!matches('dense*', 'my_dense_1'), 'a glob is anchored at the start');
  assert.ok(!matches('*dense', 'dense_1'), 'a glob is anchored at the end');
});

test('? matches exactly one character', () => {
  assert.ok(matches('dense_?', 'dense_1'));
  assert.ok(matches('dense_?', 'dense_/'));
  assert.ok(!matches('dense_?', 'dense_10'));
  assert.ok(!matches('dense_?', 'dense_'));
});

test('everything else in a glob is literal, regex metacharacters included', () => {
  assert.ok(matches('a.b', 'a.b'));
  assert.ok(!matches('a.b', 'axb'));
  assert.ok(matches('conv(1)+[x]{2}|y^$\\', 'conv(1)+[x]{2}|y^$\\'));
  assert.ok(!matches('conv(1)+', 'conv11'));
  assert.ok(matches('layer.1*', 'layer.1.attention'));
  assert.ok(!matches('layer.1*', 'layerx1'));
  assert.ok(!matches('Dense_1', 'dense_1'), 'matching is case-sensitive');
});

test('re: patterns must match the whole name', () => {
  assert.ok(matches('re:dense_\\d', 'dense_1'));
  assert.ok(!matches('re:dense_\\d', 'dense_12'));
  assert.ok(!matches('re:dense_\\d', 'xdense_1'));
  // the alternation stays inside the anchors: neither "starts with a" nor "ends with b"
  assert.ok(matches('re:a|b', 'a'));
  assert.ok(matches('re:a|b', 'b'));
  assert.ok(!matches('re:a|b', 'ab'));
  assert.ok(!matches('re:a|b', 'xb'));
  assert.ok(matches('re:block_([1-9]|1[0-2])_.*', 'block_12_project'));
  assert.ok(!matches('re:block_([1-9]|1[0-2])_.*', 'block_13_project'));
});

test('an invalid regex is a LayerwiseError naming the field', () => {
  assert.throws(
    () => compilePattern('re:block_(', { file: 'layerwise.json', field: 'groups[1].layers[0]' }),
    (e: unknown) =>
      e instanceof LayerwiseError &&
      e.field === 'groups[1].layers[0]' &&
      e.file === 'layerwise.json' &&
      e.message.includes('block_(') &&
      e.message.startsWith('layerwise.json: groups[1].layers[0]: invalid regular expression'),
  );
});

test('a regex that is only valid once wrapped cannot escape the anchors', () => {
  // ^(?:a)|(b)$ would be valid, and would match anything starting with "a"
  assert.throws(() => compilePattern('re:a)|(b'), LayerwiseError);
  assert.throws(() => compilePattern('re:a)(b'), LayerwiseError);
});

test('escapeGlob gives a pattern matching exactly that name', () => {
  const names = ['dense_1', 'bert.encoder.layer.0', 'odd*name', 'what?', 're:literal', 'a|b(c)', '*'];
  const others = ['dense_10', 'oddXname', 'odd*names', 'whatx', 'literal', 'a', 'b(c)', 'x*'];
  for (const name of names) {
    const p = escapeGlob(name);
    assert.ok(matches(p, name), `${p} matches ${name}`);
    for (const other of [...names, ...others]) {
      if (other !== name) assert.ok(!matches(p, other), `${p} does not match ${other}`);
    }
  }
  assert.equal(escapeGlob('dense_1'), 'dense_1', 'plain names stay readable');
  assert.equal(escapeGlob('odd*name'), 're:odd\\*name');
});

test('isWildcardPattern', () => {
  assert.equal(isWildcardPattern('dense_1'), false);
  assert.equal(isWildcardPattern('dense_*'), true);
  assert.equal(isWildcardPattern('dense_?'), true);
  assert.equal(isWildcardPattern('re:dense'), true);
});
