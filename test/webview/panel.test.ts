/**
 * The plan-editor webview in headless Chromium, loaded from its real bundle in the page the
 * host serves (same CSP), talking to a fake host that records every message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { textAfterRequest } from '../../src/host/plan-requests.ts';
import type { PanelState } from '../../src/protocol/webview.ts';
import { closestPair, contrast, parseCssColor, simulate, type Rgb } from './colour.ts';
import { bigModel, bigPlan, epochEvent, groupLrs, lrOutcome, panelState, smallPlan, stepEvent } from './fixtures.ts';
import { resultsDir, useHarness, waitForPosts, type Posted, type PanelPage } from './harness.ts';

const harness = useHarness();

async function posted(p: PanelPage): Promise<Posted> {
  return (await p.posted()) as Posted;
}

/** Opens the panel, waits for `ready`, sends `state` and waits for the tree. */
async function openWithState(state: PanelState = panelState(), persisted?: unknown): Promise<PanelPage> {
  const p = await harness.open(persisted === undefined ? {} : { persisted });
  await waitForPosts(p, 1);
  await p.send({ type: 'state', state });
  await p.page.waitForSelector('table.tree tbody tr[data-key]');
  return p;
}

/** Nothing went wrong in the page: no CSP violation, no console error, no exception. */
async function assertClean(p: PanelPage): Promise<void> {
  assert.deepEqual(await p.violations(), [], 'CSP violations');
  assert.deepEqual(p.errors, [], 'page errors');
}

const row = (key: string): string => `tr[data-key="${key}"]`;
const mult = (key: string): string => `${row(key)} [data-control="mult"]`;
const decay = (key: string): string => `${row(key)} [data-control="decay"]`;
const trains = (key: string): string => `${row(key)} [data-control="trains"]`;
const move = (key: string): string => `${row(key)} [data-control="move"]`;

/** The text of one cell of a row, by column name (`td[data-col]`), not by position. */
async function cell(p: PanelPage, key: string, col: string): Promise<string> {
  return ((await p.page.textContent(`${row(key)} td[data-col="${col}"]`)) ?? '').trim();
}

/** Keys of the rows drawn, in order. */
async function rowKeys(p: PanelPage): Promise<Array<string | undefined>> {
  return p.page.$$eval('table.tree tbody tr[data-key]', (rows) => rows.map((r) => (r as HTMLElement).dataset['key']));
}

/** The small plan without its "extra" group: dense_1 (weights) then falls into the implicit group. */
function planWithWeightedDefault(): PanelState['plan'] {
  const plan = smallPlan();
  plan.groups = plan.groups!.filter((g) => g.name !== 'extra');
  return plan;
}

test('posts ready first and nothing else until the host sends state', async () => {
  const p = await harness.open();
  const first = await waitForPosts(p, 1);
  assert.deepEqual(first, [{ type: 'ready' }]);
  // the run buttons exist before the state arrives; pressing them must not reach the host
  await p.page.locator('vscode-button', { hasText: 'Train' }).click({ force: true });
  await p.page.locator('vscode-button', { hasText: 'Open plan file' }).click();
  await p.send({ type: 'status', status: { state: 'idle' } });
  await p.send({ type: 'state', state: panelState() });
  await p.page.waitForSelector(row('g:base'));
  assert.deepEqual(await posted(p), [{ type: 'ready' }]);
  // after the state the same button does post
  await p.page.locator('vscode-button', { hasText: 'Open plan file' }).click();
  assert.deepEqual(await waitForPosts(p, 2), [{ type: 'ready' }, { type: 'command', command: 'openPlanText' }]);
  await assertClean(p);
  await p.close();
});

test('the tree shows groups bottom to top with the audit the core computes', async () => {
  const p = await openWithState();
  // input, pooling, flatten and dropout match no pattern and have no weights: no default group row
  assert.deepEqual(await rowKeys(p), ['g:base', 'g:extra', 'g:head']);
  // base: conv 3·3·1·16+16 = 160, BN 4·16 = 64, conv 3·3·16·32+32 = 4640 → 4864 params; 0.1 × 1e-3
  assert.equal(await cell(p, 'g:base', 'params'), '4.9k');
  assert.equal(await p.page.inputValue(mult('g:base')), '0.1');
  assert.equal(await cell(p, 'g:base', 'lr'), '1e-4');
  assert.match(await cell(p, 'g:base', 'rule'), /groups\[0\] "base"\.lrMult/);
  assert.equal(await cell(p, 'g:extra', 'params'), '51.3k'); // 800·64 + 64
  assert.equal(await cell(p, 'g:extra', 'lr'), '5e-4');
  // base holds a frozen layer (conv2d_1) but is not frozen itself: mixed
  assert.equal(await p.page.$eval(trains('g:base'), (b) => (b as HTMLInputElement).indeterminate), true);

  await p.page.click(`${row('g:extra')} .cell-name`);
  await p.page.waitForSelector(row('l:dense_1'));
  assert.equal(await p.page.inputValue(mult('l:dense_1')), '0.3');
  assert.equal(await cell(p, 'l:dense_1', 'lr'), '3e-4');
  // kernel decays, bias does not; nothing set on the layer itself, so the field shows it as inherited
  assert.equal(await p.page.inputValue(decay('l:dense_1')), '0.01 / 0');
  assert.equal(await p.page.$eval(decay('l:dense_1'), (i) => i.classList.contains('inherited')), true);
  assert.match(await cell(p, 'l:dense_1', 'rule'), /layers\["dense_1"\]\.lrMult/);
  assert.equal(await p.page.$eval(move('l:dense_1'), (s) => (s as HTMLSelectElement).selectedOptions[0]?.textContent), 'extra');
  await assertClean(p);
  await p.close();
});

test('the implicit default group is hidden while it holds only layers without weights, and shown once it holds weights', async () => {
  const p = await openWithState();
  assert.equal(await p.page.locator(row('g:default')).count(), 0);
  // the layers it would hold are counted, not silently dropped
  assert.match((await p.page.textContent('.tree-summary')) ?? '', /3 groups · 5 layers · .* · 4 layers without weights in no group, not shown/);
  // the schedule preview has no curve for it either
  const preview = 'figure.chart:has(figcaption:text-matches("Schedule preview"))';
  await p.page.waitForSelector(`${preview} path.series`);
  const series = await p.page.$$eval(`${preview} path.series`, (ps) => ps.map((x) => x.getAttribute('data-series')));
  assert.deepEqual(series, ['base', 'extra', 'head']);

  // the next plan leaves dense_1 (weights) to the implicit group: it is shown, at the bottom
  await p.send({ type: 'state', state: panelState({ plan: planWithWeightedDefault() }) });
  await p.page.waitForSelector(row('g:default'));
  assert.deepEqual(await rowKeys(p), ['g:default', 'g:base', 'g:head']);
  assert.equal(await cell(p, 'g:default', 'params'), '51.3k');
  assert.match(await cell(p, 'g:default', 'name'), /5 layers · implicit/);
  assert.doesNotMatch((await p.page.textContent('.tree-summary')) ?? '', /not shown/);
  // the implicit group has no plan entry: its own controls cannot edit it, its layers can be edited
  for (const control of [mult, decay, trains]) assert.equal(await p.page.isDisabled(control('g:default')), true);
  await p.page.click(`${row('g:default')} .cell-name`);
  await p.page.waitForSelector(row('l:dense_1'));
  assert.equal(await p.page.isDisabled(mult('l:dense_1')), false);
  assert.equal(await p.page.isDisabled(decay('l:dense_1')), false);
  // a layer without weights has nothing to decay
  assert.equal(await p.page.isDisabled(decay('l:flatten_1')), true);
  assert.equal(await p.page.$eval(move('l:dense_1'), (s) => (s as HTMLSelectElement).selectedOptions[0]?.textContent), 'default');
  // reached, it offers the plan's groups; the implicit one stays where it is, not a choice
  await p.page.focus(move('l:dense_1'));
  const choices = await p.page.$$eval(`${move('l:dense_1')} option`, (os) => os.map((o) => `${o.textContent}${(o as HTMLOptionElement).disabled ? ' (disabled)' : ''}`));
  assert.deepEqual(choices, ['default (disabled)', 'base', 'head']);
  assert.equal(await p.page.$eval(move('l:dense_1'), (s) => (s as HTMLSelectElement).selectedOptions[0]?.textContent), 'default');
  await assertClean(p);
  await p.close();
});

test('editing a multiplier posts one edit; the panel does not change the plan itself', async () => {
  const p = await openWithState();
  await p.page.fill(mult('g:extra'), '0.25');
  await p.page.press(mult('g:extra'), 'Enter');
  await waitForPosts(p, 2);
  // leaving the field after Enter must not send the same edit again
  await p.page.press(mult('g:extra'), 'Tab');
  await p.page.click(`${row('g:head')} [data-control="inc"]`);
  const got = await waitForPosts(p, 3);
  assert.deepEqual(got.slice(1), [
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 1, key: 'lrMult', value: 0.25 } },
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 2, key: 'lrMult', value: 2 } },
  ]);

  // a layer: type and leave the field (blur commits)
  await p.page.click(`${row('g:base')} .cell-name`);
  await p.page.fill(mult('l:conv2d_2'), '0.05');
  await p.page.press(mult('l:conv2d_2'), 'Tab');
  // emptying a layer's own multiplier removes it (null), so the layer follows its group again
  await p.page.click(`${row('g:extra')} .cell-name`);
  await p.page.fill(mult('l:dense_1'), '');
  await p.page.press(mult('l:dense_1'), 'Enter');
  // ÷2 on base (0.1), then ↑ in head's field (×2) committed with Enter
  await p.page.click(`${row('g:base')} [data-control="dec"]`);
  await p.page.focus(mult('g:head'));
  await p.page.press(mult('g:head'), 'ArrowUp');
  assert.equal(await p.page.inputValue(mult('g:head')), '2');
  await p.page.press(mult('g:head'), 'Enter');
  const more = await waitForPosts(p, 7);
  assert.deepEqual(more.slice(3), [
    { type: 'edit', edit: { kind: 'setLayer', layer: 'conv2d_2', key: 'lrMult', value: 0.05 } },
    { type: 'edit', edit: { kind: 'setLayer', layer: 'dense_1', key: 'lrMult', value: null } },
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 0, key: 'lrMult', value: 0.05 } },
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 2, key: 'lrMult', value: 2 } },
  ]);

  // not a number: marked invalid, nothing posted
  await p.page.fill(mult('g:extra'), 'abc');
  await p.page.press(mult('g:extra'), 'Enter');
  assert.equal(await p.page.getAttribute(mult('g:extra'), 'aria-invalid'), 'true');
  await p.page.fill(mult('g:extra'), '-1');
  await p.page.press(mult('g:extra'), 'Enter');
  assert.equal((await posted(p)).length, 7);
  // Escape reverts to the plan's value
  await p.page.press(mult('g:extra'), 'Escape');
  assert.equal(await p.page.inputValue(mult('g:extra')), '0.5');

  // the host answers with a new state: the tree shows the plan's value, not what was typed
  const plan = smallPlan();
  plan.groups![1]!.lrMult = 0.25;
  await p.send({ type: 'state', state: panelState({ plan }) });
  await p.page.waitForFunction((sel) => (document.querySelector(sel) as HTMLInputElement | null)?.value === '0.25', mult('g:extra'));
  await assertClean(p);
  await p.close();
});

test('"Trains" checkboxes: checked trains, unchecked shows a lock; toggles post edits, by mouse and keyboard', async () => {
  const p = await openWithState();
  assert.equal(await p.page.textContent('.tree th:nth-child(7)'), 'Trains');
  assert.equal(await p.page.isChecked(trains('g:extra')), true);
  assert.equal(await p.page.isVisible(`${row('g:extra')} .lock`), false);
  await p.page.click(trains('g:extra'));
  await p.page.click(`${row('g:base')} .cell-name`);
  // conv2d_1 is frozen by layers["conv2d_1"]: unchecked, with a lock; checking it removes the override
  assert.equal(await p.page.isChecked(trains('l:conv2d_1')), false);
  assert.equal(await p.page.isVisible(`${row('l:conv2d_1')} .lock`), true);
  await p.page.click(trains('l:conv2d_1'));
  // Space on a focused row toggles its freeze; Enter on the checkbox does too
  await p.page.focus(row('g:head'));
  await p.page.keyboard.press(' ');
  await p.page.focus(trains('l:conv2d_2'));
  await p.page.keyboard.press('Enter');
  const got = await waitForPosts(p, 5);
  assert.deepEqual(got.slice(1), [
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 1, key: 'frozen', value: true } },
    { type: 'edit', edit: { kind: 'setLayer', layer: 'conv2d_1', key: 'frozen', value: null } },
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 2, key: 'frozen', value: true } },
    { type: 'edit', edit: { kind: 'setLayer', layer: 'conv2d_2', key: 'frozen', value: true } },
  ]);
  await assertClean(p);
  await p.close();
});

test('arrow keys move through the tree and expand groups; expansion and tab survive a reload', async () => {
  const p = await openWithState();
  const focusedKey = (): Promise<string | undefined> => p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['key']);
  await p.page.focus(row('g:extra'));
  await p.page.keyboard.press('Home');
  assert.equal(await focusedKey(), 'g:base');
  await p.page.keyboard.press('ArrowDown');
  assert.equal(await focusedKey(), 'g:extra');
  await p.page.keyboard.press('ArrowUp');
  assert.equal(await focusedKey(), 'g:base');
  assert.equal(await p.page.getAttribute(row('g:base'), 'aria-expanded'), 'false');
  await p.page.keyboard.press('ArrowRight');
  assert.equal(await p.page.getAttribute(row('g:base'), 'aria-expanded'), 'true');
  await p.page.keyboard.press('ArrowRight');
  assert.equal(await focusedKey(), 'l:conv2d_1');
  await p.page.keyboard.press('ArrowDown');
  assert.equal(await focusedKey(), 'l:batch_normalization_1');
  await p.page.keyboard.press('ArrowLeft');
  assert.equal(await focusedKey(), 'g:base');
  await p.page.keyboard.press('End');
  assert.equal(await focusedKey(), 'g:head');
  // only the focused row is a tab stop (roving tabindex)
  const stops = await p.page.$$eval('table.tree tbody tr[tabindex="0"]', (rows) => rows.map((r) => (r as HTMLElement).dataset['key']));
  assert.deepEqual(stops, ['g:head']);
  // the tab's name is what a screen reader announces; switch to the Training tab
  await p.page.click('vscode-tab-header[data-tab="training"]');
  await p.page.waitForFunction(() => (window as unknown as { __uiState?: { tab?: string } }).__uiState?.tab === 'training');
  const saved = await p.uiState();
  assert.deepEqual(saved, { planUri: 'file:///work/example/layerwise.json', expandedGroups: ['base'], tab: 'training' });
  await assertClean(p);
  await p.close();

  // VS Code hands the saved state back to the reloaded webview
  const q = await openWithState(panelState(), saved);
  await q.page.waitForSelector(row('l:conv2d_2'));
  assert.equal(await q.page.getAttribute(row('g:base'), 'aria-expanded'), 'true');
  assert.equal(await q.page.$eval('vscode-tabs', (t) => (t as HTMLElement & { selectedIndex: number }).selectedIndex), 1);
  await assertClean(q);
  await q.close();
});

test('training events draw live curves, stage marks and update ratios', async () => {
  const p = await openWithState();
  await p.send({ type: 'runStarted', job: 'train' });
  await p.send({ type: 'status', status: { state: 'running', job: 'train', planFile: '/work/example/layerwise.json', stage: 1, stages: 2, epoch: 1, epochs: 3, fraction: 0.1, loss: 2.1 } });
  await p.send({ type: 'trainEvent', event: { kind: 'stage', stage: 1, stages: 2, epochs: 1, trainGroups: ['head'], lr: 1e-3 } });
  const losses = [2.3, 2.1, 1.9, 1.8, 1.6];
  for (let i = 0; i < losses.length; i++) {
    await p.send({ type: 'trainEvent', event: stepEvent(i + 1, losses[i]!, { groupLrs: groupLrs(1e-3, ['head']) }) });
  }
  const lossPath = 'path.series[data-series="train loss"]';
  const stepChart = 'figure.chart:has(figcaption:text-is("Training loss per step"))';
  await p.page.locator(`${stepChart} ${lossPath}[data-points="5"]`).waitFor();
  const d = (await p.page.getAttribute(`${stepChart} ${lossPath}`, 'd')) ?? '';
  assert.equal((d.match(/[ML]/g) ?? []).length, 5);
  // the loss falls, so each point sits lower on screen (larger y) than the one before
  const ys = [...d.matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((m) => Number(m[1]));
  assert.equal(ys.length, 5);
  assert.ok(ys.every((y, i) => i === 0 || y > ys[i - 1]!), `y should increase: ${ys.join(',')}`);

  // while only head trains, the other groups have no LR: the chart draws head only
  const lrChart = 'figure.chart:has(figcaption:text-is("Learning rate per group"))';
  assert.equal(await p.page.getAttribute(`${lrChart} path.series[data-series="head"]`, 'data-points'), '5');
  assert.equal(await p.page.getAttribute(`${lrChart} path.series[data-series="base"]`, 'data-points'), '0');

  // stage 2 begins at step 6: a marker there; every group trains from then on
  await p.send({ type: 'trainEvent', event: { kind: 'stage', stage: 2, stages: 2, epochs: 2, trainGroups: ['default', 'base', 'extra', 'head'], lr: 1e-3 } });
  await p.send({ type: 'trainEvent', event: stepEvent(6, 1.5, { stage: 2 }) });
  await p.send({ type: 'trainEvent', event: epochEvent(1, 1.7, 1.8, 0.41) });
  await p.send({ type: 'trainEvent', event: epochEvent(2, 1.2, 1.4, 0.55) });
  await p.send({
    type: 'trainEvent',
    event: {
      kind: 'diagnostics',
      step: 6,
      layers: [
        { layer: 'conv2d_2', group: 'base', gradNorm: 0.2, updateRatio: 2e-4 },
        { layer: 'dense_1', group: 'extra', gradNorm: 0.5, updateRatio: 1e-3 },
        { layer: 'head_dense', group: 'head', gradNorm: 1.1, updateRatio: 8e-3 },
      ],
    },
  });
  const epochChart = 'figure.chart:has(figcaption:text-is("Loss per epoch"))';
  await p.page.waitForSelector(`${epochChart} path.series[data-series="validation loss"][data-points="2"]`);
  assert.equal(await p.page.getAttribute(`${epochChart} path.series[data-series="train loss"]`, 'data-points'), '2');
  assert.equal(await p.page.locator(`${epochChart} .dots circle`).count(), 4);
  const accChart = 'figure.chart:has(figcaption:text-is("Accuracy per epoch"))';
  assert.equal(await p.page.getAttribute(`${accChart} path.series[data-series="validation accuracy"]`, 'data-points'), '2');
  assert.equal(await p.page.getAttribute(`${stepChart} ${lossPath}`, 'data-points'), '6');
  assert.equal(await p.page.getAttribute(`${stepChart} .marker.stage`, 'data-x'), '6');
  assert.equal(await p.page.getAttribute(`${lrChart} path.series[data-series="base"]`, 'data-points'), '1');
  // one bar (a closed rectangle) per measured layer, one path per group colour
  const bars = await p.page.$$eval('figure.chart:has(figcaption:text-matches("Update-to-weight")) path.bars', (ps) =>
    ps.map((x) => (x.getAttribute('d')?.match(/Z/g) ?? []).length),
  );
  assert.deepEqual(bars, [1, 1, 1]);
  // the run moved the panel to the Training tab, and Stop is the only run button on
  assert.equal(await p.page.$eval('vscode-tabs', (t) => (t as HTMLElement & { selectedIndex: number }).selectedIndex), 1);
  const disabled = (label: string): Promise<boolean> =>
    p.page.locator('vscode-button', { hasText: label }).evaluate((b) => (b as HTMLElement & { disabled: boolean }).disabled);
  assert.equal(await disabled('Train'), true);
  assert.equal(await disabled('Stop'), false);
  assert.match((await p.page.textContent('.status')) ?? '', /stage 1\/2 · epoch 1\/3 · 10% · loss 2\.1/);
  await p.page.locator('vscode-button', { hasText: 'Stop' }).click();
  const got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'command', command: 'stop' });
  await p.page.screenshot({ path: join(resultsDir, 'webview-training.png'), fullPage: true });
  await assertClean(p);
  await p.close();
});

test('an LR range test result shows the suggestion, and Apply asks the host to apply it', async () => {
  const p = await openWithState();
  await p.send({ type: 'lrResult', outcome: lrOutcome() });
  const marker = 'figure.chart .marker.suggestion';
  await p.page.waitForSelector(marker);
  assert.equal(await p.page.getAttribute(marker, 'data-x'), '0.003');
  // on a log axis from 1e-6 to 1e-1, 3e-3 sits (log10(3e-3) + 6) / 5 of the way along the
  // 58 … 626 px plot area of the 640-wide chart
  const expected = 58 + ((Math.log10(3e-3) + 6) / 5) * (640 - 58 - 14);
  const x = Number(await p.page.getAttribute(`${marker} line`, 'x1'));
  assert.ok(Math.abs(x - expected) < 0.5, `marker at ${x}, expected ${expected}`);
  assert.match((await p.page.textContent('.lr-suggestion')) ?? '', /training\.lr = 0\.003/);
  await p.page.locator('vscode-button.apply-lr').click();
  const got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'command', command: 'applyLr' });
  await p.page.screenshot({ path: join(resultsDir, 'webview-lr-finder.png'), fullPage: true });
  await assertClean(p);
  await p.close();
});

test('malformed host messages are ignored', async () => {
  const p = await openWithState();
  const rowsBefore = await p.page.locator('table.tree tbody tr[data-key]').count();
  for (const bad of [
    null,
    'state',
    42,
    [],
    { type: 'state' },
    { type: 'state', state: { planFile: 3, problems: [] } },
    { type: 'state', state: { planFile: '/x', problems: 'none' } },
    { type: 'status', status: { state: 'exploded' } },
    { type: 'trainEvent', event: 7 },
    { type: 'runStarted', job: 'rm -rf' },
    { type: 'report', report: { epochs: 'all' } },
    { type: 'lrResult', outcome: {} },
    { type: 'nonsense' },
  ]) {
    await p.send(bad);
  }
  // a well-formed message after them still works, so they were all processed (and dropped)
  await p.send({ type: 'status', status: { state: 'running', job: 'findLr', planFile: '/x', stage: 1, stages: 1, epoch: 1, epochs: 1, fraction: 0.5 } });
  await p.page.waitForFunction(() => document.querySelector('.status')?.textContent?.startsWith('LR range test'));
  assert.equal(await p.page.locator('table.tree tbody tr[data-key]').count(), rowsBefore);
  assert.deepEqual(await posted(p), [{ type: 'ready' }]);
  await assertClean(p);
  await p.close();
});

test('a plan the resolver rejects shows the problem instead of breaking the panel', async () => {
  const plan = smallPlan();
  plan.groups![0]!.layers = ['re:conv2d_(']; // not a regular expression
  const p = await harness.open();
  await waitForPosts(p, 1);
  await p.send({ type: 'state', state: panelState({ plan }) });
  await p.page.waitForSelector('.problems li.error');
  assert.match((await p.page.textContent('.problems')) ?? '', /groups\[0\]\.layers\[0\]/);
  assert.equal(await p.page.isHidden('.tree-box'), true);
  const disabled = await p.page.locator('vscode-button', { hasText: 'Train' }).evaluate((b) => (b as HTMLElement & { disabled: boolean }).disabled);
  assert.equal(disabled, true);
  // the next valid state brings the tree back
  await p.send({ type: 'state', state: panelState() });
  await p.page.waitForSelector(row('g:base'));
  await assertClean(p);
  await p.close();
});

test('in an untrusted workspace Train and Find LR are off, and the panel says why', async () => {
  const p = await openWithState(panelState({ trusted: false }));
  const disabled = (label: string): Promise<boolean> =>
    p.page.locator('vscode-button', { hasText: label }).evaluate((b) => (b as HTMLElement & { disabled: boolean }).disabled);
  assert.equal(await disabled('Train'), true);
  assert.equal(await disabled('Find LR'), true);
  assert.match((await p.page.textContent('.notice')) ?? '', /Restricted Mode/);
  assert.equal(await p.page.isVisible('.notice'), true);
  // editing still works
  await p.page.click(trains('g:head'));
  const got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'edit', edit: { kind: 'setGroup', groupIndex: 2, key: 'frozen', value: true } });
  await assertClean(p);
  await p.close();
});

test('settings post training edits; a finished run is drawn from its report', async () => {
  const report = {
    version: 1 as const,
    planFile: '/work/example/layerwise.json',
    plan: smallPlan(),
    task: 'classification' as const,
    backend: { name: 'wasm', reason: 'tfjs-node is not installed' },
    startedAt: '2025-01-01T00:00:00Z',
    finishedAt: '2025-01-01T00:01:00Z',
    stopped: 'completed' as const,
    stages: [
      { stage: 1, epochs: 1, trainGroups: ['head'], lr: 1e-3, steps: 10 },
      { stage: 2, epochs: 2, trainGroups: ['default', 'base', 'extra', 'head'], lr: 1e-3, steps: 20 },
    ],
    epochs: [1, 2, 3].map((e) => {
      const { kind: _kind, ...m } = epochEvent(e, 2 / e, 2.2 / e, 0.3 * e);
      return m;
    }),
    groupLrByEpoch: { default: [0, 5e-4, 1e-5], base: [0, 5e-5, 1e-6], extra: [0, 2.5e-4, 5e-6], head: [5e-4, 5e-4, 1e-5] },
    best: { epoch: 3, valLoss: 0.73, valAccuracy: 0.9 },
    frozenCheck: { weightsChecked: 6, unchanged: true, changed: [] },
    timings: { loadSeconds: 1, trainSeconds: 59, steps: 30, stepsPerSecond: 0.5 },
    outputs: { folder: 'runs/1', model: 'runs/1/model.json' },
  };
  const p = await openWithState(panelState({ lastReport: report }), { planUri: 'file:///work/example/layerwise.json', expandedGroups: [], tab: 'training' });
  const epochChart = 'figure.chart:has(figcaption:text-is("Loss per epoch"))';
  await p.page.waitForSelector(`${epochChart} path.series[data-series="train loss"][data-points="3"]`);
  assert.match((await p.page.textContent('.report-summary')) ?? '', /6 unchanged/);
  // the report's per-epoch LRs: base trains from epoch 2 only
  const lrChart = 'figure.chart:has(figcaption:text-matches("Learning rate per group"))';
  assert.equal(await p.page.getAttribute(`${lrChart} path.series[data-series="base"]`, 'data-points'), '2');
  await p.page.locator('vscode-button', { hasText: 'Open report' }).click();

  // vscode-textfield keeps its input in an open shadow root, which playwright's CSS pierces
  await p.page.locator('#field-lr').locator('input').fill('3e-4');
  await p.page.locator('#field-lr').locator('input').press('Enter');
  await p.page.locator('#field-epochs').locator('input').fill('2.5');
  await p.page.locator('#field-epochs').locator('input').press('Enter');
  await p.page.locator('#field-batchSize').locator('input').fill('');
  await p.page.locator('#field-batchSize').locator('input').press('Enter');
  const got = await waitForPosts(p, 4);
  assert.deepEqual(got.slice(1), [
    { type: 'command', command: 'openReport' },
    { type: 'edit', edit: { kind: 'setTraining', key: 'lr', value: 3e-4 } },
    // 2.5 epochs is refused in the panel; emptying batch size removes it from the plan
    { type: 'edit', edit: { kind: 'setTraining', key: 'batchSize', value: null } },
  ]);
  await p.page.screenshot({ path: join(resultsDir, 'webview-report.png'), fullPage: true });
  await assertClean(p);
  await p.close();
});

test('the panel runs under the host CSP: an inline script is refused and reported', async () => {
  const p = await openWithState();
  await p.page.click('vscode-tab-header[data-tab="rates"]');
  await p.page.waitForSelector('figure.chart:has(figcaption:text-matches("Schedule preview")) path.series');
  await p.page.screenshot({ path: join(resultsDir, 'webview-rates.png'), fullPage: true });
  await assertClean(p);
  // the listener that the other tests rely on does see violations
  await p.page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true';
    document.body.append(s);
  });
  await p.page.waitForFunction(() => (window as unknown as { __violations: string[] }).__violations.length > 0);
  assert.equal(await p.page.evaluate(() => (window as unknown as { __inlineRan?: boolean }).__inlineRan), undefined);
  await p.close();
});

test('selects post optimizer, schedule and preset edits; a preset asks first, listing the hand-set values it overwrites', async () => {
  const p = await openWithState();
  const choose = async (id: string, option: string): Promise<void> => {
    await p.page.click(`#${id}`);
    await p.page.locator(`#${id}`).getByRole('option', { name: option, exact: true }).click();
  };
  await choose('field-optimizer', 'SGD');
  await choose('field-schedule', 'one-cycle');
  // the seed's split with hand-set multipliers follows no preset
  assert.equal(await p.page.$eval('#field-preset', (s) => (s as HTMLSelectElement).value), '');
  await choose('field-preset', 'ULMFiT (÷2.6 per group)');
  const confirm = p.page.locator('.preset-confirm');
  await confirm.waitFor();
  const listed = await confirm.locator('li').allTextContents();
  // base ×0.1, extra ×0.5 and head ×1 are set by hand: ULMFiT removes all three
  for (const [i, name, v] of [[0, 'base', '0.1'], [1, 'extra', '0.5'], [2, 'head', '1']] as const) {
    assert.ok(listed.some((t) => t.includes(`groups[${i}] "${name}".lrMult ${v} → (removed)`) && t.includes('set by hand')), listed.join('\n'));
  }
  assert.ok(listed.some((t) => t.startsWith('discriminative (not set) →')));
  // nothing is posted before the answer; Cancel posts nothing and puts the picker back
  await p.page.locator('.preset-confirm vscode-button', { hasText: 'Cancel' }).click();
  await confirm.waitFor({ state: 'hidden' });
  assert.equal(await p.page.$eval('#field-preset', (s) => (s as HTMLSelectElement).value), '');
  await choose('field-preset', 'ULMFiT (÷2.6 per group)');
  await p.page.locator('.preset-confirm vscode-button', { hasText: 'Apply preset' }).click();
  const got = await waitForPosts(p, 4);
  assert.deepEqual(got.slice(1), [
    { type: 'edit', edit: { kind: 'setTraining', key: 'optimizer', value: 'sgd' } },
    // the other schedule settings (warm-up) are kept
    { type: 'edit', edit: { kind: 'setTraining', key: 'schedule', value: { type: 'onecycle', warmup: 0.1 } } },
    { type: 'edit', edit: { kind: 'applyPreset', preset: 'ulmfit' } },
  ]);
  await assertClean(p);
  await p.close();
});

test('half-typed values survive a state from the host', async () => {
  const p = await openWithState();
  await p.page.fill(mult('g:head'), '0.7');
  await p.send({ type: 'state', state: panelState({ stepsPerEpoch: 20 }) });
  await p.page.waitForFunction(() => document.querySelector('.tab-rates .hint')?.textContent?.includes('20 per epoch'));
  assert.equal(await p.page.inputValue(mult('g:head')), '0.7');
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLInputElement | null)?.dataset['control']), 'mult');
  await p.page.press(mult('g:head'), 'Enter');
  const field = p.page.locator('#field-batchSize').locator('input');
  await field.fill('64');
  await p.send({ type: 'state', state: panelState({ stepsPerEpoch: 30 }) });
  await p.page.waitForFunction(() => document.querySelector('.tab-rates .hint')?.textContent?.includes('30 per epoch'));
  assert.equal(await field.inputValue(), '64');
  await field.press('Enter');
  const got = await waitForPosts(p, 3);
  assert.deepEqual(got.slice(1), [
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 2, key: 'lrMult', value: 0.7 } },
    { type: 'edit', edit: { kind: 'setTraining', key: 'batchSize', value: 64 } },
  ]);
  await assertClean(p);
  await p.close();
});

test('a 1,000-layer tree draws only the rows in view and scrolls to any row', async () => {
  const plan = bigPlan();
  const state = panelState({ plan, model: bigModel(1000), stepsPerEpoch: 50 });
  const expanded = plan.groups!.map((g) => g.name);
  const p = await openWithState(state, { planUri: state.planUri, expandedGroups: expanded, tab: 'rates' });
  const drawn = (): Promise<number> => p.page.locator('table.tree tbody tr[data-key]').count();
  assert.equal(await p.page.getAttribute('table.tree', 'aria-rowcount'), String(1000 + 12 + 1));
  assert.ok((await drawn()) < 150, `drew ${await drawn()} rows`);
  // End on the first row moves to the last layer of the last group, drawn and focused
  await p.page.focus(row('g:block_0'));
  await p.page.keyboard.press('End');
  const last = 'l:block_11/norm_999';
  await p.page.waitForFunction((k) => (document.activeElement as HTMLElement | null)?.dataset['key'] === k, last);
  assert.equal(await p.page.getAttribute(row(last), 'aria-rowindex'), String(1000 + 12 + 1));
  await p.page.keyboard.press('ArrowUp');
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['key']), 'l:block_11/dense_998');
  // scrolling the box draws the rows that come into view
  await p.page.$eval('.tree-scroll', (el) => {
    el.scrollTop = 500 * 26;
  });
  // row 500 of the flat list: group 5 starts at 5 × 85, so this is its 75th layer (420 + 74)
  await p.page.waitForSelector(row('l:block_5/dense_494'));
  assert.ok((await drawn()) < 150);
  await p.page.screenshot({ path: join(resultsDir, 'webview-1000-layers.png') });

  // moving a layer far up the tree: the focus follows it out of the drawn window
  const layer = 'l:block_5/dense_494';
  await p.page.focus(move(layer));
  await p.page.selectOption(move(layer), { label: 'block_11' });
  const got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'edit', edit: { kind: 'moveLayer', layer: 'block_5/dense_494', toGroupIndex: 11 } });
  // the plan as the host writes it for that request
  const text = textAfterRequest(JSON.stringify(plan, null, 2), { kind: 'moveLayer', layer: 'block_5/dense_494', toGroupIndex: 11 }, { file: 'layerwise.json' });
  await p.send({ type: 'state', state: { ...state, plan: JSON.parse(text) as typeof plan } });
  await p.page.waitForFunction((k) => document.activeElement?.closest('tr')?.dataset['key'] === k && document.activeElement?.getAttribute('data-control') === 'move', layer);
  // it now sits in block_11, drawn among that group's rows near the bottom
  assert.equal(await p.page.inputValue(move(layer)), '11');
  assert.ok(Number(await p.page.getAttribute(row(layer), 'aria-rowindex')) > 900);
  assert.ok((await drawn()) < 150);
  await assertClean(p);
  await p.close();
});

test('a scroll or an opened group keeps the rows still drawn; touched rows and a new state are drawn afresh', async () => {
  const plan = bigPlan();
  const state = panelState({ plan, model: bigModel(1000), stepsPerEpoch: 50 });
  const p = await openWithState(state, { planUri: state.planUri, expandedGroups: ['block_1'], tab: 'rates' });
  // the tree's rows, bottom to top, when the groups `open` are expanded (bigModel's naming)
  const flatKeys = (layers: number, open: number[]): string[] => {
    const perBlock = Math.ceil(layers / 12);
    return Array.from({ length: 12 }, (_, g) => [
      `g:block_${g}`,
      ...(open.includes(g)
        ? Array.from({ length: Math.min(perBlock, layers - g * perBlock) }, (_, j) => g * perBlock + j).map((i) => `l:block_${g}/${i % 2 === 0 ? 'dense' : 'norm'}_${i}`)
        : []),
    ]).flat();
  };
  // marks every drawn row element; a row drawn afresh has no mark
  const mark = (): Promise<void> =>
    p.page.$$eval('table.tree tbody tr[data-key]', (rows) => {
      for (const r of rows) (r as HTMLElement & { mark?: string }).mark = (r as HTMLElement).dataset['key'];
    });
  const drawn = (): Promise<Array<{ key: string; marked: boolean; index: number }>> =>
    p.page.$$eval('table.tree tbody tr[data-key]', (rows) =>
      rows.map((r) => ({
        key: (r as HTMLElement).dataset['key'] ?? '',
        marked: (r as HTMLElement & { mark?: string }).mark === (r as HTMLElement).dataset['key'],
        index: Number(r.getAttribute('aria-rowindex')),
      })),
    );
  const assertPlaces = (rows: Array<{ key: string; index: number }>, layers: number, open: number[]): void => {
    const keys = flatKeys(layers, open);
    for (const r of rows) assert.equal(r.index, keys.indexOf(r.key) + 2, `aria-rowindex of ${r.key}`);
  };

  await mark();
  const before = await drawn();
  assertPlaces(before, 1000, [1]);
  // a short scroll draws the rows coming into view and keeps the others
  await p.page.$eval('.tree-scroll', (el) => {
    el.scrollTop = 8 * 26;
  });
  await p.page.waitForFunction((n) => document.querySelectorAll('table.tree tbody tr[data-key]').length > n, before.length);
  const scrolled = await drawn();
  assertPlaces(scrolled, 1000, [1]);
  assert.deepEqual(
    scrolled.filter((r) => r.marked).map((r) => r.key),
    before.map((r) => r.key).filter((k) => scrolled.some((r) => r.key === k)),
  );
  assert.ok(scrolled.some((r) => !r.marked));

  // opening block_0 moves every row below it down; the rows still drawn keep their elements
  await p.page.$eval('.tree-scroll', (el) => {
    el.scrollTop = 0;
  });
  await p.page.click(`${row('g:block_0')} .cell-name`);
  await p.page.waitForSelector(row('l:block_0/norm_1'));
  assert.equal(await p.page.getAttribute(row('g:block_0'), 'aria-expanded'), 'true');
  assert.equal(await p.page.textContent(`${row('g:block_0')} .toggle`), '▾');
  await mark();
  // and closing it again (from the keyboard) keeps block_0's row, shown closed
  await p.page.keyboard.press('ArrowLeft');
  await p.page.waitForSelector(row('g:block_1'));
  const closed = await drawn();
  assert.deepEqual(closed.filter((r) => r.marked).map((r) => r.key), ['g:block_0']);
  assert.equal(await p.page.getAttribute(row('g:block_0'), 'aria-expanded'), 'false');
  assert.equal(await p.page.textContent(`${row('g:block_0')} .toggle`), '▸');
  assertPlaces(closed, 1000, [1]);

  // a row whose controls were used shows the plan again when it is drawn next, as after a state
  const layer = 'l:block_1/dense_84';
  const planValue = await p.page.inputValue(mult(layer));
  await p.page.click(`${row(layer)} [data-control="inc"]`);
  assert.notEqual(await p.page.inputValue(mult(layer)), planValue);
  await mark();
  await p.page.$eval('.tree-scroll', (el) => {
    el.scrollTop = 12 * 26;
  });
  await p.page.waitForFunction((k) => !(document.querySelector(`tr[data-key="${k}"]`) as (HTMLElement & { mark?: string }) | null)?.mark, layer);
  assert.equal(await p.page.inputValue(mult(layer)), planValue);
  // the others that were drawn (the first 30 rows) are kept
  for (const r of await drawn()) if (r.key !== layer) assert.equal(r.marked, r.index - 2 < 30, r.key);
  // the focus stayed on the ×2 button of that row
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['control']), 'inc');

  // a new state draws every row from it
  await mark();
  await p.send({ type: 'state', state });
  await p.page.waitForFunction(() => Array.from(document.querySelectorAll('table.tree tbody tr[data-key]')).every((r) => !(r as HTMLElement & { mark?: string }).mark));
  assertPlaces(await drawn(), 1000, [1]);

  // with 4 layers a block every row fits: opening block_0 moves the rows above it up the list
  await p.send({ type: 'state', state: { ...state, model: bigModel(48) } });
  await p.page.waitForFunction(() => document.querySelectorAll('table.tree tbody tr[data-key]').length === 16);
  await mark();
  await p.page.click(`${row('g:block_0')} .cell-name`);
  await p.page.waitForSelector(row('l:block_0/dense_0'));
  const opened = await drawn();
  assert.deepEqual(
    opened.map((r) => r.key),
    flatKeys(48, [0, 1]),
  );
  assert.deepEqual(opened.filter((r) => !r.marked).map((r) => r.key), flatKeys(48, [0]).filter((k) => k.startsWith('l:')));
  assertPlaces(opened, 48, [0, 1]);
  await assertClean(p);
  await p.close();
});

test('weight decay is edited per group and per layer like the multiplier, and the tree shows the plan’s answer', async () => {
  const p = await openWithState();
  // a group: type and Enter; leaving the field afterwards sends nothing more
  assert.equal(await p.page.inputValue(decay('g:head')), '0.01 / 0');
  await p.page.fill(decay('g:head'), '0.05');
  await p.page.press(decay('g:head'), 'Enter');
  await waitForPosts(p, 2);
  await p.page.press(decay('g:head'), 'Tab');
  // a layer: type and leave the field (blur commits)
  await p.page.click(`${row('g:extra')} .cell-name`);
  await p.page.fill(decay('l:dense_1'), '1e-3');
  await p.page.press(decay('l:dense_1'), 'Tab');
  // not a number, or negative: marked invalid, nothing posted; Esc reverts
  await p.page.fill(decay('g:base'), 'lots');
  await p.page.press(decay('g:base'), 'Enter');
  assert.equal(await p.page.getAttribute(decay('g:base'), 'aria-invalid'), 'true');
  await p.page.fill(decay('g:base'), '-0.1');
  await p.page.press(decay('g:base'), 'Enter');
  await p.page.press(decay('g:base'), 'Escape');
  assert.equal(await p.page.inputValue(decay('g:base')), '0.01 / 0');
  // emptying a field with no setting of its own just reverts it
  await p.page.fill(decay('g:base'), '');
  await p.page.press(decay('g:base'), 'Enter');
  assert.equal(await p.page.inputValue(decay('g:base')), '0.01 / 0');
  const got = await waitForPosts(p, 3);
  assert.deepEqual(got.slice(1), [
    { type: 'edit', edit: { kind: 'setGroup', groupIndex: 2, key: 'weightDecay', value: 0.05 } },
    { type: 'edit', edit: { kind: 'setLayer', layer: 'dense_1', key: 'weightDecay', value: 1e-3 } },
  ]);

  // the host writes the plan and answers with it: the rows show the overrides as their own
  const plan = smallPlan();
  plan.groups![2]!.weightDecay = 0.05;
  plan.layers = { ...plan.layers, dense_1: { lrMult: 0.3, weightDecay: 1e-3 } };
  await p.send({ type: 'state', state: panelState({ plan }) });
  await p.page.waitForFunction((sel) => (document.querySelector(sel) as HTMLInputElement | null)?.value === '0.05', decay('g:head'));
  assert.equal(await p.page.$eval(decay('g:head'), (i) => i.classList.contains('inherited')), false);
  assert.match(await cell(p, 'g:head', 'rule'), /groups\[2\] "head"\.weightDecay/);
  assert.equal(await p.page.inputValue(decay('l:dense_1')), '0.001');
  assert.match(await cell(p, 'l:dense_1', 'rule'), /layers\["dense_1"\]\.weightDecay/);
  // the layer's own value reaches its bias too (it wins over noDecay): one value, said in the tooltip
  assert.match((await p.page.getAttribute(decay('l:dense_1'), 'title')) ?? '', /dense_1\/bias: 0\.001 \(layers\["dense_1"\]\.weightDecay\)/);
  // emptying a field that holds the row's own setting removes it
  await p.page.fill(decay('l:dense_1'), '');
  await p.page.press(decay('l:dense_1'), 'Enter');
  const last = await waitForPosts(p, 4);
  assert.deepEqual(last[3], { type: 'edit', edit: { kind: 'setLayer', layer: 'dense_1', key: 'weightDecay', value: null } });
  await assertClean(p);
  await p.close();
});

test('a layer moves to another group from its row, by mouse or keyboard, one request per move', async () => {
  const p = await openWithState();
  await p.page.click(`${row('g:extra')} .cell-name`);
  await p.page.waitForSelector(move('l:dense_1'));
  // a row is drawn with only its own group; the pointer or the focus reaching the select brings
  // the choices: the plan's groups, in file order
  const options = (): Promise<Array<string | null>> => p.page.$$eval(`${move('l:dense_1')} option`, (os) => os.map((o) => o.textContent));
  assert.deepEqual(await options(), ['extra']);
  await p.page.hover(move('l:dense_1'));
  await p.page.mouse.down();
  assert.deepEqual(await options(), ['base', 'extra', 'head']);
  assert.equal(await p.page.inputValue(move('l:dense_1')), '1');
  await p.page.mouse.up();
  await p.page.keyboard.press('Escape');
  // a pick from the list moves at once
  await p.page.focus(move('l:dense_1'));
  await p.page.selectOption(move('l:dense_1'), { label: 'head' });
  const got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'edit', edit: { kind: 'moveLayer', layer: 'dense_1', toGroupIndex: 2 } });
  // the target group opens so the layer stays in view when the host answers
  await p.page.waitForFunction(() => ((window as unknown as { __uiState?: { expandedGroups?: string[] } }).__uiState?.expandedGroups ?? []).includes('head'));

  // the host answers: dense_1 now sits in "head" (its first pattern names it)
  const plan = smallPlan();
  plan.groups![1]!.layers = [];
  plan.groups![2]!.layers = ['dense_1', 'head_*'];
  await p.send({ type: 'state', state: panelState({ plan }) });
  await p.page.waitForFunction(
    (sel) => (document.querySelector(sel) as HTMLSelectElement | null)?.selectedOptions[0]?.textContent === 'head',
    move('l:dense_1'),
  );
  const keys = await rowKeys(p);
  assert.ok(keys.indexOf('l:dense_1') > keys.indexOf('g:head'), keys.join(' '));
  // focus followed the layer to its new row
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['control']), 'move');
  assert.equal(await p.page.evaluate(() => document.activeElement?.closest('tr')?.dataset['key']), 'l:dense_1');

  // keyboard: the arrows only browse (a closed select would otherwise move the layer per key)
  await p.page.keyboard.press('ArrowUp');
  await p.page.keyboard.press('ArrowUp');
  assert.equal(await p.page.inputValue(move('l:dense_1')), '0');
  assert.equal((await posted(p)).length, 2);
  await p.page.keyboard.press('Escape');
  assert.equal(await p.page.inputValue(move('l:dense_1')), '2');
  // Escape gave the focus back to the row; Tab reaches the select again, a letter jumps, Enter applies
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['key']), 'l:dense_1');
  await p.page.keyboard.press('Tab');
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['control']), 'move');
  await p.page.keyboard.press('e');
  assert.equal(await p.page.inputValue(move('l:dense_1')), '1');
  assert.equal((await posted(p)).length, 2);
  await p.page.keyboard.press('Enter');
  const more = await waitForPosts(p, 3);
  assert.deepEqual(more[2], { type: 'edit', edit: { kind: 'moveLayer', layer: 'dense_1', toGroupIndex: 1 } });
  // browsing then leaving applies too, as leaving a number field does
  await p.page.keyboard.press('ArrowLeft');
  await p.page.keyboard.press('Tab');
  const moved = await waitForPosts(p, 4);
  assert.deepEqual(moved[3], { type: 'edit', edit: { kind: 'moveLayer', layer: 'dense_1', toGroupIndex: 0 } });
  await assertClean(p);
  await p.close();
});

test('group colours stay distinguishable for eight groups in light, dark and high-contrast themes', async () => {
  const plan = bigPlan(12);
  const state = panelState({ plan, model: bigModel(24, 12), stepsPerEpoch: 5 });
  const p = await openWithState(state);
  const themes: Array<{ classes: string[]; background: string; minContrast: number }> = [
    { classes: ['vscode-light'], background: '#ffffff', minContrast: 3 },
    { classes: ['vscode-dark'], background: '#1f1f1f', minContrast: 3 },
    { classes: ['vscode-high-contrast'], background: '#000000', minContrast: 6 },
    { classes: ['vscode-high-contrast', 'vscode-high-contrast-light'], background: '#ffffff', minContrast: 6 },
  ];
  for (const theme of themes) {
    // VS Code sets these classes on <body> and the theme's colours as variables
    // (no named functions in here: the test's TypeScript transform would wrap them in a helper the page lacks)
    const colours = await p.page.evaluate(({ classes, background }) => {
      document.body.className = classes.join(' ');
      document.body.style.setProperty('--vscode-editor-background', background);
      const swatches = Array.from({ length: 12 }, (_, g) => document.querySelector(`tr[data-key="g:block_${g}"] .swatch`));
      return {
        body: getComputedStyle(document.body).backgroundColor,
        swatches: swatches.map((el) => (el === null ? '' : getComputedStyle(el).backgroundColor)),
        alt: swatches.map((el) => el?.classList.contains('alt') ?? false),
        altRing: swatches[8] ? getComputedStyle(swatches[8]).boxShadow : '',
      };
    }, theme);
    const what = theme.classes.join(' ');
    const bg = parseCssColor(colours.body);
    assert.deepEqual(bg, parseCssColor(theme.background), `${what}: body background`);
    // the first eight groups: eight different colours; the ninth on repeat them, outlined
    const first: Rgb[] = colours.swatches.slice(0, 8).map(parseCssColor);
    const close = closestPair(first);
    assert.ok(close.distance >= 20, `${what}: groups ${close.i} and ${close.j} are only ΔE2000 ${close.distance.toFixed(1)} apart`);
    for (const kind of ['protanopia', 'deuteranopia', 'tritanopia'] as const) {
      const c = closestPair(first, (x) => simulate(x, kind));
      assert.ok(c.distance >= 8, `${what}, ${kind}: groups ${c.i} and ${c.j} are only ΔE2000 ${c.distance.toFixed(1)} apart`);
    }
    first.forEach((c, i) => {
      const k = contrast(c, bg);
      assert.ok(k >= theme.minContrast, `${what}: group ${i} ${colours.swatches[i]} has contrast ${k.toFixed(2)}`);
    });
    assert.deepEqual(colours.alt, [...Array(8).fill(false), ...Array(4).fill(true)]);
    // an outlined swatch: transparent inside, a ring of the group's colour
    assert.equal(colours.swatches[8], 'rgba(0, 0, 0, 0)');
    assert.match(colours.altRing, /inset/);
  }
  await p.page.screenshot({ path: join(resultsDir, 'webview-hc-light-groups.png') });
  await assertClean(p);
  await p.close();
});

test('a stopped or cut-off run shows Resume; clicking it asks the host to resume; while a run goes on, or with none, it is hidden', async () => {
  const interrupted = { folder: '/work/example/runs/layerwise-1', how: 'crashed' as const, step: 12, epoch: 1, writtenAt: '2026-01-01T00:00:00Z' };
  const p = await openWithState({ ...panelState(), interrupted });
  const resume = p.page.locator('vscode-button', { hasText: 'Resume' });
  await resume.waitFor({ state: 'visible' });
  assert.match((await resume.getAttribute('title')) ?? '', /cut off at step 12 .*runs\/layerwise-1/);
  await resume.click();
  const got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'command', command: 'resume' });
  await p.send({ type: 'status', status: { state: 'running', job: 'train', planFile: '/work/example/layerwise.json', stage: 1, stages: 2, epoch: 1, epochs: 3, fraction: 0.1, loss: 2.1 } });
  await resume.waitFor({ state: 'hidden' });
  await assertClean(p);
  await p.close();
  const q = await openWithState();
  await q.page.locator('vscode-button', { hasText: 'Train' }).waitFor();
  assert.equal(await q.page.locator('vscode-button', { hasText: 'Resume' }).isVisible(), false);
  await assertClean(q);
  await q.close();
});

test('the strip of augmented samples shows each class\'s images as data: URLs within the CSP, and goes away without data.augment', async () => {
  // a 1×1 grey JPEG stand-in for what the worker renders
  const jpeg = 'data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==';
  const augmentPreview = {
    width: 8,
    height: 8,
    samples: ['circle', 'cross'].map((label) => ({ label, file: `data/train/${label}/img_0.png`, images: [jpeg, jpeg, jpeg, jpeg, jpeg] })),
  };
  const p = await openWithState({ ...panelState(), augmentPreview });
  await p.page.waitForSelector('.augment-strip:not([hidden]) .augment-row img');
  assert.deepEqual(await p.page.$$eval('.augment-row', (rows) => rows.map((r) => [r.querySelector('.augment-label')?.textContent, r.querySelectorAll('img').length])), [['circle', 5], ['cross', 5]]);
  assert.equal(await p.page.getAttribute('.augment-row img.augment-plain', 'alt'), 'circle: unaugmented');
  // it folds to its title (so the tree and the charts move up), and stays folded across states
  await p.page.click('.augment-title');
  assert.equal(await p.page.locator('.augment-row img').first().isVisible(), false);
  await p.send({ type: 'state', state: { ...panelState(), augmentPreview } });
  await p.page.waitForFunction(() => document.querySelector('.tree-summary')?.textContent !== '');
  assert.equal(await p.page.locator('.augment-row img').first().isVisible(), false);
  await p.send({ type: 'state', state: panelState() });
  await p.page.waitForSelector('.augment-strip[hidden]', { state: 'attached' });
  await assertClean(p);
});
