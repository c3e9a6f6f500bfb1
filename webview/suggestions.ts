/**
 * The panel's two kinds of advice: "Suggest Multipliers" (current → suggested per group, with
 * Apply / Discard — the host writes the plan) and the run's advice from its live figures (with a
 * one-click Apply of the multiplier that brings a group into the band, through the usual edit).
 * DOM only; the numbers come from core/tune.ts and core/advice.ts.
 */
import type { Advice } from '../src/core/advice.ts';
import { assertNever } from '../src/core/errors.ts';
import { describeChanges } from '../src/core/tune.ts';
import type { SuggestionState } from '../src/protocol/webview.ts';
import { button, el } from './dom.ts';

const mult = (m: number): string => `×${Number(m.toPrecision(3))}`;

/** The suggestion box: hidden when there is none, a note while measuring, rows and buttons when ready. */
export function renderSuggestion(box: HTMLElement, s: SuggestionState, actions: { apply(): void; discard(): void }): void {
  box.replaceChildren();
  switch (s.state) {
    case 'none':
      box.hidden = true;
      return;
    case 'running':
      box.hidden = false;
      box.append(el('p', 'hint', `Measuring multipliers (${s.method === 'rgn' ? 'relative gradient norm' : 'budgeted search'})… nothing changes until you apply.`));
      return;
    case 'ready': {
      box.hidden = false;
      const r = s.result;
      const title = r.method === 'rgn' ? `relative gradient norm over ${r.steps} batch${r.steps === 1 ? '' : 'es'}` : `search, ${r.steps} optimizer steps of ${r.budget ?? '?'}`;
      box.append(el('h2', '', `Suggested multipliers — ${title}`));
      const table = el('table', 'suggestion-table');
      const head = el('tr');
      for (const h of ['group', 'current → suggested', 'why']) head.append(el('th', '', h));
      table.append(head);
      for (const g of r.groups) {
        const row = el('tr', g.frozen ? 'frozen' : g.lrMult === g.current ? 'same' : 'changed');
        row.dataset['group'] = g.name;
        row.append(el('td', 'group', g.name), el('td', 'mult', g.frozen ? 'frozen' : `${mult(g.current)} → ${mult(g.lrMult)}`), el('td', 'why', g.why));
        table.append(row);
      }
      box.append(table);
      const changes = describeChanges(r);
      if (changes !== '') box.append(el('p', 'hint', changes));
      const bar = el('div', 'actions');
      bar.append(button('Apply', actions.apply), button('Discard', actions.discard, true));
      box.append(bar);
      return;
    }
    default:
      assertNever(s, 'suggestion');
  }
}

/** The run's advice; an update-ratio warning on a plan group gets an Apply button for its multiplier. */
export function adviceList(advice: readonly Advice[], planIndexOf: (group: string) => number | undefined, apply: (planIndex: number, lrMult: number) => void): HTMLElement | undefined {
  if (advice.length === 0) return undefined;
  const ul = el('ul', 'advice');
  ul.setAttribute('aria-label', 'Advice');
  for (const a of advice) {
    const li = el('li', 'warn', a.message);
    switch (a.kind) {
      case 'updateRatio': {
        li.dataset['group'] = a.group;
        const i = planIndexOf(a.group);
        if (i !== undefined) li.append(' ', button(`Set ${a.group} to ${mult(a.suggested)}`, () => apply(i, a.suggested), true));
        break;
      }
      case 'overfitting':
        break;
      default:
        assertNever(a, 'advice');
    }
    ul.append(li);
  }
  return ul;
}
