/**
 * How long the plan-editor panel takes to show a 1,000-layer model (goal: ≤ 100 ms).
 * Loads the real webview bundle in headless Chromium and times, inside the page, from posting
 * the `state` message to the tree's rows being in the DOM and laid out; and to the next frame.
 *
 *   node --import tsx bench/webview-render.ts [layers] [runs] [--detail]
 */
import { startHarness, type PanelPage } from '../test/webview/harness.ts';
import { bigModel, bigPlan, panelState } from '../test/webview/fixtures.ts';
import type { PanelState } from '../src/protocol/webview.ts';

interface Timing {
  /** Message delivered, panel rendered (tree + charts), style and layout done. */
  laidOut: number;
  /** …and the following animation frame began (what the user sees next). */
  frame: number;
  /** The panel's own measure: `state` handler start to tree rows built. */
  tree: number;
  /** Posted to the panel's `state` handler starting (structured clone, task queue). */
  delivered: number;
  /**
   * Posted to the end of every listener and microtask before this bench's listener: the
   * panel's handler plus the web components' updates it set off (they may force a layout).
   */
  handled: number;
  rows: number;
}

async function timeState(p: PanelPage, state: PanelState): Promise<Timing> {
  return p.page.evaluate(
    (s) =>
      new Promise<Timing>((resolve) => {
        const t0 = performance.now();
        window.addEventListener(
          'message',
          () => {
            const handled = performance.now() - t0;
            void document.body.offsetHeight;
            const laidOut = performance.now() - t0;
            const rows = document.querySelectorAll('table.tree tbody tr').length;
            const panel = (window as unknown as { layerwisePanel?: { lastRenderMs: number; lastRenderStart?: number } }).layerwisePanel;
            const delivered = (panel?.lastRenderStart ?? NaN) - t0;
            requestAnimationFrame(() => resolve({ laidOut, frame: performance.now() - t0, tree: panel?.lastRenderMs ?? NaN, delivered, handled, rows }));
          },
          { once: true },
        );
        window.postMessage({ type: 'state', state: s }, '*');
      }),
    state,
  );
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const layers = Number(args[0] ?? 1000);
  const runs = Number(args[1] ?? 5);
  // --detail: where the time goes inside the page (from the same runs and the same measure)
  const detail = process.argv.includes('--detail');
  const state = panelState({ plan: bigPlan(), model: bigModel(layers), planFile: '/bench/big.layerwise.json', planUri: 'file:///bench/big.layerwise.json', stepsPerEpoch: 50 });
  const allGroups = (state.plan?.groups ?? []).map((g) => g.name);
  const harness = await startHarness();
  try {
    const cases: Array<{ label: string; expanded: string[]; again: boolean }> = [
      { label: 'groups collapsed (default)', expanded: [], again: false },
      { label: 'every group expanded', expanded: allGroups, again: false },
      { label: 'every group expanded, next state after an edit', expanded: allGroups, again: true },
    ];
    console.log(`webview render, ${layers} layers in ${allGroups.length} groups, median of ${runs} fresh pages`);
    for (const c of cases) {
      const results: Timing[] = [];
      for (let i = 0; i < runs; i++) {
        const p = await harness.open({ persisted: { planUri: state.planUri, expandedGroups: c.expanded, tab: 'rates' } });
        await p.page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);
        let t = await timeState(p, state);
        if (c.again) t = await timeState(p, { ...state, plan: { ...bigPlan(), training: { lr: 3e-5, epochs: 14 } } });
        const violations = await p.violations();
        if (p.errors.length > 0 || violations.length > 0) throw new Error(`page errors: ${[...p.errors, ...violations].join('; ')}`);
        results.push(t);
        await p.close();
      }
      const rows = results[0]?.rows ?? 0;
      const laid = median(results.map((r) => r.laidOut));
      const med = (f: (t: Timing) => number): string => median(results.map(f)).toFixed(1);
      console.log(
        `  ${c.label.padEnd(48)} ${String(rows).padStart(5)} rows  tree built ${med((r) => r.tree)} ms · rendered + laid out ${laid.toFixed(1)} ms · next frame ${med((r) => r.frame)} ms  ${laid <= 100 ? 'ok (≤ 100 ms)' : 'OVER 100 ms'}`,
      );
      if (detail) {
        console.log(
          `  ${''.padEnd(54)} delivered ${med((r) => r.delivered)} · handler done ${med((r) => r.delivered + r.tree)} · + components' updates ${med((r) => r.handled)} · + style and layout ${laid.toFixed(1)} · next frame +${med((r) => r.frame - r.laidOut)}; laid out per run ${results.map((r) => r.laidOut.toFixed(0)).join(' ')}`,
        );
      }
    }
  } finally {
    await harness.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
