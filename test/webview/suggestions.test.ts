/**
 * "Suggest Multipliers" and the run's advice in the plan editor (headless Chromium, the real
 * bundle under the host's CSP): current → suggested per group with Apply / Discard posted to the
 * host (which writes the plan), and advice — live from the diagnostics while a run goes, then
 * from the report — with a one-click Apply that posts the usual group edit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TuneResult } from '../../src/core/tune.ts';
import type { PanelState } from '../../src/protocol/webview.ts';
import { epochEvent, panelState, stepEvent } from './fixtures.ts';
import { resultsDir, useHarness, waitForPosts, type PanelPage } from './harness.ts';

const harness = useHarness();


async function openWithState(state: PanelState = panelState()): Promise<PanelPage> {
  const p = await harness.open({});
  await waitForPosts(p, 1);
  await p.send({ type: 'state', state });
  await p.page.waitForSelector('table.tree tbody tr[data-key]');
  return p;
}

async function assertClean(p: PanelPage): Promise<void> {
  assert.deepEqual(await p.violations(), [], 'CSP violations');
  assert.deepEqual(p.errors, [], 'page errors');
}

const RESULT: TuneResult = {
  method: 'rgn',
  steps: 5,
  seconds: 0.4,
  date: '2026-12-05T04:00:00Z',
  groups: [
    { name: 'base', current: 0.1, lrMult: 0.42, why: '‖g‖/‖θ‖ 1.20e+0 (mean of 5 batches) = 0.42 × head' },
    { name: 'extra', current: 0.5, lrMult: 0.5, why: '‖g‖/‖θ‖ 1.43e+0 (mean of 5 batches) = 0.5 × head' },
    { name: 'head', current: 1, lrMult: 1, why: '‖g‖/‖θ‖ 2.86e+0 (mean of 5 batches), the largest' },
  ],
};

const rowText = (p: PanelPage, group: string, col: string): Promise<string | null> => p.page.textContent(`table.suggestion-table tr[data-group="${group}"] td.${col}`);

test('a suggestion shows current → suggested per group; Apply and Discard go to the host', async () => {
  const p = await openWithState();
  assert.equal(await p.page.isHidden('section.suggestion'), true);
  await p.page.locator('vscode-button', { hasText: 'Suggest multipliers' }).click();
  let got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'command', command: 'suggestMultipliers' });

  await p.send({ type: 'suggestion', suggestion: { state: 'running', method: 'rgn' } });
  await p.page.waitForSelector('section.suggestion p.hint');
  assert.match((await p.page.textContent('section.suggestion')) ?? '', /Measuring multipliers \(relative gradient norm\)… nothing changes until you apply/);

  await p.send({ type: 'suggestion', suggestion: { state: 'ready', result: RESULT } });
  await p.page.waitForSelector('table.suggestion-table');
  assert.match((await p.page.textContent('section.suggestion h2')) ?? '', /relative gradient norm over 5 batches/);
  assert.equal(await rowText(p, 'base', 'mult'), '×0.1 → ×0.42');
  assert.equal(await rowText(p, 'head', 'mult'), '×1 → ×1');
  assert.match((await rowText(p, 'base', 'why')) ?? '', /0\.42 × head/);
  assert.equal(await p.page.getAttribute('table.suggestion-table tr[data-group="base"]', 'class'), 'changed');
  await p.page.screenshot({ path: join(resultsDir, 'webview-suggestion.png'), fullPage: true });

  await p.page.locator('section.suggestion vscode-button', { hasText: 'Apply' }).click();
  got = await waitForPosts(p, 3);
  assert.deepEqual(got[2], { type: 'command', command: 'applySuggestion' });
  await p.page.locator('section.suggestion vscode-button', { hasText: 'Discard' }).click();
  got = await waitForPosts(p, 4);
  assert.deepEqual(got[3], { type: 'command', command: 'discardSuggestion' });

  // the host clears it after Apply or Discard
  await p.send({ type: 'suggestion', suggestion: { state: 'none' } });
  await p.page.waitForSelector('section.suggestion', { state: 'hidden' });
  await assertClean(p);
  await p.close();
});

test('a suggestion kept by the host comes back with the state after a reload; a malformed one is ignored', async () => {
  const p = await openWithState(panelState({ suggestion: { state: 'ready', result: RESULT } }));
  await p.page.waitForSelector('table.suggestion-table');
  await p.send({ type: 'suggestion', suggestion: { state: 'ready', result: { method: 'magic', groups: [], steps: 1 } } });
  await p.send({ type: 'suggestion', suggestion: { state: 'ready', result: { ...RESULT, groups: [{ name: 'base' }] } } });
  assert.equal(await rowText(p, 'base', 'mult'), '×0.1 → ×0.42');
  await assertClean(p);
  await p.close();
});

test('advice appears live from the diagnostics, and its Apply posts the group edit', async () => {
  const p = await openWithState();
  await p.send({ type: 'runStarted', job: 'train' });
  // "extra" is held far below the band for 25 diagnostic samples; "head" is healthy
  for (let s = 1; s <= 25; s++) {
    await p.send({ type: 'trainEvent', event: stepEvent(s, 1 / s) });
    await p.send({
      type: 'trainEvent',
      event: {
        kind: 'diagnostics',
        step: s,
        layers: [
          { layer: 'dense_1', group: 'extra', gradNorm: 0.1, updateRatio: 2e-6 },
          { layer: 'head_dense', group: 'head', gradNorm: 1, updateRatio: 1e-3 },
        ],
      },
    });
  }
  await p.page.waitForSelector('ul.advice li[data-group="extra"]');
  const text = (await p.page.textContent('ul.advice')) ?? '';
  assert.match(text, /group "extra": update ratio ‖Δθ‖\/‖θ‖ 2\.0e-6 .* far below/);
  assert.doesNotMatch(text, /"head"/);
  // the run used ×0.5 for "extra" (its group multiplier): 0.5 × 1e-3 / 2e-6 = 250
  const apply = p.page.locator('ul.advice vscode-button', { hasText: 'Set extra to ×250' });
  // steps keep streaming while the user reaches for the button: the advice (unchanged) is not rebuilt
  await apply.focus();
  const marked = await apply.evaluate((b) => ((b as HTMLElement).dataset['seen'] = 'yes'));
  assert.equal(marked, 'yes');
  for (let s = 26; s <= 40; s++) await p.send({ type: 'trainEvent', event: stepEvent(s, 1 / s) });
  await p.page.locator('p.hint', { hasText: 'Step 40/' }).waitFor();
  assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['seen']), 'yes', 'the focused Apply button survived the redraws');
  await apply.click();
  const got = await waitForPosts(p, 2);
  assert.deepEqual(got[1], { type: 'edit', edit: { kind: 'setGroup', groupIndex: 1, key: 'lrMult', value: 250 } });

  // overfitting comes from the epochs
  for (const [e, t, v] of [[1, 2, 1.5], [2, 1.5, 1.6], [3, 1.0, 1.7]] as const) await p.send({ type: 'trainEvent', event: epochEvent(e, t, v, 0.5) });
  await p.page.waitForFunction(() => /overfitting/.test(document.querySelector('ul.advice')?.textContent ?? ''));
  assert.match((await p.page.textContent('ul.advice')) ?? '', /best validation loss was at epoch 1/);
  await p.page.screenshot({ path: join(resultsDir, 'webview-advice.png'), fullPage: true });
  await assertClean(p);
  await p.close();
});
