/**
 * The panel on a real-sized model (issue 11): the filter box, resizable columns with full text on
 * hover, click targets, the charts next to (or under) an open tree, the active preset, the
 * header after a new run, and the data section (issue 12). Real bundle, real Chromium.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DATA_FIELDS, type Plan } from '../../src/core/plan.ts';
import type { PanelState } from '../../src/protocol/webview.ts';
import { bigModel, bigPlan, panelState, smallPlan } from './fixtures.ts';
import { resultsDir, useHarness, waitForPosts, type PanelPage } from './harness.ts';

const harness = useHarness();


async function open(state: PanelState, opts: { persisted?: unknown; width?: number; height?: number } = {}): Promise<PanelPage> {
  const p = await harness.open(opts);
  await waitForPosts(p, 1);
  await p.send({ type: 'state', state });
  await p.page.waitForSelector('table.tree tbody tr[data-key]');
  return p;
}

async function assertClean(p: PanelPage): Promise<void> {
  assert.deepEqual(await p.violations(), [], 'CSP violations');
  assert.deepEqual(p.errors, [], 'page errors');
}

const row = (key: string): string => `tr[data-key="${key}"]`;
const rowKeys = (p: PanelPage): Promise<Array<string | undefined>> =>
  p.page.$$eval('table.tree tbody tr[data-key]', (rows) => rows.map((r) => (r as HTMLElement).dataset['key']));
const bigState = (): PanelState => panelState({ plan: bigPlan(), model: bigModel(1000), stepsPerEpoch: 50 });

test('the filter finds a layer the tree has not drawn, by name, type or group; it counts, and Esc clears it', async () => {
  const p = await open(bigState());
  // every group folded: no layer row is in the page, so the page's own find could not reach one
  assert.equal(await p.page.locator(row('l:block_9/norm_801')).count(), 0);
  await p.page.fill('.tree-filter', 'norm_801');
  await p.page.waitForSelector(row('l:block_9/norm_801'));
  assert.deepEqual(await rowKeys(p), ['g:block_9', 'l:block_9/norm_801']);
  assert.equal(await p.page.textContent('.filter-count'), '1 of 1000 layers match');
  // by type and group together: every other layer is a LayerNormalization, 84 layers a group
  await p.page.fill('.tree-filter', 'LayerNormalization block_3/');
  await p.page.waitForFunction(() => document.querySelector('.filter-count')?.textContent?.startsWith('42 of'));
  // by group name: the group's layers
  await p.page.fill('.tree-filter', 'block_11');
  await p.page.waitForFunction(() => document.querySelector('.filter-count')?.textContent?.startsWith('76 of'));
  // Enter goes to the first match; the arrows go on from there
  await p.page.press('.tree-filter', 'Enter');
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['key']), 'l:block_11/dense_924');
  await p.page.fill('.tree-filter', 'no such layer');
  await p.page.waitForFunction(() => document.querySelector('.filter-count')?.textContent === '0 of 1000 layers match — Esc clears');
  assert.deepEqual(await rowKeys(p), []);
  await p.page.press('.tree-filter', 'Escape');
  assert.equal(await p.page.inputValue('.tree-filter'), '');
  assert.equal(await p.page.textContent('.filter-count'), '');
  assert.equal((await rowKeys(p)).length, 12);
  // Ctrl+F in the panel focuses the filter (the panel keeps it from VS Code's find widget)
  await p.page.focus(row('g:block_0'));
  await p.page.keyboard.press('Control+f');
  assert.equal(await p.page.evaluate(() => document.activeElement?.className), 'tree-filter');
  assert.deepEqual(await p.posted(), [{ type: 'ready' }]);
  await assertClean(p);
  await p.close();
});

test('columns fit a 1,000 px panel, resize by drag or keyboard (kept across a reload), and cut-off text is on hover', async () => {
  const state = bigState();
  const expanded = { planUri: state.planUri, expandedGroups: ['block_0'], tab: 'rates' };
  const p = await open(state, { width: 1000, persisted: expanded });
  const widths = (): Promise<Record<string, number>> =>
    p.page.$$eval('table.tree thead th', (ths) => Object.fromEntries(ths.map((th) => [(th as HTMLElement).dataset['col'], Math.round(th.getBoundingClientRect().width)])));
  const w = await widths();
  // nothing sideways at 1,000 px, and "Decided by" keeps a readable width
  assert.equal(await p.page.$eval('.tree-scroll', (el) => el.scrollWidth <= el.clientWidth), true);
  assert.ok((w['rule'] ?? 0) >= 100, JSON.stringify(w));
  // full text on hover where a cell can cut it off
  const layer = 'l:block_0/norm_1';
  assert.match((await p.page.getAttribute(`${row(layer)} td[data-col="name"]`, 'title')) ?? '', /block_0\/norm_1/);
  assert.match((await p.page.getAttribute(`${row(layer)} td[data-col="rule"]`, 'title')) ?? '', /multiplier: .*\nfrozen: /);
  assert.match((await p.page.getAttribute(`${row(layer)} select`, 'title')) ?? '', /In “block_0”/);
  for (const th of await p.page.$$('table.tree thead th')) assert.notEqual(await th.getAttribute('title'), null);

  // drag the name column's edge 120 px to the right
  const handle = p.page.locator('th[data-col="name"] .col-resize');
  const box = (await handle.boundingBox())!;
  await p.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await p.page.mouse.down();
  await p.page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2, { steps: 3 });
  await p.page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2, { steps: 3 });
  await p.page.mouse.up();
  const dragged = (await widths())['name'] ?? 0;
  assert.ok(Math.abs(dragged - ((w['name'] ?? 0) + 120)) <= 2, `${w['name']} → ${dragged}`);
  // keyboard: ← narrows by 16 px, and never below the column's minimum
  await handle.focus();
  await p.page.keyboard.press('ArrowLeft');
  assert.ok(Math.abs(((await widths())['name'] ?? 0) - (dragged - 16)) <= 2);
  for (let i = 0; i < 40; i++) await p.page.keyboard.press('ArrowLeft');
  assert.equal((await widths())['name'], 120);
  // wider than the panel after a drag: the tree scrolls sideways rather than squeezing columns
  await p.page.locator('th[data-col="group"] .col-resize').focus();
  for (let i = 0; i < 40; i++) await p.page.keyboard.press('ArrowRight');
  assert.equal(await p.page.$eval('.tree-scroll', (el) => el.scrollWidth > el.clientWidth), true);
  const saved = (await p.uiState()) as { columnWidths?: Record<string, number> };
  assert.equal(saved.columnWidths?.['name'], 120);
  assert.ok((saved.columnWidths?.['group'] ?? 0) > 700);
  await p.close();

  const again = await open(state, { width: 1000, persisted: saved });
  assert.equal(await again.page.$eval('th[data-col="name"]', (th) => Math.round(th.getBoundingClientRect().width)), 120);
  await assertClean(again);
  await again.close();
});

test('a click in the middle of a group row opens it and writes nothing; ÷2 / ×2 are apart from the field', async () => {
  for (const width of [1000, 1500]) {
    const p = await open(panelState(), { width });
    const r = (await p.page.locator(row('g:extra')).boundingBox())!;
    // the middle, and every point along the row: none writes the plan
    await p.page.mouse.click(r.x + r.width / 2, r.y + r.height / 2);
    for (let x = r.x + 4; x < r.x + r.width; x += 25) {
      const control = await p.page.evaluate(([px, py]) => (document.elementFromPoint(px!, py!) as HTMLElement | null)?.dataset['control'] ?? '', [x, r.y + r.height / 2]);
      // the steppers and the checkbox are the row's only buttons: a click there is deliberate
      if (control === 'dec' || control === 'inc' || control === 'trains') continue;
      await p.page.mouse.click(x, r.y + r.height / 2);
      if (await p.page.locator(row('l:dense_1')).count() > 0) await p.page.click(`${row('g:extra')} .cell-name`);
      await p.page.waitForSelector(row('l:dense_1'), { state: 'detached' });
    }
    // a click off the controls (the params cell) opens the group
    await p.page.click(`${row('g:extra')} td[data-col="params"]`);
    await p.page.waitForSelector(row('l:dense_1'));
    await p.page.keyboard.press('Escape');
    assert.deepEqual(await p.posted(), [{ type: 'ready' }], `width ${width}`);
    // the steppers sit at least 6 px from the field
    const field = (await p.page.locator(`${row('g:extra')} [data-control="mult"]`).boundingBox())!;
    const dec = (await p.page.locator(`${row('g:extra')} [data-control="dec"]`).boundingBox())!;
    assert.ok(dec.x - (field.x + field.width) >= 6, `gap ${dec.x - (field.x + field.width)}`);
    await p.page.locator(`${row('g:extra')} [data-control="dec"]`).click();
    const got = await waitForPosts(p, 2);
    assert.deepEqual(got[1], { type: 'edit', edit: { kind: 'setGroup', groupIndex: 1, key: 'lrMult', value: 0.25 } });
    await assertClean(p);
    await p.close();
  }
});

test('the charts are reachable with the tree open: side by side on a wide panel, or with the tree folded away', async () => {
  const state = bigState();
  const all = { planUri: state.planUri, expandedGroups: state.plan!.groups!.map((g) => g.name), tab: 'rates' };
  const wide = await open(state, { width: 1920, height: 1000, persisted: all });
  const tree = (await wide.page.locator('.tree-box').boundingBox())!;
  const charts = (await wide.page.locator('.charts-box').boundingBox())!;
  assert.ok(charts.x >= tree.x + tree.width, 'charts to the right of the tree');
  assert.ok(charts.y < tree.y + tree.height && charts.y + 40 < 1000, 'charts in the first screen');
  await wide.page.screenshot({ path: join(resultsDir, 'webview-side-by-side.png') });
  await wide.close();

  const narrow = await open(state, { width: 1200, height: 900, persisted: all });
  const below = async (): Promise<number> => (await narrow.page.locator('.charts-box').boundingBox())!.y;
  const before = await below();
  await narrow.page.click('button.tree-fold');
  assert.equal(await narrow.page.getAttribute('button.tree-fold', 'aria-expanded'), 'false');
  assert.equal(await narrow.page.locator('.tree-scroll').isVisible(), false);
  assert.ok((await below()) < before - 200, `charts moved up from ${before} to ${await below()}`);
  assert.equal(((await narrow.uiState()) as { treeCollapsed?: boolean }).treeCollapsed, true);
  // Ctrl+F unfolds it and goes to the filter
  await narrow.page.keyboard.press('Control+f');
  assert.equal(await narrow.page.locator('.tree-scroll').isVisible(), true);
  await assertClean(narrow);
  await narrow.close();
});

test('the picker shows the preset the plan follows; picking it again asks nothing', async () => {
  const plan: Plan = smallPlan();
  plan.groups = plan.groups!.map(({ lrMult: _drop, ...g }) => g);
  plan.discriminative = { type: 'ulmfit', factor: 2.6 };
  const p = await open(panelState({ plan }));
  assert.equal(await p.page.$eval('#field-preset', (s) => (s as HTMLSelectElement).value), 'ulmfit');
  assert.deepEqual(await p.page.locator('#field-preset vscode-option', { hasText: '— current' }).allTextContents(), ['ULMFiT (÷2.6 per group) — current']);
  // a group multiplier that changes no layer's rate (extra's one layer has its own ×0.3) keeps it
  plan.groups[1]!.lrMult = 0.3;
  await p.send({ type: 'state', state: panelState({ plan }) });
  await p.page.waitForFunction(() => document.querySelector('.tree-summary') !== null);
  assert.equal(await p.page.$eval('#field-preset', (s) => (s as HTMLSelectElement).value), 'ulmfit');
  // by hand: a multiplier that does change rates → no preset
  plan.groups[0]!.lrMult = 0.3;
  await p.send({ type: 'state', state: panelState({ plan }) });
  await p.page.waitForFunction(() => (document.querySelector('#field-preset') as HTMLSelectElement | null)?.value === '');
  // switching to the seed split lists what it replaces, including training.lr
  await p.page.click('#field-preset');
  await p.page.locator('#field-preset').getByRole('option', { name: /^Seed split/ }).click();
  await p.page.locator('.preset-confirm').waitFor();
  const text = (await p.page.textContent('.preset-confirm')) ?? '';
  assert.match(text, /groups\[0\] "base"\.lrMult 0\.3 → 0\.1set by hand/);
  assert.match(text, /training\.lr 0\.001 → 0\.00001/);
  await p.page.keyboard.press('Escape');
  await p.page.locator('.preset-confirm').waitFor({ state: 'hidden' });
  assert.deepEqual(await p.posted(), [{ type: 'ready' }]);
  await assertClean(p);
  await p.close();
});

test('a new run or a suggestion clears the last run\'s failure from the header', async () => {
  const failed = { state: 'failed', job: 'train', planFile: 'layerwise.json', message: 'the model file is missing' } as const;
  const p = await open(panelState({ status: failed }));
  assert.match((await p.page.textContent('.status')) ?? '', /Training failed: the model file is missing/);
  await p.send({ type: 'runStarted', job: 'findLr' });
  await p.page.waitForFunction(() => !document.querySelector('.status')?.textContent?.includes('failed'));
  await p.send({ type: 'status', status: { state: 'starting', job: 'findLr', planFile: 'layerwise.json' } });
  await p.page.waitForFunction(() => document.querySelector('.status')?.textContent === 'LR range test: starting…');
  // a failure that comes after is shown; a suggestion that starts then hides it
  await p.send({ type: 'status', status: failed });
  await p.page.waitForFunction(() => document.querySelector('.status')?.textContent?.includes('failed'));
  await p.send({ type: 'suggestion', suggestion: { state: 'running', method: 'rgn' } });
  await p.page.waitForFunction(() => document.querySelector('.status')?.textContent === 'Suggesting multipliers…');
  // the host's state repeats the old status: still hidden
  await p.send({ type: 'state', state: panelState({ status: failed, suggestion: { state: 'running', method: 'rgn' } }) });
  assert.equal(await p.page.textContent('.status'), 'Suggesting multipliers…');
  await assertClean(p);
  await p.close();
});

test('the data section has a control for every field it edits, named by its plan path in the hover text', async () => {
  const p = await open(panelState({ plan: { ...smallPlan(), data: { train: 'data/train' } } }));
  await p.page.click('.data-summary');
  const titles = await p.page.$$eval('.data-section [title]', (els) => els.map((e) => (e as HTMLElement).title));
  for (const field of DATA_FIELDS) {
    assert.ok(titles.some((t) => t === `data.${field}` || t.startsWith(`data.${field}:`)), `no control for data.${field} (titles: ${titles.join(' | ')})`);
  }
  await assertClean(p);
  await p.close();
});

test('grey images: no ImageNet preset, a custom mean/std starts from one value each and refuses three', async () => {
  // smallModel reads 28×28×1 images
  const p = await open(panelState({ plan: { ...smallPlan(), data: { train: 'data/train' } } }));
  await p.page.click('.data-summary');
  assert.equal(await p.page.locator('#data-normalize option[value="imagenet"]').isDisabled(), true);
  await p.page.selectOption('#data-normalize', 'custom');
  assert.equal(await p.page.inputValue('#data-mean'), '0.449');
  assert.equal(await p.page.inputValue('#data-std'), '0.226');
  await p.page.fill('#data-std', '0.2, 0.3, 0.4');
  await p.page.press('#data-std', 'Enter');
  assert.equal(await p.page.getAttribute('#data-std', 'aria-invalid'), 'true');
  assert.match((await p.page.getAttribute('#data-std', 'title')) ?? '', /1 value\(s\) for images read with 1 channel\(s\), not 3/);
  await p.page.fill('#data-std', '0.25');
  await p.page.press('#data-std', 'Enter');
  const posted = await waitForPosts(p, 2);
  assert.deepEqual(posted.slice(1), [{ type: 'edit', edit: { kind: 'setData', field: 'normalize', value: { mean: [0.449], std: [0.25] } } }]);
  await assertClean(p);
  await p.close();
});

test('the data section shows and edits normalize, bad images and every augmentation, one setData edit each', async () => {
  // RGB images: ImageNet's preset and three-value mean/std apply
  const plan: Plan = { ...smallPlan(), data: { train: 'data/train', channels: 3, augment: { horizontalFlip: true, rotation: 10 } } };
  const p = await open(panelState({ plan }));
  assert.match((await p.page.textContent('.data-summary')) ?? '', /normalize unit · augment h-flip, rotation ±10° · bad images: skip/);
  await p.page.click('.data-summary');
  assert.equal(await p.page.isChecked('#data-hflip'), true);
  assert.equal(await p.page.isChecked('#data-vflip'), false);
  assert.equal(await p.page.inputValue('#data-rotation'), '10');
  assert.equal(await p.page.isDisabled('#data-crop-scale'), true);
  await p.page.selectOption('#data-normalize', 'imagenet');
  await p.page.selectOption('#data-onBadImage', 'error');
  await p.page.uncheck('#data-hflip');
  await p.page.check('#data-vflip');
  await p.page.check('#data-crop');
  await p.page.fill('#data-rotation', '200');
  await p.page.press('#data-rotation', 'Enter');
  assert.equal(await p.page.getAttribute('#data-rotation', 'aria-invalid'), 'true');
  await p.page.fill('#data-rotation', '');
  await p.page.press('#data-rotation', 'Enter');
  await p.page.fill('#data-brightness', '0.2');
  await p.page.press('#data-brightness', 'Enter');
  const got = await waitForPosts(p, 8);
  const edit = (field: string, value: unknown): unknown => ({ type: 'edit', edit: { kind: 'setData', field, value } });
  assert.deepEqual(got.slice(1), [
    edit('normalize', 'imagenet'),
    edit('onBadImage', 'error'),
    edit('augment.horizontalFlip', null),
    edit('augment.verticalFlip', true),
    edit('augment.randomResizedCrop', true),
    edit('augment.rotation', null),
    edit('augment.brightness', 0.2),
  ]);
  // the host's answer: a crop with its own scale, custom mean/std
  const next: Plan = {
    ...plan,
    data: { train: 'data/train', channels: 3, normalize: { mean: [0.5], std: [0.25] }, augment: { randomResizedCrop: { scale: [0.5, 1] }, contrast: 0.3 } },
  };
  await p.send({ type: 'state', state: panelState({ plan: next }) });
  await p.page.waitForFunction(() => (document.querySelector('#data-crop-scale') as HTMLInputElement | null)?.value === '0.5, 1');
  assert.equal(await p.page.inputValue('#data-normalize'), 'custom');
  assert.equal(await p.page.inputValue('#data-mean'), '0.5');
  assert.equal(await p.page.inputValue('#data-contrast'), '0.3');
  await p.page.fill('#data-crop-ratio', '0.5, 2');
  await p.page.press('#data-crop-ratio', 'Enter');
  await p.page.fill('#data-std', '0.2, 0.3, 0.4');
  await p.page.press('#data-std', 'Enter');
  const more = await waitForPosts(p, 10);
  assert.deepEqual(more.slice(8), [edit('augment.randomResizedCrop', { scale: [0.5, 1], ratio: [0.5, 2] }), edit('normalize', { mean: [0.5], std: [0.2, 0.3, 0.4] })]);
  // a CSV plan has no image settings: no section
  await p.send({ type: 'state', state: panelState({ plan: { ...plan, data: { train: 'data/train.csv' } } }) });
  await p.page.locator('.data-section').waitFor({ state: 'hidden' });
  await assertClean(p);
  await p.close();
});
