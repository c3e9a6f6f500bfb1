/**
 * The layer tree: an ARIA treegrid of groups (bottom → top) and their layers, with a multiplier
 * field (÷2 / ×2 steppers, ↑/↓ in the field), a weight-decay field and a "Trains" checkbox per row (checked = trains,
 * unchecked = frozen, with a lock — the same sense as the Layers view's checkboxes),
 * and per layer a select that moves it to another group. Built from plain DOM
 * elements rather than one web component per cell: a thousand rows of shadow roots cost several
 * times the 100 ms budget, and plain rows cloned from a template stay far under it.
 *
 * The tree never changes the plan itself: every control posts an edit and the host answers with
 * a new state, which re-renders the tree (focus and any half-typed value survive that).
 */
import type { PlanEditRequest } from '../src/protocol/webview.ts';
import {
  decayBlockedReason,
  filterTree,
  formatNumber,
  formatParams,
  trainsEdit,
  moveBlockedReason,
  moveEdit,
  multiplierEdit,
  nonNegative,
  notEditableReason,
  ownWeightDecayField,
  parseNumber,
  setHere,
  stepMultiplier,
  weightDecayEdit,
  weightDecayTitle,
  type GroupRow,
  type LayerRow,
  type TreeModel,
  type TreeRow,
} from './view-model.ts';

export interface LayerTreeEvents {
  edit(edit: PlanEditRequest): void;
  expandedChanged(expanded: ReadonlySet<string>): void;
  /** The user dragged a column edge (widths in px by column name). */
  columnsChanged(widths: Readonly<Record<string, number>>): void;
}

type Control = 'row' | 'mult' | 'dec' | 'inc' | 'decay' | 'trains' | 'move';
/** The controls that hold a number the user types. */
type NumberControl = 'mult' | 'decay';

interface FocusKeep {
  /** The focused element, which stays focused when its row is kept. */
  element: HTMLElement;
  key: string;
  control: Control;
  /** A half-typed number, or a group picked but not yet applied, survives the redraw. */
  value?: string;
  start?: number | null;
  end?: number | null;
}

/**
 * One entry per cell of a row, in order; `col` names the cell (`td[data-col]`) for styles and
 * tests. `width` is the column's starting width in px (none: it takes what is left), `min` the
 * narrowest a drag can make it; the defaults fit a 1,000 px panel, and every cell whose text can
 * be cut off carries the full text in its title.
 */
export const COLUMNS: ReadonlyArray<{ label: string; col: string; title?: string; width?: number; min: number }> = [
  { label: 'Group / layer', col: 'name', width: 224, min: 120 },
  {
    label: 'Layer’s group',
    col: 'group',
    title: 'The group a layer belongs to. Pick another to move the layer there: the plan’s patterns are rewritten so that only that group matches it.',
    width: 128,
    min: 70,
  },
  { label: 'Params', col: 'params', width: 64, min: 40 },
  { label: 'LR multiplier', col: 'mult', title: 'Multiplier of the base learning rate. Empty a layer’s field to let it follow its group.', width: 150, min: 150 },
  { label: 'Effective LR', col: 'lr', title: 'training.lr × multiplier, before the schedule', width: 84, min: 50 },
  {
    label: 'Weight decay',
    col: 'wd',
    title: 'Weight decay of the row’s optimized weights. Empty a field to remove the row’s own setting. A group’s value spares biases and normalisation weights (training.noDecay); a layer’s own value applies to all its weights.',
    width: 96,
    min: 60,
  },
  { label: 'Trains', col: 'trains', title: 'Checked: the row trains. Unchecked (🔒): frozen — no gradient, weights unchanged. The Layers view’s checkboxes mean the same.', width: 60, min: 48 },
  { label: 'Decided by', col: 'rule', title: 'The plan field (or default) that decided each setting; hover a cell for all of it.', min: 120 },
  { label: '', col: 'warn', title: 'Warnings', width: 32, min: 28 },
];

/** Fixed row height (px, media/webview.css) that lets the tree draw only the rows in view. */
export const ROW_HEIGHT = 26;
/**
 * Rows drawn above and below the visible ones, so short scrolls need no redraw; a redraw keeps
 * the rows still in the window, so it costs only the rows scrolled in.
 */
const OVERSCAN = 10;
/** The scroller's tallest, as a share of the window's height (`.tree-scroll` max-height in media/webview.css). */
const VIEW_SHARE = 0.55;

interface FlatRow {
  row: TreeRow;
  level: 1 | 2;
  pos: number;
  size: number;
  open: boolean | undefined;
}

export class LayerTree {
  /** The scrolling box holding the table; put this in the page. */
  readonly element: HTMLDivElement;
  private readonly table: HTMLTableElement;
  private readonly body: HTMLTableSectionElement;
  private readonly template: HTMLTableRowElement;
  /** The move select's choices, one option per plan group (and the implicit one), rebuilt with each model. */
  private moveChoices = moveChoices({ planGroups: [] });
  /** Move selects given all their choices; the others hold only their current one. */
  private filledMoves = new WeakSet<HTMLSelectElement>();
  private readonly topSpacer: HTMLTableRowElement;
  private readonly bottomSpacer: HTMLTableRowElement;
  /** Every row the expanded groups show, in order; only a window of it is in the DOM. */
  private flat: FlatRow[] = [];
  private index = new Map<string, number>();
  private rendered = new Map<string, HTMLTableRowElement>();
  /** The tree row each drawn row element shows: a row is kept only while that is unchanged. */
  private drawnFrom = new WeakMap<HTMLTableRowElement, TreeRow>();
  /**
   * Rows whose controls the user has reached: they may show a value the host has not answered
   * yet, so a redraw draws them afresh from the plan (as it draws every row after a new state).
   */
  private touched = new WeakSet<HTMLTableRowElement>();
  private window: [number, number] = [0, 0];
  private activeKey: string | undefined;
  private model: TreeModel | undefined;
  private expanded = new Set<string>();
  /** The filter box's text: while it holds words, the tree shows only what matches, every group open. */
  private filter = '';
  /** How many layers the filter matched at the last rebuild. */
  private filterMatches = 0;
  private readonly cols = new Map<string, HTMLTableColElement>();
  private widths: Record<string, number> = {};
  private scrollQueued = false;
  private redrawing = false;
  /** The scroller's scrollTop as of the last scroll event (reading it would force a layout). */
  private scrollTop = 0;

  constructor(private readonly events: LayerTreeEvents) {
    this.element = document.createElement('div');
    this.element.className = 'tree-scroll';
    this.table = document.createElement('table');
    this.table.className = 'tree';
    this.table.setAttribute('role', 'treegrid');
    this.table.setAttribute('aria-label', 'Parameter groups and layers, bottom to top');
    const colgroup = document.createElement('colgroup');
    const head = this.table.createTHead();
    const hr = head.insertRow();
    hr.setAttribute('role', 'row');
    hr.setAttribute('aria-rowindex', '1');
    for (const c of COLUMNS) {
      const col = document.createElement('col');
      col.className = `col-${c.col}`;
      colgroup.append(col);
      this.cols.set(c.col, col);
      const th = document.createElement('th');
      th.setAttribute('role', 'columnheader');
      th.dataset['col'] = c.col;
      const label = document.createElement('span');
      label.className = 'th-label';
      label.textContent = c.label;
      th.append(label);
      th.title = c.title ?? c.label;
      if (c.col !== 'rule' && c.col !== 'warn') th.append(this.resizer(c.col, c.label, c.min));
      hr.append(th);
    }
    this.table.prepend(colgroup);
    this.setColumnWidths({});
    this.body = this.table.createTBody();
    this.template = rowTemplate();
    this.topSpacer = spacerRow();
    this.bottomSpacer = spacerRow();
    this.element.append(this.table);
    this.table.addEventListener('keydown', (e) => this.onKeyDown(e));
    this.table.addEventListener('click', (e) => this.onClick(e));
    this.table.addEventListener('change', (e) => this.onChange(e));
    this.table.addEventListener('focusin', (e) => this.onFocusIn(e));
    // before the native list opens: the pointer reaches a select before it takes the focus
    this.table.addEventListener('pointerdown', (e) => {
      this.touch(e.target);
      this.fillMoveChoices(e.target);
    });
    for (const type of ['input', 'change'] as const) this.table.addEventListener(type, (e) => this.touch(e.target), { capture: true });
    this.table.addEventListener('focusout', (e) => this.onFocusOut(e));
    this.element.addEventListener('scroll', () => this.onScroll(), { passive: true });
  }

  get expandedGroups(): ReadonlySet<string> {
    return this.expanded;
  }

  /**
   * Shows only the layers whose name, type or group holds every word of `text` (every group with
   * a match open), or the whole tree again when it is empty. Returns how many layers match.
   */
  setFilter(text: string): { matches: number; total: number } {
    const next = text.trim();
    if (next !== this.filter) {
      this.filter = next;
      this.element.scrollTop = 0;
      this.scrollTop = 0;
      this.rebuild();
    }
    return { matches: this.filterMatches, total: this.model?.layerCount ?? 0 };
  }

  /** Moves the focus to the first layer shown (the first row when no layer is), from the filter box. */
  focusFirst(): void {
    const first = this.flat.find((f) => f.row.kind === 'layer') ?? this.flat[0];
    if (first !== undefined) this.setActive(first.row.key, true);
  }

  /** Column widths (px by column name) the user chose; the others take their defaults. */
  setColumnWidths(widths: Readonly<Record<string, number>>): void {
    this.widths = {};
    let total = 0;
    for (const c of COLUMNS) {
      const w = widths[c.col];
      const width = w !== undefined && Number.isFinite(w) ? Math.max(c.min, Math.round(w)) : c.width;
      if (w !== undefined && width !== undefined) this.widths[c.col] = width;
      const col = this.cols.get(c.col);
      if (col) col.style.width = width === undefined ? '' : `${width}px`;
      total += width ?? c.min;
    }
    // wider than the panel: the tree scrolls sideways instead of squeezing "Decided by" away
    this.table.style.minWidth = `${total}px`;
  }

  /** A drag handle on a header's right edge (←/→ when focused), which resizes that column. */
  private resizer(colName: string, label: string, min: number): HTMLElement {
    const handle = document.createElement('span');
    handle.className = 'col-resize';
    handle.setAttribute('role', 'separator');
    handle.setAttribute('aria-orientation', 'vertical');
    handle.setAttribute('aria-label', `Resize column ${label || colName}`);
    handle.title = 'Drag to resize; ←/→ when focused';
    handle.tabIndex = 0;
    const current = (): number => this.cols.get(colName)?.getBoundingClientRect().width ?? min;
    const set = (w: number, done: boolean): void => {
      this.setColumnWidths({ ...this.widths, [colName]: w });
      if (done) this.events.columnsChanged(this.widths);
    };
    handle.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      e.stopPropagation();
      const startX = e.clientX;
      const startW = current();
      handle.setPointerCapture(e.pointerId);
      const move = (m: PointerEvent): void => set(startW + m.clientX - startX, false);
      const up = (u: PointerEvent): void => {
        handle.removeEventListener('pointermove', move);
        handle.removeEventListener('pointerup', up);
        handle.removeEventListener('pointercancel', up);
        set(startW + u.clientX - startX, true);
      };
      handle.addEventListener('pointermove', move);
      handle.addEventListener('pointerup', up);
      handle.addEventListener('pointercancel', up);
    });
    handle.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
      e.preventDefault();
      set(current() + (e.key === 'ArrowRight' ? 16 : -16), true);
    });
    return handle;
  }

  render(model: TreeModel, expanded: ReadonlySet<string>): void {
    this.model = model;
    this.expanded = new Set(expanded);
    this.moveChoices = moveChoices(model);
    this.rebuild();
  }

  /** Recomputes the rows the expanded groups show, then draws the window in view. */
  private rebuild(): void {
    const model = this.model;
    if (model === undefined) return;
    this.flat = [];
    this.index.clear();
    if (this.filter !== '') {
      const found = filterTree(model, this.filter);
      this.filterMatches = found.matches;
      found.groups.forEach(({ group, layers }, gi) => {
        this.push({ row: group, level: 1, pos: gi + 1, size: found.groups.length, open: true });
        layers.forEach((l, li) => this.push({ row: l, level: 2, pos: li + 1, size: layers.length, open: undefined }));
      });
    } else {
      this.filterMatches = 0;
      model.groups.forEach((g, gi) => {
        const open = this.expanded.has(g.name);
        this.push({ row: g, level: 1, pos: gi + 1, size: model.groups.length, open });
        if (open) g.layers.forEach((l, li) => this.push({ row: l, level: 2, pos: li + 1, size: g.layers.length, open: undefined }));
      });
    }
    this.table.setAttribute('aria-rowcount', String(this.flat.length + 1));
    if (this.activeKey === undefined || !this.index.has(this.activeKey)) this.activeKey = this.flat[0]?.row.key;
    this.drawWindow(true);
  }

  private push(f: FlatRow): void {
    this.index.set(f.row.key, this.flat.length);
    this.flat.push(f);
  }

  /** The rows that cover the scroller's view, plus some either side. */
  private wantedWindow(): [number, number] {
    // the scroller is never taller than its max-height; reading its real height would force a
    // layout of the page in the middle of rendering it
    const top = this.scrollTop;
    const height = Math.ceil(window.innerHeight * VIEW_SHARE);
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.flat.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    return [first, last];
  }

  /**
   * Puts the rows of the window in the body. A row still drawn from the same tree row (a scroll,
   * a group opened or closed) keeps its element, so the browser styles and lays out only the
   * rows that come into the window; a new state draws every row afresh.
   */
  private drawWindow(force: boolean, want = this.wantedWindow()): void {
    const [first, last] = want;
    if (!force && first === this.window[0] && last === this.window[1]) return;
    const keep = this.captureFocus();
    this.window = [first, last];
    const previous = this.rendered;
    this.rendered = new Map();
    const rows: HTMLTableRowElement[] = [];
    let kept = 0;
    for (let i = first; i < last; i++) {
      const f = this.flat[i];
      if (f === undefined) continue;
      const old = previous.get(f.row.key);
      const keep = old !== undefined && this.drawnFrom.get(old) === f.row && !this.touched.has(old);
      const tr = keep ? this.placeRow(old, f, i) : this.makeRow(f, i);
      if (keep) kept += 1;
      this.rendered.set(f.row.key, tr);
      rows.push(tr);
    }
    this.topSpacer.hidden = first === 0;
    this.topSpacer.style.height = `${first * ROW_HEIGHT}px`;
    this.bottomSpacer.hidden = last >= this.flat.length;
    this.bottomSpacer.style.height = `${(this.flat.length - last) * ROW_HEIGHT}px`;
    // removing a focused field that holds typed text makes the browser report a change;
    // that text moves to the new field below and is committed only by Enter or leaving it
    this.redrawing = true;
    try {
      if (kept === 0) this.body.replaceChildren(this.topSpacer, ...rows, this.bottomSpacer);
      else {
        for (const [key, tr] of previous) if (this.rendered.get(key) !== tr) tr.remove();
        // kept rows are in window order already: the new ones go in around them
        let at = this.topSpacer.nextSibling;
        for (const tr of rows) {
          if (at === tr) at = at.nextSibling;
          else this.body.insertBefore(tr, at);
        }
      }
    } finally {
      this.redrawing = false;
    }
    // the tab stop must be a row on screen; a row scrolled away hands it to the first one drawn
    if (keep === undefined && (this.activeKey === undefined || !this.rendered.has(this.activeKey))) {
      this.activeKey = this.flat[first]?.row.key ?? this.activeKey;
    }
    this.setActive(this.activeKey, false);
    // after a new model (force) the focused row may have moved out of the window: follow it;
    // a focused row that was kept still has the focus and whatever was typed in it
    if (keep !== undefined && !(keep.element.isConnected && document.activeElement === keep.element)) this.restoreFocus(keep, force);
  }

  /** A kept row at its new place in the flat list: only its position and its group's state change. */
  private placeRow(tr: HTMLTableRowElement, f: FlatRow, flatIndex: number): HTMLTableRowElement {
    const index = String(flatIndex + 2);
    if (tr.getAttribute('aria-rowindex') !== index) tr.setAttribute('aria-rowindex', index);
    if (f.open !== undefined && tr.getAttribute('aria-expanded') !== String(f.open)) {
      tr.setAttribute('aria-expanded', String(f.open));
      const toggle = tr.cells[0]?.firstElementChild;
      if (toggle) toggle.textContent = f.open ? '▾' : '▸';
    }
    return tr;
  }

  private onScroll(): void {
    if (this.scrollQueued) return;
    this.scrollQueued = true;
    requestAnimationFrame(() => {
      this.scrollQueued = false;
      this.scrollTop = this.element.scrollTop;
      const want = this.wantedWindow();
      // redraw only when the view nears the edge of what is drawn
      const [first, last] = this.window;
      const margin = OVERSCAN / 2;
      if (want[0] < first || want[1] > last || want[0] - first > OVERSCAN + margin || last - want[1] > OVERSCAN + margin) {
        this.drawWindow(false, want);
      }
    });
  }

  /** Scrolls so the row at flat index i is drawn and in view. */
  private reveal(i: number): void {
    const top = i * ROW_HEIGHT;
    const view = this.element.clientHeight;
    const head = this.table.tHead?.offsetHeight ?? ROW_HEIGHT;
    const scrolled = this.element.scrollTop;
    if (top < scrolled) this.element.scrollTop = top;
    else if (view > 0 && top + ROW_HEIGHT + head > scrolled + view) this.element.scrollTop = top + ROW_HEIGHT + head - view;
    this.scrollTop = this.element.scrollTop;
    const want = this.wantedWindow();
    if (i < this.window[0] || i >= this.window[1] || want[0] !== this.window[0]) this.drawWindow(false, want);
  }

  private makeRow(f: FlatRow, flatIndex: number): HTMLTableRowElement {
    const { row, level, pos, size, open } = f;
    const tr = this.template.cloneNode(true) as HTMLTableRowElement;
    this.drawnFrom.set(tr, row);
    tr.dataset['key'] = row.key;
    tr.className = row.kind === 'group' ? 'group' : 'layer';
    if (row.frozen) tr.classList.add('is-frozen');
    tr.setAttribute('aria-level', String(level));
    tr.setAttribute('aria-posinset', String(pos));
    tr.setAttribute('aria-setsize', String(size));
    tr.setAttribute('aria-rowindex', String(flatIndex + 2));
    if (open !== undefined) tr.setAttribute('aria-expanded', String(open));
    const [nameCell, groupCell, paramsCell, multCell, lrCell, wdCell, trainsCell, ruleCell, warnCell] = Array.from(tr.cells);
    if (!nameCell || !groupCell || !paramsCell || !multCell || !lrCell || !wdCell || !trainsCell || !ruleCell || !warnCell) return tr;

    const [toggle, swatch, label, sub] = Array.from(nameCell.children) as HTMLElement[];
    if (toggle) toggle.textContent = row.kind === 'group' ? (open === true ? '▾' : '▸') : '';
    swatch?.classList.add(...row.color.split(' '));
    if (label) label.textContent = row.name;
    if (sub) {
      sub.textContent = row.kind === 'group' ? groupSubtitle(row) : `${row.className}${row.isNewHead ? ' · new head' : ''}`;
    }
    nameCell.title = row.kind === 'group' ? `${row.name}: ${row.patterns.join(', ') || 'layers no pattern matches'}` : `${row.name} (depth ${row.depth})`;

    if (row.kind === 'layer') groupCell.append(this.moveSelect(row));

    paramsCell.textContent = formatParams(row.paramCount);
    // not toLocaleString: its first call loads locale data and costs more than the whole tree
    paramsCell.title = `${String(row.paramCount).replace(/\B(?=(\d{3})+$)/g, ',')} parameters`;

    const blocked = notEditableReason(row);
    const [mult, dec, inc] = Array.from(multCell.children) as HTMLInputElement[];
    if (mult && dec && inc) {
      mult.value = formatNumber(row.lrMult);
      mult.defaultValue = mult.value;
      mult.setAttribute('aria-label', `LR multiplier of ${row.kind} ${row.name}`);
      if (!setHere(row, row.lrMultRule)) mult.classList.add('inherited');
      mult.title = blocked ?? `${row.lrMultRule.detail}. Enter or leave the field to apply; ↑/↓ ×2/÷2; Esc reverts.`;
      dec.setAttribute('aria-label', `Halve the multiplier of ${row.name}`);
      inc.setAttribute('aria-label', `Double the multiplier of ${row.name}`);
      if (blocked !== undefined) for (const el of [mult, dec, inc]) el.disabled = true;
    }

    lrCell.textContent = row.effectiveLr === undefined ? '—' : formatNumber(row.effectiveLr);
    if (row.frozen && row.effectiveLr !== undefined) lrCell.classList.add('dim');
    const decay = wdCell.firstElementChild as HTMLInputElement | null;
    const decayTitle = weightDecayTitle(row);
    if (decay) {
      decay.value = row.ownWeightDecay !== undefined ? formatNumber(row.ownWeightDecay) : row.weightDecay;
      decay.defaultValue = decay.value;
      decay.setAttribute('aria-label', `Weight decay of ${row.kind} ${row.name}`);
      if (row.ownWeightDecay === undefined) decay.classList.add('inherited');
      const decayBlocked = decayBlockedReason(row);
      decay.title = decayBlocked ?? `${decayTitle}\n${decayHint(row)}`;
      if (decayBlocked !== undefined) decay.disabled = true;
    }

    const box = trainsCell.firstElementChild as HTMLInputElement | null;
    if (box) {
      box.checked = !row.frozen;
      box.defaultChecked = !row.frozen;
      box.setAttribute('aria-label', `${row.kind} ${row.name} trains`);
      box.title = blocked ?? `${row.frozen ? 'Frozen — check to train' : 'Trains — uncheck to freeze'} (${row.frozenRule.detail})`;
      if (blocked !== undefined) box.disabled = true;
      if (row.kind === 'group' && row.layers.some((l) => l.frozen !== row.frozen)) box.indeterminate = true;
    }

    const rules = [row.lrMultRule.detail];
    if (row.frozenRule.source !== 'default') rules.push(row.frozenRule.detail);
    const decayField = ownWeightDecayField(row);
    if (decayField !== undefined) rules.push(decayField);
    const bn = row.kind === 'layer' ? row.batchNorm : undefined;
    if (bn !== undefined && bn.rule.source !== 'default' && !row.frozen) rules.push(`BatchNorm ${bn.mode}: ${bn.rule.detail}`);
    ruleCell.textContent = rules.join(' · ');
    ruleCell.title = `multiplier: ${row.lrMultRule.detail}\nfrozen: ${row.frozenRule.detail}\nweight decay: ${decayTitle}${bn === undefined ? '' : `\nBatchNorm: ${bn.mode} — ${bn.rule.detail}`}`;

    if (row.warnings.length > 0) {
      warnCell.textContent = `⚠ ${row.warnings.length}`;
      warnCell.title = row.warnings.join('\n');
      warnCell.setAttribute('aria-label', `Warnings: ${row.warnings.join('; ')}`);
      tr.classList.add('has-warning');
    }
    return tr;
  }

  /**
   * A layer's group as a select of the plan's groups (the implicit one shown only as where it is
   * now). It is drawn holding only the current group and gets the others when the pointer or the
   * focus reaches it (fillMoveChoices): a thousand-layer tree would otherwise carry a dozen
   * options per row, a third of its elements, that nobody sees until a list opens.
   */
  private moveSelect(row: LayerRow): HTMLSelectElement {
    const select = this.moveChoices.select.cloneNode(false) as HTMLSelectElement;
    const current = row.groupPlanIndex === undefined ? '' : String(row.groupPlanIndex);
    const option = this.moveChoices.byValue.get(current);
    if (option) select.append(option.cloneNode(true));
    select.value = current;
    select.dataset['current'] = select.value;
    select.setAttribute('aria-label', `Group of layer ${row.name}`);
    const blocked = this.model === undefined ? undefined : moveBlockedReason(row, this.model.planGroups);
    select.title = blocked ?? `In “${row.group}”. Pick a group to move the layer there, or ↑/↓ then Enter; Esc reverts.`;
    if (blocked !== undefined) select.disabled = true;
    return select;
  }

  /** Marks the row of a control the user reached (see `touched`). */
  private touch(target: EventTarget | null): void {
    if (!(target instanceof HTMLElement) || target.dataset['control'] === undefined) return;
    const tr = target.closest('tr');
    if (tr) this.touched.add(tr);
  }

  /** Gives a move select all its choices, keeping the option it shows (and so its selection). */
  private fillMoveChoices(target: EventTarget | null): void {
    if (!(target instanceof HTMLSelectElement) || this.filledMoves.has(target) || controlOf(target) !== 'move') return;
    this.filledMoves.add(target);
    const shown = target.value;
    const current = target.options[0];
    const options: HTMLOptionElement[] = [];
    for (const [value, option] of this.moveChoices.byValue) {
      // the implicit group is a choice only for the layers it holds: nothing can be moved into it
      if (value === '' && shown !== '') continue;
      options.push(value === shown && current ? current : (option.cloneNode(true) as HTMLOptionElement));
    }
    target.replaceChildren(...options);
    target.value = shown;
  }

  // ---- focus ------------------------------------------------------------------------------------

  /** Roving tabindex: only the active row and its controls are in the tab order. */
  private setActive(key: string | undefined, focus: boolean): void {
    const prev = this.activeKey === undefined ? undefined : this.rendered.get(this.activeKey);
    if (prev) setTabbable(prev, false);
    this.activeKey = key;
    if (key === undefined) return;
    if (focus) {
      const i = this.index.get(key);
      if (i !== undefined) this.reveal(i);
    }
    const tr = this.rendered.get(key);
    if (!tr) return;
    setTabbable(tr, true);
    if (focus) tr.focus({ preventScroll: true });
  }

  private captureFocus(): FocusKeep | undefined {
    const el = document.activeElement;
    if (!(el instanceof HTMLElement) || !this.body.contains(el)) return undefined;
    const key = el.closest('tr')?.dataset['key'];
    if (key === undefined) return undefined;
    const control = controlOf(el);
    if (isNumberControl(control) && el instanceof HTMLInputElement && el.value !== el.defaultValue) {
      return { element: el, key, control, value: el.value, start: el.selectionStart, end: el.selectionEnd };
    }
    if (control === 'move' && el instanceof HTMLSelectElement && el.value !== el.dataset['current']) {
      return { element: el, key, control, value: el.value };
    }
    return { element: el, key, control };
  }

  private restoreFocus(keep: FocusKeep, follow: boolean): void {
    let tr = this.rendered.get(keep.key);
    if (!tr) {
      // a layer moved to another group lands outside the drawn window; a row merely scrolled away is let go
      const i = follow ? this.index.get(keep.key) : undefined;
      if (i === undefined) return;
      this.reveal(i);
      tr = this.rendered.get(keep.key);
      if (!tr) return;
    }
    this.setActive(keep.key, false);
    const el = keep.control === 'row' ? tr : tr.querySelector<HTMLElement>(`[data-control="${keep.control}"]`);
    if (!el) return;
    el.focus({ preventScroll: true });
    if (el instanceof HTMLInputElement && keep.value !== undefined) {
      el.value = keep.value;
      el.setSelectionRange(keep.start ?? keep.value.length, keep.end ?? keep.value.length);
    } else if (el instanceof HTMLSelectElement && keep.value !== undefined) {
      el.value = keep.value;
    }
  }

  private onFocusIn(e: FocusEvent): void {
    this.touch(e.target);
    // keyboard users browse the choices with the arrows and letters as soon as they reach it
    this.fillMoveChoices(e.target);
    const tr = (e.target as HTMLElement).closest('tr');
    const key = tr?.dataset['key'];
    if (key !== undefined && key !== this.activeKey) this.setActive(key, false);
  }

  /** Leaving a move select applies the group picked with the arrow keys, as leaving a field applies its number. */
  private onFocusOut(e: FocusEvent): void {
    if (this.redrawing || !(e.target instanceof HTMLSelectElement) || controlOf(e.target) !== 'move') return;
    const hit = this.rowOf(e.target);
    if (hit?.row.kind === 'layer') this.commitMove(e.target, hit.row);
  }

  // ---- input ------------------------------------------------------------------------------------

  private rowOf(el: EventTarget | null): { tr: HTMLTableRowElement; row: TreeRow } | undefined {
    if (!(el instanceof Element)) return undefined;
    const tr = el.closest('tr');
    const key = tr?.dataset['key'];
    const i = key === undefined ? undefined : this.index.get(key);
    const row = i === undefined ? undefined : this.flat[i]?.row;
    return tr && row ? { tr, row } : undefined;
  }

  private toggleGroup(name: string, open: boolean): void {
    // a filter shows every group with a match open; folding waits until it is cleared
    if (this.filter !== '' || this.expanded.has(name) === open) return;
    if (open) this.expanded.add(name);
    else this.expanded.delete(name);
    this.rebuild();
    this.events.expandedChanged(this.expanded);
  }

  private onClick(e: MouseEvent): void {
    const hit = this.rowOf(e.target);
    if (!hit) return;
    const target = e.target as HTMLElement;
    const control = controlOf(target);
    if (control === 'dec' || control === 'inc') {
      const input = hit.tr.querySelector<HTMLInputElement>('[data-control="mult"]');
      const current = parseNumber(input?.value ?? '') ?? hit.row.lrMult;
      const next = stepMultiplier(current, control === 'inc' ? 1 : -1);
      if (input) {
        input.value = formatNumber(next);
        input.defaultValue = input.value;
      }
      this.post(multiplierEdit(hit.row, next));
      return;
    }
    // anywhere on a group row but its controls opens or closes it: a click meant for the row does
    // something harmless (no edit), and ÷2 / ×2 need a click on the button itself
    if (hit.row.kind === 'group' && control === 'row' && !(target instanceof HTMLInputElement || target instanceof HTMLButtonElement || target instanceof HTMLSelectElement)) {
      this.setActive(hit.row.key, true);
      this.toggleGroup(hit.row.name, !this.expanded.has(hit.row.name));
    }
  }

  private onChange(e: Event): void {
    if (this.redrawing) return;
    const hit = this.rowOf(e.target);
    if (!hit) return;
    const control = controlOf(e.target as HTMLElement);
    if (control === 'trains') {
      const box = e.target as HTMLInputElement;
      this.post(trainsEdit(hit.row, box.checked, this.groupFrozen(hit.row)));
    } else if (isNumberControl(control)) {
      this.commitNumber(e.target as HTMLInputElement, hit.row, control);
    } else if (control === 'move' && hit.row.kind === 'layer') {
      // the arrow keys only browse (see onMoveKey): a change is a pick from the list or by mouse
      this.commitMove(e.target as HTMLSelectElement, hit.row);
    }
  }

  /** Whether the group a layer row belongs to is frozen (a layer's checkbox writes only where it differs). */
  private groupFrozen(row: TreeRow): boolean {
    if (row.kind === 'group') return row.frozen;
    return this.model?.groups.find((g) => g.name === row.group)?.frozen ?? false;
  }

  private commitNumber(input: HTMLInputElement, row: TreeRow, control: NumberControl): void {
    const text = input.value.trim();
    if (text === input.defaultValue) return;
    const edit = (v: number | null): PlanEditRequest | undefined => (control === 'mult' ? multiplierEdit(row, v) : weightDecayEdit(row, v));
    const label = control === 'mult' ? 'Multiplier' : 'Weight decay';
    if (text === '') {
      // an empty field removes the row's own setting; with none to remove, it just reverts
      const own = control === 'mult' ? setHere(row, row.lrMultRule) : row.ownWeightDecay !== undefined;
      if (own) {
        input.defaultValue = '';
        this.post(edit(null));
      } else input.value = input.defaultValue;
      markInvalid(input, undefined, label);
      return;
    }
    const v = parseNumber(text);
    const problem = v === undefined ? 'not a number' : nonNegative(v);
    markInvalid(input, problem, label);
    if (v === undefined || problem !== undefined) return;
    // Enter commits and then the browser reports a change too: one edit, not two
    input.defaultValue = input.value;
    this.post(edit(v));
  }

  /** Posts the move to the group the select shows, once, and opens that group so the layer stays in view. */
  private commitMove(select: HTMLSelectElement, row: LayerRow): void {
    const value = select.value;
    if (value === select.dataset['current'] || value === '') return;
    const to = Number(value);
    select.dataset['current'] = value;
    const edit = moveEdit(row, to);
    if (edit === undefined) return;
    const target = this.model?.planGroups.find((g) => g.planIndex === to)?.name;
    if (target !== undefined && !this.expanded.has(target)) {
      this.expanded.add(target);
      this.events.expandedChanged(this.expanded);
    }
    this.post(edit);
  }

  /**
   * Keys on a move select. A closed native select changes (and reports a change) on every arrow
   * or letter key, which would move the layer once per key; here those keys only browse the
   * choices, Enter (or leaving) applies, Esc reverts. Space and Alt+↓ still open the list, where
   * a pick applies at once.
   */
  private onMoveKey(e: KeyboardEvent, select: HTMLSelectElement, row: LayerRow): void {
    if (e.altKey) return;
    const options = Array.from(select.options).filter((o) => !o.disabled);
    const at = options.findIndex((o) => o.value === select.value);
    const pick = (o: HTMLOptionElement | undefined): void => {
      if (o !== undefined) select.value = o.value;
    };
    switch (e.key) {
      case 'ArrowDown':
      case 'ArrowRight':
        pick(options[Math.min(options.length - 1, at + 1)]);
        break;
      case 'ArrowUp':
      case 'ArrowLeft':
        pick(options[Math.max(0, at - 1)]);
        break;
      case 'Home':
      case 'PageUp':
        pick(options[0]);
        break;
      case 'End':
      case 'PageDown':
        pick(options[options.length - 1]);
        break;
      case 'Enter':
        this.commitMove(select, row);
        break;
      case 'Escape':
        select.value = select.dataset['current'] ?? '';
        this.setActive(row.key, true);
        break;
      default: {
        // shortcuts (Ctrl+F…) and Space (opens the list) keep their own meaning
        if (e.ctrlKey || e.metaKey || e.key.length !== 1 || e.key === ' ') return;
        // type-ahead: the next group whose name starts with the letter
        const letter = e.key.toLowerCase();
        const n = options.length;
        for (let k = 1; k <= n; k++) {
          const o = options[(at + k + n) % n];
          if (o?.text.toLowerCase().startsWith(letter)) {
            pick(o);
            break;
          }
        }
      }
    }
    e.preventDefault();
  }

  private post(edit: PlanEditRequest | undefined): void {
    if (edit !== undefined) this.events.edit(edit);
  }

  private onKeyDown(e: KeyboardEvent): void {
    const hit = this.rowOf(e.target);
    if (!hit) return;
    const target = e.target as HTMLElement;
    const control = controlOf(target);
    if (control === 'move') {
      if (hit.row.kind === 'layer') this.onMoveKey(e, target as HTMLSelectElement, hit.row);
      return;
    }
    if (isNumberControl(control)) {
      const input = target as HTMLInputElement;
      if (e.key === 'Enter') {
        e.preventDefault();
        this.commitNumber(input, hit.row, control);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        input.value = input.defaultValue;
        markInvalid(input, undefined, '');
        this.setActive(hit.row.key, true);
      } else if (control === 'mult' && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
        // steps the field only; the edit is posted on Enter or when the field loses focus
        e.preventDefault();
        const current = parseNumber(input.value) ?? hit.row.lrMult;
        input.value = formatNumber(stepMultiplier(current, e.key === 'ArrowUp' ? 1 : -1));
      }
      return;
    }
    if (control === 'trains' && e.key === 'Enter') {
      e.preventDefault();
      (target as HTMLInputElement).click();
      return;
    }
    if (control !== 'row') return;
    const i = this.index.get(hit.row.key) ?? 0;
    const moveTo = (j: number | undefined): void => {
      if (j === undefined) return;
      const key = this.flat[Math.max(0, Math.min(this.flat.length - 1, j))]?.row.key;
      if (key !== undefined) this.setActive(key, true);
    };
    const row = hit.row;
    switch (e.key) {
      case 'ArrowDown':
        moveTo(i + 1);
        break;
      case 'ArrowUp':
        moveTo(i - 1);
        break;
      case 'Home':
        moveTo(0);
        break;
      case 'End':
        moveTo(this.flat.length - 1);
        break;
      case 'ArrowRight':
        if (row.kind === 'group' && !this.expanded.has(row.name)) this.toggleGroup(row.name, true);
        else if (row.kind === 'group') moveTo(i + 1);
        else hit.tr.querySelector<HTMLElement>('[data-control="mult"]')?.focus();
        break;
      case 'ArrowLeft':
        if (row.kind === 'group' && this.expanded.has(row.name)) this.toggleGroup(row.name, false);
        else if (row.kind === 'layer') moveTo(this.index.get(`g:${row.group}`));
        break;
      case 'Enter':
        if (row.kind === 'group') this.toggleGroup(row.name, !this.expanded.has(row.name));
        else hit.tr.querySelector<HTMLElement>('[data-control="mult"]')?.focus();
        break;
      case ' ': {
        const box = hit.tr.querySelector<HTMLInputElement>('[data-control="trains"]');
        if (box && !box.disabled) box.click();
        break;
      }
      default:
        return;
    }
    e.preventDefault();
  }
}

function groupSubtitle(g: GroupRow): string {
  const n = g.layers.length;
  return `${n} layer${n === 1 ? '' : 's'}${g.planIndex === undefined ? ' · implicit' : ''}`;
}

function decayHint(row: TreeRow): string {
  const scope =
    row.kind === 'layer'
      ? 'A layer’s own weight decay applies to all its weights, biases and normalisation weights too (it wins over training.noDecay).'
      : 'A group’s weight decay spares biases and normalisation weights (training.noDecay); layers[…] settings win over it.';
  return `${scope} Enter or leave the field to apply; empty it to remove the row’s own setting; Esc reverts.`;
}

function controlOf(el: HTMLElement): Control {
  const c = el.dataset['control'];
  return c === 'mult' || c === 'dec' || c === 'inc' || c === 'decay' || c === 'trains' || c === 'move' ? c : 'row';
}

const isNumberControl = (c: Control): c is NumberControl => c === 'mult' || c === 'decay';

function markInvalid(input: HTMLInputElement, problem: string | undefined, label: string): void {
  if (problem === undefined) {
    input.removeAttribute('aria-invalid');
    input.classList.remove('invalid');
  } else {
    input.setAttribute('aria-invalid', 'true');
    input.classList.add('invalid');
    input.title = `${label} ${problem}`;
  }
}

function setTabbable(tr: HTMLTableRowElement, on: boolean): void {
  tr.tabIndex = on ? 0 : -1;
  for (const el of tr.querySelectorAll<HTMLElement>('[data-control]')) el.tabIndex = on ? 0 : -1;
}

function spacerRow(): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.className = 'spacer';
  tr.setAttribute('aria-hidden', 'true');
  const td = document.createElement('td');
  td.colSpan = COLUMNS.length;
  tr.append(td);
  return tr;
}

function rowTemplate(): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.setAttribute('role', 'row');
  tr.tabIndex = -1;
  const cell = (col: string, cls: string): HTMLTableCellElement => {
    const td = document.createElement('td');
    td.setAttribute('role', 'gridcell');
    td.className = cls;
    td.dataset['col'] = col;
    tr.append(td);
    return td;
  };
  const numberField = (control: NumberControl): HTMLInputElement => {
    const input = document.createElement('input');
    input.type = 'text';
    input.inputMode = 'decimal';
    input.className = `num-field ${control}`;
    input.dataset['control'] = control;
    input.tabIndex = -1;
    input.spellcheck = false;
    input.autocomplete = 'off';
    return input;
  };
  const name = cell('name', 'cell-name');
  for (const cls of ['toggle', 'swatch', 'label', 'sub']) {
    const span = document.createElement('span');
    span.className = cls;
    if (cls === 'toggle' || cls === 'swatch') span.setAttribute('aria-hidden', 'true');
    name.append(span);
  }
  cell('group', 'cell-group');
  cell('params', 'num');
  const mult = cell('mult', 'cell-mult');
  mult.append(numberField('mult'));
  for (const [control, text] of [
    ['dec', '÷2'],
    ['inc', '×2'],
  ] as const) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'step';
    b.dataset['control'] = control;
    b.tabIndex = -1;
    b.textContent = text;
    mult.append(b);
  }
  cell('lr', 'num');
  cell('wd', 'cell-wd').append(numberField('decay'));
  const trains = cell('trains', 'cell-trains');
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.className = 'check';
  box.dataset['control'] = 'trains';
  box.tabIndex = -1;
  // shown by media/webview.css next to an unchecked box: frozen
  const lock = document.createElement('span');
  lock.className = 'lock';
  lock.setAttribute('aria-hidden', 'true');
  lock.textContent = '🔒';
  trains.append(box, lock);
  cell('rule', 'cell-rule');
  cell('warn', 'cell-warn');
  return tr;
}

/**
 * An empty move select to clone, and its choices by value in list order: the implicit group
 * (value '', offered only in rows of layers it holds) first, then every plan group.
 */
function moveChoices(model: Pick<TreeModel, 'planGroups'>): { select: HTMLSelectElement; byValue: Map<string, HTMLOptionElement> } {
  const select = document.createElement('select');
  select.className = 'move';
  select.dataset['control'] = 'move';
  select.tabIndex = -1;
  const byValue = new Map<string, HTMLOptionElement>();
  const implicit = document.createElement('option');
  implicit.value = '';
  implicit.textContent = 'default';
  implicit.title = 'the implicit group of the layers no pattern matches';
  implicit.disabled = true;
  byValue.set('', implicit);
  for (const g of model.planGroups) {
    const o = document.createElement('option');
    o.value = String(g.planIndex);
    o.textContent = g.name;
    byValue.set(o.value, o);
  }
  return { select, byValue };
}
