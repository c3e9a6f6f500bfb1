/**
 * The panel's line charts in headless Chromium (the real bundle under the host's CSP): hover and
 * keyboard readouts, drag zoom, pan and reset, the log/linear switch, updates in place while a
 * run streams, and the exports the panel posts to the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { epochEvent, panelState, stepEvent } from './fixtures.ts';
import { resultsDir, useHarness, type PanelPage } from './harness.ts';

const harness = useHarness();

const STEPS = 300;
const lossAt = (step: number): number => 2 * Math.exp(-step / 100) + 0.1 + (step % 7) * 0.01;
const stepChart = 'figure.chart:has(figcaption:text-is("Training loss per step"))';
const lossPath = `${stepChart} path.series[data-series="train loss"]`;

/** A panel that has trained STEPS steps (10 per epoch) and two epochs. */
async function trainedPanel(): Promise<PanelPage> {
  const p = await harness.open();
  await p.page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);
  await p.send({ type: 'state', state: panelState() });
  await p.send({ type: 'runStarted', job: 'train' });
  // as VS Code delivers them: one message each
  await p.page.evaluate(
    (events) => {
      for (const event of events) window.postMessage({ type: 'trainEvent', event }, '*');
    },
    [
      ...Array.from({ length: STEPS }, (_, i) => stepEvent(i + 1, lossAt(i + 1), { totalSteps: STEPS, epochs: STEPS / 10 })),
      epochEvent(1, 1.7, 1.8, 0.41),
      epochEvent(2, 1.2, 1.4, 0.55),
    ],
  );
  await p.page.locator(`${lossPath}[data-points="${STEPS}"]`).waitFor();
  return p;
}

/** The path's vertices in viewBox units. */
async function vertices(p: PanelPage, path: string): Promise<Array<[number, number]>> {
  const d = (await p.page.getAttribute(path, 'd')) ?? '';
  return [...d.matchAll(/[ML]([\d.-]+) ([\d.-]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** Where a viewBox x of a chart's SVG is on the page. */
async function pagePoint(p: PanelPage, chart: string, vx: number, vy = 110): Promise<{ x: number; y: number }> {
  const box = await p.page.locator(`${chart} svg`).boundingBox();
  assert.ok(box);
  const scale = Math.min(box.width / 640, box.height / 220);
  return { x: box.x + (box.width - 640 * scale) / 2 + vx * scale, y: box.y + (box.height - 220 * scale) / 2 + vy * scale };
}

async function readout(p: PanelPage, chart: string): Promise<string> {
  return ((await p.page.textContent(`${chart} .chart-readout`)) ?? '').replace(/\s+/g, ' ').trim();
}

async function assertClean(p: PanelPage): Promise<void> {
  assert.deepEqual(await p.violations(), [], 'CSP violations');
  assert.deepEqual(p.errors, [], 'page errors');
}

test('hovering the loss curve reads the step, its epoch and the loss there; leaving shows the hint', async () => {
  const p = await trainedPanel();
  const vs = await vertices(p, lossPath);
  // 300 steps in ~570 columns: every step is a vertex, in order
  assert.equal(vs.length, STEPS);
  const target = vs[149]!; // step 150
  const at = await pagePoint(p, stepChart, target[0], target[1]);
  await p.page.mouse.move(at.x, at.y);
  const text = await readout(p, stepChart);
  assert.equal(text, `step 150 · epoch 15 train loss ${Number(lossAt(150).toPrecision(4))}`);
  // the cursor: a line and a ring on the value
  assert.equal(await p.page.locator(`${stepChart} .cursor line`).count(), 1);
  const ring = Number(await p.page.getAttribute(`${stepChart} .cursor circle`, 'cy'));
  assert.ok(Math.abs(ring - target[1]) < 0.1, `ring at ${ring}, point at ${target[1]}`);
  await p.page.screenshot({ path: join(resultsDir, 'webview-chart-readout.png'), clip: (await p.page.locator(stepChart).boundingBox()) ?? undefined });

  // the epoch charts read both series at an epoch
  const epochChart = 'figure.chart:has(figcaption:text-is("Loss per epoch"))';
  const epochAt = await pagePoint(p, epochChart, 626);
  await p.page.mouse.move(epochAt.x, epochAt.y);
  assert.equal(await readout(p, epochChart), 'epoch 2 train loss 1.2 validation loss 1.4');

  await p.page.mouse.move(1, 1);
  assert.match(await readout(p, stepChart), /^Hover for values/);
  await assertClean(p);
  await p.close();
});

test('dragging across a chart zooms into that range of steps; Shift+drag pans; double-click resets', async () => {
  const p = await trainedPanel();
  const vs = await vertices(p, lossPath);
  const from = await pagePoint(p, stepChart, vs[99]![0]);
  const to = await pagePoint(p, stepChart, vs[199]![0]);
  await p.page.mouse.move(from.x, from.y);
  await p.page.mouse.down();
  await p.page.mouse.move((from.x + to.x) / 2, from.y, { steps: 3 });
  assert.equal(await p.page.getAttribute(`${stepChart} .zoom-selection`, 'visibility'), 'visible');
  await p.page.mouse.move(to.x, to.y, { steps: 3 });
  await p.page.mouse.up();
  // steps 100 … 200 and one beyond each edge
  const zoomed = Number(await p.page.getAttribute(lossPath, 'data-points'));
  assert.ok(zoomed >= 99 && zoomed <= 104, `${zoomed} points drawn after the zoom`);
  assert.equal(await p.page.isVisible(`${stepChart} [data-tool="reset"]`), true);
  const ticks = async (): Promise<number[]> =>
    p.page.$$eval(`${stepChart} .axes text[text-anchor="middle"]:not(.label)`, (ts) => ts.map((t) => Number(t.textContent)));
  const zoomTicks = await ticks();
  assert.ok(zoomTicks.every((t) => t >= 99 && t <= 201), `ticks ${zoomTicks.join(' ')}`);

  // new steps arrive: the zoom stays
  await p.send({ type: 'trainEvent', event: stepEvent(STEPS + 1, 0.1, { totalSteps: STEPS + 1 }) });
  await p.page.locator('p.hint', { hasText: `Step ${STEPS + 1}/${STEPS + 1}` }).waitFor();
  assert.deepEqual(await ticks(), zoomTicks);

  // Shift+drag to the left: later steps come into view
  const mid = await pagePoint(p, stepChart, 340);
  await p.page.keyboard.down('Shift');
  await p.page.mouse.move(mid.x, mid.y);
  await p.page.mouse.down();
  await p.page.mouse.move(mid.x - 100, mid.y, { steps: 4 });
  await p.page.mouse.up();
  await p.page.keyboard.up('Shift');
  const panned = await ticks();
  assert.ok(panned[0]! > zoomTicks[0]!, `panned ticks ${panned.join(' ')} after ${zoomTicks.join(' ')}`);

  await p.page.mouse.dblclick(mid.x, mid.y);
  assert.equal(await p.page.getAttribute(lossPath, 'data-points'), String(STEPS + 1));
  assert.equal(await p.page.isVisible(`${stepChart} [data-tool="reset"]`), false);
  await assertClean(p);
  await p.close();
});

test('while a run trains, the step axis ends at its planned steps: the curve so far fills that share of the plot, and the axis stays put', async () => {
  const p = await harness.open();
  await p.page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);
  await p.send({ type: 'state', state: panelState() });
  await p.send({ type: 'runStarted', job: 'train' });
  const planned = 20_100;
  const send = (from: number, to: number) =>
    p.page.evaluate(
      ([events]) => {
        for (const event of events) window.postMessage({ type: 'trainEvent', event }, '*');
      },
      [Array.from({ length: to - from + 1 }, (_, i) => stepEvent(from + i, lossAt(from + i), { totalSteps: planned, epochs: 201 }))] as const,
    );
  await send(1, 5000);
  await p.page.locator(`${lossPath}[data-points]`).waitFor();
  await p.page.locator('p.hint', { hasText: `Step 5000/${planned}` }).waitFor();
  const plot = [58, 640 - 14];
  const lastX = async (): Promise<number> => (await vertices(p, lossPath)).at(-1)![0];
  const at5000 = await lastX();
  assert.ok(Math.abs(at5000 - (plot[0]! + (5000 / planned) * (plot[1]! - plot[0]!))) < 1, `step 5000 drawn at x ${at5000}`);
  const ticks = async (): Promise<number[]> =>
    p.page.$$eval(`${stepChart} .axes text[text-anchor="middle"]:not(.label)`, (ts) => ts.map((t) => Number((t.textContent ?? '').replace(/[^\d.]/g, ''))));
  const before = await ticks();
  assert.ok(before.length >= 3 && before.every((t) => t <= planned), `ticks ${before.join(' ')}`);
  // the last planned step lands on the plot's right edge, not short of a round 22,000
  await send(5001, planned);
  await p.page.locator('p.hint', { hasText: `Step ${planned}/${planned}` }).waitFor();
  assert.ok(Math.abs((await lastX()) - plot[1]!) < 1, `the last step is drawn at x ${await lastX()}`);
  assert.deepEqual(await ticks(), before, 'the axis did not move while steps arrived');
  await assertClean(p);
  await p.close();
});

test('the loss charts switch between linear and log y; the LR chart stays log', async () => {
  const p = await trainedPanel();
  const label = async (): Promise<string> => (await p.page.textContent(`${stepChart} .axes text.label[transform]`)) ?? '';
  assert.equal(await label(), 'loss');
  const linear = await vertices(p, lossPath);
  const toggle = p.page.locator(`${stepChart} [data-tool="log"]`);
  assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
  await toggle.click();
  assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
  assert.equal(await label(), 'loss (log)');
  const log = await vertices(p, lossPath);
  // same x, different heights: on a log axis the high early losses are squeezed together
  assert.deepEqual(
    log.map((v) => v[0]),
    linear.map((v) => v[0]),
  );
  const spread = (vs: Array<[number, number]>, a: number, b: number): number => Math.abs(vs[a]![1] - vs[b]![1]);
  assert.ok(spread(log, 0, 50) / spread(log, 0, 299) < spread(linear, 0, 50) / spread(linear, 0, 299));
  const decades = await p.page.$$eval(`${stepChart} .axes text[text-anchor="end"]`, (ts) => ts.map((t) => t.textContent));
  assert.ok(decades.includes('1'), `log ticks ${decades.join(' ')}`);
  assert.equal(await p.page.isVisible('figure.chart:has(figcaption:text-matches("Learning rate per group")) [data-tool="log"]'), false);
  await assertClean(p);
  await p.close();
});

test('the keyboard reads a focused chart step by step, and the focus survives live updates', async () => {
  const p = await trainedPanel();
  const svg = p.page.locator(`${stepChart} svg`);
  await svg.focus();
  assert.equal(await readout(p, stepChart), `step 1 · epoch 1 train loss ${Number(lossAt(1).toPrecision(4))}`);
  await p.page.keyboard.press('ArrowRight');
  await p.page.keyboard.press('ArrowRight');
  assert.match(await readout(p, stepChart), /^step 3 · epoch 1 /);
  await p.page.keyboard.press('End');
  assert.match(await readout(p, stepChart), new RegExp(`^step ${STEPS} · epoch 30 `));
  // a step arrives, the Training tab is drawn again: the chart keeps the focus and the readout
  await p.send({ type: 'trainEvent', event: stepEvent(STEPS + 1, 0.05, { totalSteps: STEPS + 1, epoch: 31 }) });
  await p.page.locator(`${lossPath}[data-points="${STEPS + 1}"]`).waitFor();
  assert.equal(await svg.evaluate((e) => document.activeElement === e), true);
  await p.page.keyboard.press('ArrowRight');
  assert.equal(await readout(p, stepChart), `step ${STEPS + 1} · epoch 31 train loss 0.05`);
  // + zooms in around the readout, Escape shows everything again
  await p.page.keyboard.press('+');
  assert.ok(Number(await p.page.getAttribute(lossPath, 'data-points')) < STEPS);
  await p.page.keyboard.press('Escape');
  assert.equal(await p.page.getAttribute(lossPath, 'data-points'), String(STEPS + 1));
  await assertClean(p);
  await p.close();
});

test('CSV, SVG and PNG exports are posted to the host with every series (every bar) and the chart as drawn', async () => {
  const p = await trainedPanel();
  const saved = async (n: number): Promise<Array<{ type: string; file: { fileName: string; format: string; content: string } }>> => {
    await p.page.waitForFunction((count) => (window as unknown as { __posted: Array<{ type: string }> }).__posted.filter((m) => m.type === 'saveChart').length >= count, n);
    return ((await p.posted()) as Array<{ type: string; file: { fileName: string; format: string; content: string } }>).filter((m) => m.type === 'saveChart');
  };
  await p.page.locator(`${stepChart} [data-tool="csv"]`).click();
  const [csv] = await saved(1);
  assert.equal(csv?.file.fileName, 'training-loss-per-step.csv');
  const lines = csv!.file.content.trimEnd().split('\n');
  assert.equal(lines[0], 'step,epoch,train loss');
  assert.equal(lines.length, STEPS + 1);
  assert.equal(lines[150], `150,15,${lossAt(150)}`);

  const lrChart = 'figure.chart:has(figcaption:text-matches("Learning rate per group"))';
  await p.page.locator(`${lrChart} [data-tool="csv"]`).click();
  const lr = (await saved(2))[1]!;
  assert.equal(lr.file.content.split('\n')[0], 'step,epoch,default,base,extra,head');

  await p.page.locator(`${stepChart} [data-tool="svg"]`).click();
  const svg = (await saved(3))[2]!;
  assert.equal(svg.file.fileName, 'training-loss-per-step.svg');
  assert.match(svg.file.content, /^<\?xml/);
  assert.match(svg.file.content, /<text[^>]*>Training loss per step<\/text>/);
  // the theme's colours are written on the elements: the file needs no stylesheet
  assert.match(svg.file.content, /<path[^>]*class="series c0"[^>]*style="[^"]*stroke: rgb\(/);
  assert.doesNotMatch(svg.file.content, /class="cursor"/);

  await p.page.locator(`${stepChart} [data-tool="png"]`).click();
  const png = (await saved(4))[3]!;
  assert.equal(png.file.format, 'png');
  const bytes = Buffer.from(png.file.content, 'base64');
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  // twice the chart's size: 1280 wide
  assert.equal(bytes.readUInt32BE(16), 1280);

  // the bar charts export too: every layer of the LR-by-depth chart, with its group and multiplier
  await p.page.locator('[role="tab"]', { hasText: 'Learning rates' }).click();
  const depthChart = 'figure.chart:has(figcaption:text-is("Effective learning rate by depth"))';
  await p.page.locator(`${depthChart} [data-tool="csv"]`).click();
  const depth = (await saved(5))[4]!;
  assert.equal(depth.file.fileName, 'effective-learning-rate-by-depth.csv');
  const rows = depth.file.content.trimEnd().split('\n');
  assert.equal(rows[0], 'layer,effective LR,group,lrMult,frozen');
  const bars = await p.page.$$eval(`${depthChart} path.bars`, (ps) => ps.reduce((n, path) => n + (path.getAttribute('d')?.match(/M/g)?.length ?? 0), 0));
  assert.equal(rows.length - 1, bars, 'one row per bar drawn');
  await p.page.locator(`${depthChart} [data-tool="svg"]`).click();
  const depthSvg = (await saved(6))[5]!;
  assert.match(depthSvg.file.content, /<text[^>]*>Effective learning rate by depth<\/text>/);
  assert.match(depthSvg.file.content, /<path[^>]*class="bars [^"]*"[^>]*style="[^"]*fill: rgb\(/);
  await assertClean(p);
  await p.close();
});
