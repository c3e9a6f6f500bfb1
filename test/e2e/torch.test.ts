/**
 * End to end in a real VS Code (code-server): Train on a PyTorch plan (examples/bert-tiny-torch,
 * 2 gloo ranks under torch.distributed.run with Debian's python3-torch) shows progress in the
 * status bar and writes the results back into the plan, comments intact.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { comments, openSession, shots, until, type Session } from './harness.ts';

let s: Session;

before(async () => {
  // the machine's python3 on PATH may lack torch: the plan names Debian's interpreter
  s = await openSession('torch', {
    trusted: true,
    example: 'bert-tiny-torch',
    editPlan: (text) => text.replace('"backend": "gloo" }', '"backend": "gloo", "python": "/usr/bin/python3" }'),
  });
});

after(async () => {
  await s?.close();
});

test('Layerwise: Train on a PyTorch plan shows progress in the status bar and writes results into the plan', { timeout: 420_000 }, async () => {
  const before = s.plan();
  assert.match(before, /"python": "\/usr\/bin\/python3"/);
  assert.ok(!before.includes('"results"'));
  // the plan is discovered and described (its groups in the Layers view) before Train is asked for
  await s.page.locator('.activitybar a[aria-label^="Layerwise"]').click();
  await s.page.locator('.monaco-list-row[aria-label^="head"]').first().waitFor({ timeout: 120_000 });
  await s.palette('Layerwise: Train');
  const running = await until('status-bar progress', async () => {
    const t = await s.statusText();
    return /stage \d+\/\d+ · epoch \d+\/\d+ · \d+%/.test(t) ? t : undefined;
  }, 180_000).catch(async (e: unknown) => {
    await s.page.screenshot({ path: join(shots, 'e2e-torch-failure.png') });
    throw new Error(`${String(e)}; status bar: ${await s.statusText()}; notifications: ${(await s.notifications()).join(' | ')}`);
  });
  assert.match(running, /Layerwise/);
  await s.page.screenshot({ path: join(shots, 'e2e-torch-statusbar.png') });
  const after = await until('results.lastRun in the plan on disk', () => (/"lastRun"/.test(s.plan()) ? s.plan() : undefined), 300_000);
  const final = await until('the outcome in the status bar', async () => {
    const t = await s.statusText();
    return /trained|failed|stopped/.test(t) ? t : undefined;
  });
  assert.match(final, /trained/);
  for (const c of comments(before)) assert.ok(after.includes(c), `comment kept: ${c}`);
  assert.match(after, /"stopped":\s*"completed"/);
  assert.match(after, /"backend":\s*"torch\.distributed gloo ×2"/);
  await s.panelFrame();
  await s.page.screenshot({ path: join(shots, 'e2e-torch-panel.png') });
});
