/**
 * The plan editor's charts in a real VS Code (code-server): the bundled example trained from the
 * panel's Train button; hovering the live loss chart reads a step and its loss; the chart's CSV
 * export goes through VS Code's save dialog (the run's folder proposed) into a file on disk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSession, shots, until, type Session } from './harness.ts';

let s: Session;

before(async () => {
  s = await openSession('charts', { trusted: true, epochs: 4 });
});

after(async () => {
  await s?.close();
});

test('train from the panel, hover the loss chart for a value, export its CSV through the save dialog', { timeout: 600_000 }, async () => {
  await s.palette('Layerwise: Open Plan Editor');
  const frame = await s.panelFrame();
  const train = frame.locator('header vscode-button', { hasText: 'Train' }).first();
  await until('Train enabled', async () => (await train.evaluate((b) => (b as HTMLElement & { disabled: boolean }).disabled)) === false || undefined, 120_000);
  await train.click();

  const chart = frame.locator('figure.chart:has(figcaption:text-is("Training loss per step"))');
  const path = chart.locator('path.series[data-series="train loss"]');
  // a few steps in: the curve has points to read
  await until('a loss curve of several steps', async () => Number((await path.getAttribute('data-points', { timeout: 1_000 }).catch(() => null)) ?? 0) >= 5 || undefined, 300_000).catch(async (e: unknown) => {
    await s.page.screenshot({ path: join(shots, 'e2e-chart-train-failure.png') });
    throw e;
  });
  const box = await chart.locator('svg').boundingBox();
  assert.ok(box, 'the chart is on screen');
  // the middle of the plot area (58 … 626 of the 640-wide drawing)
  await s.page.mouse.move(box.x + box.width * (342 / 640), box.y + box.height / 2);
  const readout = chart.locator('.chart-readout');
  const text = await until('a readout with a value', async () => {
    const t = ((await readout.textContent()) ?? '').replace(/\s+/g, ' ').trim();
    return /^step \d+ · epoch \d+ train loss \d+(\.\d+)?(e-?\d+)?$/.test(t) ? t : undefined;
  });
  assert.match(text, /train loss/);
  await s.page.screenshot({ path: join(shots, 'e2e-chart-readout-live.png') });

  // the run ends (its folder is where the export is proposed)
  await until('results.lastRun in the plan on disk', () => (/"lastRun"/.test(s.plan()) ? true : undefined), 300_000);
  await frame.locator('.report-summary').waitFor();
  const steps = Number(await path.getAttribute('data-points'));
  // the finished run's curves, read at about two thirds of the steps (the README's figure)
  await s.page.mouse.move(box.x + box.width * (430 / 640), box.y + box.height / 2);
  await until('the readout after the run', async () => /^step \d+/.test(((await readout.textContent()) ?? '').trim()) || undefined);
  const tab = await frame.locator('.tab-training').boundingBox();
  if (tab !== null) await s.page.screenshot({ path: join(shots, 'e2e-chart-readout.png'), clip: { x: tab.x, y: tab.y, width: tab.width, height: Math.min(tab.height, 330) } });
  await chart.locator('[data-tool="csv"]').click();
  // VS Code's own save dialog (in the browser: its quick-input dialog), with the proposed path
  const input = s.page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 60_000 });
  const proposed = await until('the proposed file name', async () => {
    const v = await input.inputValue();
    return v.endsWith('training-loss-per-step.csv') ? v : undefined;
  });
  assert.match(proposed, /runs\//, `proposed ${proposed}: the run's folder`);
  const target = join(s.workspace, 'loss-export.csv');
  await input.fill(target);
  await until('the typed path taken', async () => (await input.inputValue()) === target || undefined);
  await s.page.locator('.quick-input-widget .monaco-button', { hasText: /^OK$/ }).click();
  const csv = await until('the CSV on disk', () => (existsSync(target) ? readFileSync(target, 'utf8') : undefined), 60_000).catch(async (e: unknown) => {
    await s.page.screenshot({ path: join(shots, 'e2e-chart-export-failure.png') });
    throw e;
  });
  const lines = csv.trimEnd().split('\n');
  assert.equal(lines[0], 'step,epoch,train loss');
  assert.equal(lines.length, steps + 1, 'one row per step drawn');
  assert.match(lines[1] ?? '', /^1,1,\d/);
});
