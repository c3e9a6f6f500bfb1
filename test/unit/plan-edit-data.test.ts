/** The plan editor's data section: setDataField keeps comments, drops an emptied augment, refuses what the schema refuses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LayerwiseError } from '../../src/core/errors.ts';
import { DATA_FIELDS } from '../../src/core/plan.ts';
import { setDataField } from '../../src/core/plan-edit.ts';
import { parsePlanText } from '../../src/core/validate.ts';
import { textAfterRequest } from '../../src/host/plan-requests.ts';

const PLAN = `// fine-tune
{
  "model": "model/model.json",
  "data": {
    "train": "data/train", // the class folders
    "validation": "data/val"
  }
}
`;

test('the data section edits exactly data.normalize, data.onBadImage and every transform the schema has under data.augment', () => {
  const schema = JSON.parse(readFileSync(new URL('../../src/core/plan.schema.json', import.meta.url), 'utf8')) as {
    definitions: { data: { properties: Record<string, { properties?: Record<string, unknown> }> } };
  };
  const data = schema.definitions.data.properties;
  assert.ok(data['normalize'] && data['onBadImage']);
  const transforms = Object.keys(data['augment']?.properties ?? {});
  assert.ok(transforms.length > 0);
  assert.deepEqual([...DATA_FIELDS].sort(), ['normalize', 'onBadImage', ...transforms.map((t) => `augment.${t}`)].sort());
});

test('data settings are added, changed and removed member by member, comments kept', () => {
  let text = setDataField(PLAN, 'normalize', 'imagenet');
  text = setDataField(text, 'augment.horizontalFlip', true);
  text = setDataField(text, 'augment.rotation', 15);
  text = setDataField(text, 'augment.randomResizedCrop', { scale: [0.5, 1], ratio: [0.75, 1.333] });
  assert.match(text, /"train": "data\/train", \/\/ the class folders/);
  assert.match(text, /^\/\/ fine-tune/);
  const data = parsePlanText(text, 'plan.json').data!;
  assert.equal(data.normalize, 'imagenet');
  assert.deepEqual(data.augment, { horizontalFlip: true, rotation: 15, randomResizedCrop: { scale: [0.5, 1], ratio: [0.75, 1.333] } });

  text = setDataField(text, 'normalize', { mean: [0.5], std: [0.25] });
  assert.deepEqual(parsePlanText(text, 'plan.json').data!.normalize, { mean: [0.5], std: [0.25] });
  // removing the last transform removes data.augment itself
  for (const f of ['augment.horizontalFlip', 'augment.rotation', 'augment.randomResizedCrop'] as const) text = setDataField(text, f, undefined);
  assert.equal(parsePlanText(text, 'plan.json').data!.augment, undefined);
  assert.doesNotMatch(text, /augment/);
  text = setDataField(text, 'normalize', undefined);
  assert.equal(text, PLAN);
});

test('a value the schema refuses is one error naming the file and the field; the text is not changed', () => {
  const refuse = (f: () => unknown, field: string, message: RegExp): void => {
    assert.throws(f, (e: unknown) => e instanceof LayerwiseError && e.field === field && e.file === 'plan.json' && message.test(e.message) && e.message.startsWith('plan.json: '));
  };
  refuse(() => setDataField(PLAN, 'augment.rotation', 200, 'plan.json'), 'data.augment.rotation', /180/);
  refuse(() => setDataField(PLAN, 'onBadImage', 'ignore', 'plan.json'), 'data.onBadImage', /skip|error/);
  refuse(() => setDataField(PLAN, 'augment.randomResizedCrop', { scale: [0.5, 2] }, 'plan.json'), 'data.augment.randomResizedCrop.scale[1]', /<= 1/);
});

test('the panel\'s setData request goes through the same edit', () => {
  const out = textAfterRequest(PLAN, { kind: 'setData', field: 'onBadImage', value: 'error' }, { file: 'plan.json' });
  assert.equal(parsePlanText(out, 'plan.json').data!.onBadImage, 'error');
  const back = textAfterRequest(out, { kind: 'setData', field: 'onBadImage', value: null }, { file: 'plan.json' });
  assert.equal(back, PLAN);
});
