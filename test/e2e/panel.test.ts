/**
 * The plan editor on the real 162-layer MobileNetV2 (examples/mobilenet-fashion) in a real VS Code
 * (code-server), as issue 11's review used it: Ctrl+F in the panel goes to the filter box, which
 * finds a layer deep in a folded tree; an LR suggestion leaves the status bar once the model is
 * missing; the picker shows the preset the plan follows; applying another one first lists what it
 * overwrites and asks, and writes only once confirmed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Frame } from 'playwright-core';
import { openSession, shots, until, type Session } from './harness.ts';

let s: Session;
let frame: Frame;

before(async () => {
  s = await openSession('panel', { trusted: true, example: 'mobilenet-fashion' });
});

after(async () => {
  await s?.close();
});

const dirtyTab = (): Promise<number> => s.page.locator('.tabs-container .tab.dirty[aria-label*="layerwise.json"]').count();

test('on MobileNetV2 the filter finds a layer deep in the folded tree; Ctrl+F goes to it', { timeout: 300_000 }, async () => {
  await s.palette('Layerwise: Open Plan Editor');
  frame = await s.panelFrame();
  await frame.locator('tr[data-key="g:head"]').waitFor({ timeout: 180_000 });
  // every group folded: the deep layer is not in the page
  assert.equal(await frame.locator('tr[data-key="l:block_16_project_BN"]').count(), 0);
  await frame.locator('tr[data-key="g:head"]').focus();
  await s.page.keyboard.press('Control+F');
  const ctrlF = await until('Ctrl+F handled', async () =>
    (await frame.evaluate(() => document.activeElement?.className)) === 'tree-filter' ? 'filter' : (await s.page.locator('.find-widget.visible').count()) > 0 ? 'vscode-find' : undefined,
  );
  assert.equal(ctrlF, 'filter', 'Ctrl+F in the panel focuses its filter box, not VS Code’s find widget');
  await s.page.keyboard.type('block_16_project');
  await frame.locator('tr[data-key="l:block_16_project_BN"]').waitFor({ timeout: 30_000 });
  assert.match((await frame.locator('.filter-count').textContent()) ?? '', /^2 of \d+ layers match$/);
  await s.page.screenshot({ path: join(shots, 'e2e-panel-filter.png') });
  await s.page.keyboard.press('Escape');
  await until('Esc clears the filter', async () => (await frame.locator('tr[data-key="l:block_16_project_BN"]').count()) === 0 || undefined);
});

test('the status bar drops an LR suggestion once the plan\'s model is missing', { timeout: 600_000 }, async () => {
  await frame.locator('vscode-button', { hasText: 'Find LR' }).click();
  await until('the LR range test suggests a rate in the status bar', async () => (/suggested LR \d/.test(await s.statusText()) ? true : undefined), 480_000);
  assert.match((await frame.locator('.status').textContent()) ?? '', /LR range test finished: suggested LR/);
  // the test wrote its results into the plan (saved); now the plan names a model that is not there.
  // The notification comes once that save has finished: a write racing VS Code's save (between its
  // write and its stat of the file) is taken for the save's own and never reloaded into the editor
  await s.page.locator('.notification-toast', { hasText: 'suggested LR' }).first().waitFor({ timeout: 60_000 });
  assert.match(s.plan(), /"lrFinder"/, 'the plan saved with the results');
  const saved = s.plan();
  writeFileSync(s.planFile, saved.replace('"model/model.json"', '"model/missing.json"'));
  await until('the status bar no longer offers the suggestion', async () => (!/suggested LR/.test(await s.statusText()) ? true : undefined));
  await until('the panel says the model is missing', async () => ((await frame.locator('.problems').textContent()) ?? '').includes('Model:') || undefined);
  assert.equal(await frame.locator('.status').textContent(), 'Idle');
  await s.page.screenshot({ path: join(shots, 'e2e-panel-stale-status.png') });
  writeFileSync(s.planFile, saved);
  await frame.locator('tr[data-key="g:head"]').waitFor({ timeout: 180_000 });
});

test('the picker shows ULMFiT as current; another preset lists what it overwrites and asks before writing', { timeout: 180_000 }, async () => {
  const disk = s.plan();
  const picker = frame.locator('#field-preset');
  await until('ULMFiT shown as the current preset', async () => (await picker.evaluate((p) => (p as HTMLSelectElement).value)) === 'ulmfit' || undefined);
  await picker.click();
  await picker.getByRole('option', { name: /^Layer-wise decay/ }).click();
  const confirm = frame.locator('.preset-confirm');
  await confirm.waitFor({ timeout: 30_000 });
  assert.match((await confirm.textContent()) ?? '', /discriminative \{"type":"ulmfit","factor":2\.6\} → \{"type":"layerDecay","gamma":0\.75\}/);
  await s.page.screenshot({ path: join(shots, 'e2e-panel-preset-confirm.png') });
  assert.equal(await dirtyTab(), 0, 'nothing is edited while the question is open');
  assert.equal(s.plan(), disk);
  await confirm.locator('vscode-button', { hasText: 'Apply preset' }).click();
  await until('the preset edits the plan (unsaved)', async () => (await dirtyTab()) > 0 || undefined);
  await until('the picker follows: layer-wise decay is current', async () => (await picker.evaluate((p) => (p as HTMLSelectElement).value)) === 'layerDecay' || undefined);
});

test('the data section edits data.augment through the document, and the strip of augmented samples follows', { timeout: 300_000 }, async () => {
  assert.equal(await frame.locator('.augment-strip img').count(), 0, 'no strip without data.augment');
  await frame.locator('.data-summary').click();
  await frame.locator('#data-hflip').check();
  await frame.locator('#data-rotation').fill('15');
  await frame.locator('#data-rotation').press('Enter');
  await until('the summary shows the plan’s new augmentation', async () => /augment h-flip, rotation ±15°/.test((await frame.locator('.data-summary').textContent()) ?? '') || undefined);
  // the worker renders the samples under the new settings; the tree stays meanwhile
  await until('the strip of augmented samples', async () => (await frame.locator('.augment-strip img').count()) > 0 || undefined, 180_000);
  assert.ok((await frame.locator('tr[data-key="g:head"]').count()) > 0);
  assert.ok((await dirtyTab()) > 0, 'an unsaved edit of the plan');
  await s.page.screenshot({ path: join(shots, 'e2e-panel-data-section.png') });
});
