/**
 * The plan-editor panel. It holds no copy of the plan to edit: the host sends the plan as
 * parsed from the editor (`state`), the panel resolves it with the same core code the engine
 * uses, draws it, and turns every change into an `edit` request; the host applies it as a
 * WorkspaceEdit and answers with the next `state`.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-label/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-tab-header/index.js';
import '@vscode-elements/elements/dist/vscode-tab-panel/index.js';
import '@vscode-elements/elements/dist/vscode-tabs/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import type { VscodeButton } from '@vscode-elements/elements/dist/vscode-button/vscode-button.js';
import type { VscodeProgressBar } from '@vscode-elements/elements/dist/vscode-progress-bar/vscode-progress-bar.js';
import type { VscodeSingleSelect } from '@vscode-elements/elements/dist/vscode-single-select/vscode-single-select.js';
import type { VscodeTabs } from '@vscode-elements/elements/dist/vscode-tabs/vscode-tabs.js';

import { resolveGroups } from '../src/core/groups.ts';
import type { Resolution } from '../src/core/groups.types.ts';
import type { LrFinderOutcome } from '../src/core/lr-finder.ts';
import { DEFAULTS, type ScheduleSpec, type ScheduleType, type TrainingSpec } from '../src/core/plan.ts';
import { activePresets, presetChanges, type PresetChange, type PresetId } from '../src/core/presets.ts';
import type { RunReport } from '../src/core/progress.ts';
import { buildTimeline, lrPreview, resolveStages } from '../src/core/timeline.ts';
import {
  isHostToWebview,
  isPersistedPanelState,
  type Handlers,
  type HostToWebview,
  type PanelCommand,
  type PanelState,
  type PanelTab,
  type PersistedPanelState,
  type PlanEditRequest,
  type TrainingKey,
  type SuggestionState,
  type TrainingStatus,
  type WebviewToHost,
} from '../src/protocol/webview.ts';
import { AugmentStrip } from './augment-strip.ts';
import { DataSection } from './data-section.ts';
import { barChart, type BarChartSpec } from './bar-chart.ts';
import { LineCharts, type LineSeries, type VerticalMarker } from './line-chart.ts';
import type { ChartExportSink } from './chart-file.ts';
import type { HostChannel } from './host-channel.ts';
import { RunData } from './run-data.ts';
import { button, el } from './dom.ts';
import { adviceList, renderSuggestion } from './suggestions.ts';
import { LayerTree } from './tree.ts';
import {
  buildTreeModel,
  colorClass,
  formatNumber,
  groupColors,
  nonNegative,
  parseNumber,
  positive,
  positiveInteger,
  runControls,
  statusText,
  warmupCheck,
  type FieldCheck,
  type TreeModel,
} from './view-model.ts';

const TABS: readonly PanelTab[] = ['rates', 'training', 'lrFinder'];
const TAB_LABELS: Record<PanelTab, string> = { rates: 'Learning rates', training: 'Training', lrFinder: 'LR range test' };
/** The preview needs steps per epoch; without a dataset size it assumes this many. */
const ASSUMED_STEPS_PER_EPOCH = 100;

interface Choice {
  value: string;
  label: string;
  description?: string;
}

/** A labelled select of the settings row; `show` selects a value (and sets the choices, when given). */
interface ChoiceField {
  element: HTMLElement;
  show(value: string, options?: readonly Choice[]): void;
}

/** A labelled number field of the settings row; `show` puts the plan's value (and a tooltip) in it. */
interface NumberField {
  element: HTMLElement;
  show(value: number | undefined, hint?: string): void;
}

interface SettingsFields {
  preset: ChoiceField;
  lr: NumberField;
  optimizer: ChoiceField;
  schedule: ChoiceField;
  warmup: NumberField;
  epochs: NumberField;
  batchSize: NumberField;
  weightDecay: NumberField;
}

const OPTIMIZERS: readonly Choice[] = [
  { value: 'adamw', label: 'AdamW' },
  { value: 'adam', label: 'Adam' },
  { value: 'sgd', label: 'SGD' },
];
const SCHEDULES: ReadonlyArray<{ value: ScheduleType; label: string }> = [
  { value: 'constant', label: 'constant' },
  { value: 'linear', label: 'linear decay' },
  { value: 'cosine', label: 'cosine' },
  { value: 'stlr', label: 'slanted triangular (ULMFiT)' },
  { value: 'onecycle', label: 'one-cycle' },
];

interface Derived {
  resolution?: Resolution;
  tree?: TreeModel;
  /** Why the plan cannot be resolved against the model. */
  resolveProblem?: string;
}

export class PanelApp {
  private state: PanelState | undefined;
  private derived: Derived = {};
  private status: TrainingStatus = { state: 'idle' };
  private tab: PanelTab = 'rates';
  private expanded = new Set<string>();
  private columnWidths: Record<string, number> = {};
  private treeCollapsed = false;
  /** A preset picked in the picker, waiting for the user to confirm what it overwrites. */
  private pendingPreset: string | undefined;
  /** The preset the plan follows ('' when none), shown in the picker. */
  private activePreset = '';
  /** A finished run's status the header no longer shows, because a newer run (or a suggestion) began. */
  private supersededStatus: string | undefined;
  private run: RunData | undefined;
  private lrOutcome: LrFinderOutcome | undefined;
  private suggestion: SuggestionState = { state: 'none' };
  private readonly dirty = new Set<PanelTab>();
  /** Line charts live across redraws (zoom, scale, readout); their exports go to the host to save. */
  /** Where every chart's exports go: the host asks where to save them. */
  private readonly saveChart: ChartExportSink = (file) => this.post({ type: 'saveChart', file });
  private readonly charts = new LineCharts(this.saveChart);
  /** The Training tab's parts as last built, with what they showed (renderTraining). */
  private readonly trainingParts = new Map<string, { key: string; node: HTMLElement }>();

  private readonly tree: LayerTree;
  private readonly augmentStrip = new AugmentStrip();
  private readonly dataSection: DataSection;
  private readonly fields: SettingsFields;
  private readonly els: {
    title: HTMLElement;
    status: HTMLElement;
    progress: VscodeProgressBar;
    train: VscodeButton;
    findLr: VscodeButton;
    suggest: VscodeButton;
    suggestionBox: HTMLElement;
    stop: VscodeButton;
    resume: VscodeButton;
    openReport: VscodeButton;
    notice: HTMLElement;
    problems: HTMLElement;
    settings: HTMLElement;
    treeBox: HTMLElement;
    treeSummary: HTMLElement;
    fold: HTMLButtonElement;
    filter: HTMLInputElement;
    filterCount: HTMLElement;
    presetConfirm: HTMLElement;
    tabs: VscodeTabs;
    rates: HTMLElement;
    training: HTMLElement;
    lrFinder: HTMLElement;
  };

  /** Measured from a `state` message to its rows on screen (bench/webview-render.ts reads it). */
  lastRenderMs = 0;
  /** When the last `state` message began to be handled (performance.now()), for the same bench. */
  lastRenderStart = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly host: HostChannel,
  ) {
    const saved = host.loadUiState();
    if (isPersistedPanelState(saved)) {
      this.expanded = new Set(saved.expandedGroups);
      this.tab = saved.tab;
      this.columnWidths = { ...(saved.columnWidths ?? {}) };
      this.treeCollapsed = saved.treeCollapsed ?? false;
    }
    this.tree = new LayerTree({
      edit: (edit) => this.edit(edit),
      expandedChanged: (expanded) => {
        this.expanded = new Set(expanded);
        this.persist();
      },
      columnsChanged: (widths) => {
        this.columnWidths = { ...widths };
        this.persist();
      },
    });
    this.tree.setColumnWidths(this.columnWidths);
    this.fields = this.settingsFields();
    this.dataSection = new DataSection((field, value) => this.edit({ kind: 'setData', field, value }));
    this.els = this.layout();
    // Ctrl+F / ⌘F finds a layer: the tree draws only the rows in view, so the page's own find
    // (VS Code's find widget) cannot reach the others; the filter box can
    document.addEventListener(
      'keydown',
      (e) => {
        // Esc answers an open preset question with "no", wherever the focus is
        if (e.key === 'Escape' && this.pendingPreset !== undefined) {
          e.preventDefault();
          e.stopPropagation();
          this.cancelPreset();
          return;
        }
        if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === 'f' && !this.els.treeBox.hidden) {
          e.preventDefault();
          e.stopPropagation();
          this.setTreeCollapsed(false);
          this.els.filter.focus();
          this.els.filter.select();
        }
      },
      true,
    );
  }

  /** Says `ready`; until the host answers with `state`, the panel posts nothing else. */
  start(): void {
    this.host.post({ type: 'ready' });
  }

  private post(message: WebviewToHost): void {
    if (this.state === undefined) return;
    this.host.post(message);
  }

  private edit(edit: PlanEditRequest): void {
    this.post({ type: 'edit', edit });
  }

  private command(command: PanelCommand): void {
    this.post({ type: 'command', command });
  }

  /** Every message from the host arrives here; anything the protocol does not know is dropped. */
  receive(data: unknown): void {
    if (!isHostToWebview(data)) return;
    const handle = this.handlers[data.type] as (m: HostToWebview) => void;
    handle(data);
  }

  private readonly handlers: Handlers<HostToWebview> = {
    state: (m) => this.setState(m.state),
    status: (m) => {
      this.status = m.status;
      this.renderRunControls();
      // the Apply button and the range test's "running" note follow the status
      this.queueRedraw('lrFinder');
    },
    trainEvent: (m) => {
      if (this.run === undefined || this.run.job === 'report') this.run = new RunData('train');
      this.run.add(m.event);
      this.queueRedraw('training');
    },
    runStarted: (m) => {
      this.supersede();
      if (m.job === 'train') {
        this.run = new RunData('train');
        this.selectTab('training');
        this.queueRedraw('training');
      } else {
        this.lrOutcome = undefined;
        this.selectTab('lrFinder');
        this.queueRedraw('lrFinder');
      }
    },
    report: (m) => this.showReport(m.report),
    suggestion: (m) => {
      if (m.suggestion.state === 'running') this.supersede();
      this.suggestion = m.suggestion;
      this.renderSuggestion();
      this.renderRunControls();
    },
    lrResult: (m) => {
      this.lrOutcome = m.outcome;
      this.selectTab('lrFinder');
      this.queueRedraw('lrFinder');
    },
  };

  // ---- state -----------------------------------------------------------------------------------

  private setState(state: PanelState): void {
    const t0 = performance.now();
    this.lastRenderStart = t0;
    const first = this.state === undefined;
    this.state = state;
    this.status = state.status;
    this.derived = derive(state);
    if (first && state.lastLrFinder !== undefined) this.lrOutcome = state.lastLrFinder;
    this.suggestion = state.suggestion ?? { state: 'none' };
    if (state.lastReport !== undefined && (this.run === undefined || this.run.job === 'report')) {
      this.run = RunData.fromReport(state.lastReport);
    }
    this.renderHeader();
    this.renderRunControls();
    this.renderProblems();
    this.renderSettings();
    this.dataSection.show(state.plan, state.model?.inputShape?.[3]);
    this.augmentStrip.show(state.augmentPreview);
    this.renderTree();
    this.renderSuggestion();
    this.lastRenderMs = performance.now() - t0;
    this.persist();
    // the tree is what the user edits: it goes on screen first, the charts one frame later
    this.queueRedraw('rates', 'training', 'lrFinder');
  }

  private showReport(report: RunReport): void {
    if (this.run === undefined || this.run.job === 'report') this.run = RunData.fromReport(report);
    else this.run.setReport(report);
    if (this.state) this.state = { ...this.state, lastReport: report };
    this.renderRunControls();
    this.queueRedraw('training');
  }

  private persist(): void {
    if (this.state === undefined) return;
    const saved: PersistedPanelState = {
      planUri: this.state.planUri,
      expandedGroups: [...this.expanded],
      tab: this.tab,
      ...(Object.keys(this.columnWidths).length > 0 ? { columnWidths: this.columnWidths } : {}),
      ...(this.treeCollapsed ? { treeCollapsed: true } : {}),
    };
    this.host.saveUiState(saved);
  }

  private selectTab(tab: PanelTab): void {
    this.tab = tab;
    this.els.tabs.selectedIndex = TABS.indexOf(tab);
    this.persist();
  }

  // ---- layout ----------------------------------------------------------------------------------

  private layout(): PanelApp['els'] {
    const header = el('header', 'toolbar');
    const title = el('h1', 'plan-title', 'Layerwise');
    const status = el('span', 'status', 'Waiting for the plan…');
    status.setAttribute('role', 'status');
    status.setAttribute('aria-live', 'polite');
    const train = button('Train', () => this.command('train'));
    const findLr = button('Find LR', () => this.command('findLr'), true);
    const suggest = button('Suggest multipliers', () => this.command('suggestMultipliers'), true);
    suggest.title = 'Measure each group’s relative gradient norm at the starting weights and suggest multipliers (nothing changes until you apply)';
    const stop = button('Stop', () => this.command('stop'), true);
    const resume = button('Resume', () => this.command('resume'), true);
    resume.hidden = true;
    const openReport = button('Open report', () => this.command('openReport'), true);
    const openText = button('Open plan file', () => this.command('openPlanText'), true);
    for (const b of [train, findLr, suggest, stop, openReport]) b.disabled = true;
    const actions = el('div', 'actions');
    actions.setAttribute('role', 'group');
    actions.setAttribute('aria-label', 'Run');
    actions.append(train, resume, findLr, suggest, stop, openReport, openText);
    header.append(title, status, actions);
    const progress = document.createElement('vscode-progress-bar');
    progress.classList.add('progress');
    progress.ariaLabel = 'Run progress';
    progress.hidden = true;
    const notice = el('p', 'notice');
    notice.hidden = true;
    notice.setAttribute('role', 'note');

    const problems = el('section', 'problems');
    problems.setAttribute('aria-label', 'Problems');
    const settings = el('section', 'settings');
    settings.setAttribute('aria-label', 'Training settings');
    // laid out (unseen) while the host prepares the state, so its web components have drawn
    // themselves by the time it arrives; the first state shows it
    settings.classList.add('waiting');
    const f = this.fields;
    settings.append(...[f.preset, f.lr, f.optimizer, f.schedule, f.warmup, f.epochs, f.batchSize, f.weightDecay].map((x) => x.element));

    const presetConfirm = el('section', 'preset-confirm');
    presetConfirm.setAttribute('aria-label', 'Confirm the preset');
    presetConfirm.setAttribute('role', 'alertdialog');
    presetConfirm.hidden = true;

    const suggestionBox = el('section', 'suggestion');
    suggestionBox.setAttribute('aria-label', 'Suggested multipliers');
    suggestionBox.hidden = true;
    const treeBox = el('section', 'tree-box');
    treeBox.setAttribute('aria-label', 'Layer tree');
    const treeBar = el('div', 'tree-bar');
    const fold = el('button', 'tree-fold');
    fold.type = 'button';
    fold.addEventListener('click', () => this.setTreeCollapsed(!this.treeCollapsed));
    const treeSummary = el('p', 'tree-summary');
    const filter = el('input', 'tree-filter');
    filter.type = 'search';
    filter.placeholder = 'Filter layers by name, type or group (Ctrl+F)';
    filter.setAttribute('aria-label', 'Filter layers by name, type or group');
    filter.spellcheck = false;
    filter.autocomplete = 'off';
    const filterCount = el('span', 'filter-count');
    filterCount.setAttribute('role', 'status');
    filterCount.setAttribute('aria-live', 'polite');
    filter.addEventListener('input', () => this.applyFilter());
    filter.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        filter.value = '';
        this.applyFilter();
      } else if (e.key === 'Enter' || e.key === 'ArrowDown') {
        // to the first match, where the arrow keys go on
        e.preventDefault();
        this.tree.focusFirst();
      }
    });
    treeBar.append(fold, treeSummary, filter, filterCount);
    treeBox.append(treeBar, this.tree.element);

    const tabs = document.createElement('vscode-tabs');
    tabs.setAttribute('panel', '');
    const panels: Record<PanelTab, HTMLElement> = { rates: el('div'), training: el('div'), lrFinder: el('div') };
    for (const t of TABS) {
      const h = document.createElement('vscode-tab-header');
      h.setAttribute('slot', 'header');
      h.textContent = TAB_LABELS[t];
      h.dataset['tab'] = t;
      const p = document.createElement('vscode-tab-panel');
      panels[t].className = `tab-body tab-${t}`;
      p.append(panels[t]);
      tabs.append(h, p);
    }
    tabs.selectedIndex = TABS.indexOf(this.tab);
    tabs.addEventListener('vsc-tabs-select', (e) => {
      const t = TABS[e.detail.selectedIndex];
      if (t !== undefined && t !== this.tab) {
        this.tab = t;
        this.persist();
      }
    });
    // the tree and the charts side by side on a wide panel (media/webview.css), one above the other otherwise
    const workspace = el('div', 'workspace');
    const chartsBox = el('section', 'charts-box');
    chartsBox.setAttribute('aria-label', 'Charts');
    chartsBox.append(tabs);
    workspace.append(treeBox, chartsBox);

    this.root.replaceChildren(header, progress, notice, problems, settings, presetConfirm, this.dataSection.element, this.augmentStrip.element, suggestionBox, workspace);
    return {
      title,
      status,
      progress,
      train,
      findLr,
      suggest,
      suggestionBox,
      stop,
      resume,
      openReport,
      notice,
      problems,
      settings,
      treeBox,
      treeSummary,
      fold,
      filter,
      filterCount,
      presetConfirm,
      tabs,
      rates: panels.rates,
      training: panels.training,
      lrFinder: panels.lrFinder,
    };
  }

  // ---- header and run controls -----------------------------------------------------------------

  private renderHeader(): void {
    const s = this.state;
    if (!s) return;
    const name = s.planFile.split(/[\\/]/).pop() ?? s.planFile;
    this.els.title.textContent = name;
    this.els.title.title = s.planFile;
  }

  private runnableReason(): string | undefined {
    const s = this.state;
    if (!s) return 'Waiting for the plan.';
    if (s.plan === undefined || s.problems.length > 0) return 'Fix the plan’s problems first.';
    if (s.model === undefined) return 'The model could not be read.';
    if (this.derived.resolveProblem !== undefined) return 'The plan’s groups cannot be resolved against the model.';
    return undefined;
  }

  private renderRunControls(): void {
    const c = runControls(this.status, this.state?.trusted ?? false, this.runnableReason());
    const { train, findLr, stop, resume, openReport, notice, status, progress } = this.els;
    train.disabled = !c.train;
    const interrupted = this.state?.interrupted;
    resume.hidden = interrupted === undefined || c.stop;
    resume.disabled = !c.train;
    resume.title = interrupted === undefined
      ? ''
      : c.reason ?? `Continue the run ${interrupted.how === 'crashed' ? 'cut off' : 'stopped'} at step ${interrupted.step} from its checkpoint (${interrupted.folder})`;
    findLr.disabled = !c.findLr;
    this.els.suggest.disabled = !c.findLr || this.suggestion.state === 'running';
    stop.disabled = !c.stop;
    openReport.disabled = this.run?.report === undefined && this.state?.lastReport === undefined;
    for (const b of [train, findLr]) b.title = c.reason ?? '';
    const untrusted = this.state !== undefined && !this.state.trusted;
    notice.hidden = !untrusted;
    notice.textContent = untrusted ? (c.reason ?? '') : '';
    const shown = this.headerStatus();
    status.textContent = this.suggestion.state === 'running' && shown.state === 'idle' ? 'Suggesting multipliers…' : statusText(shown);
    status.dataset['state'] = shown.state;
    if (this.status.state === 'running') {
      progress.hidden = false;
      progress.indeterminate = false;
      progress.max = 1;
      progress.value = this.status.fraction;
    } else if (this.status.state === 'starting') {
      progress.hidden = false;
      progress.indeterminate = true;
    } else progress.hidden = true;
  }

  private renderSuggestion(): void {
    renderSuggestion(this.els.suggestionBox, this.suggestion, {
      apply: () => this.command('applySuggestion'),
      discard: () => this.command('discardSuggestion'),
    });
  }

  // ---- problems --------------------------------------------------------------------------------

  private renderProblems(): void {
    const s = this.state;
    const box = this.els.problems;
    box.replaceChildren();
    if (!s) return;
    const items: Array<{ level: 'error' | 'warning'; text: string }> = [];
    for (const p of s.problems) items.push({ level: 'error', text: p.field !== undefined ? `${p.field}: ${p.message}` : p.message });
    if (s.plan === undefined && s.problems.length === 0) items.push({ level: 'error', text: 'The plan file could not be read.' });
    if (s.modelProblem !== undefined) items.push({ level: 'error', text: `Model: ${s.modelProblem}` });
    if (this.derived.resolveProblem !== undefined) items.push({ level: 'error', text: this.derived.resolveProblem });
    for (const w of this.derived.tree?.warnings ?? []) items.push({ level: 'warning', text: w });
    if (items.length === 0) return;
    const ul = el('ul');
    for (const i of items) {
      const li = el('li', i.level, i.text);
      li.prepend(el('span', 'sev', i.level === 'error' ? 'Error: ' : 'Warning: '));
      ul.append(li);
    }
    box.append(ul);
  }

  // ---- settings --------------------------------------------------------------------------------

  /**
   * The training settings, built once with the page: every state only shows its values in them.
   * Built per state, the web components' first renders (and the layouts they force) cost as
   * much as the layer tree.
   */
  private settingsFields(): SettingsFields {
    const training = (): TrainingSpec => this.state?.plan?.training ?? {};
    return {
      preset: this.select('preset', 'Preset', (value) => this.pickPreset(value)),
      lr: this.numberField('lr', 'Base LR', DEFAULTS.lr, positive, (v) => this.setTraining('lr', v)),
      optimizer: this.select('optimizer', 'Optimizer', (v) => this.setTraining('optimizer', v), OPTIMIZERS),
      schedule: this.select('schedule', 'Schedule', (v) => this.setTraining('schedule', { ...(training().schedule ?? {}), type: v as ScheduleType }), SCHEDULES),
      warmup: this.numberField('warmup', 'Warm-up', undefined, warmupCheck, (v) => {
        const next: ScheduleSpec = { ...(training().schedule ?? { type: 'constant' }) };
        if (v === null) delete next.warmup;
        else next.warmup = v;
        this.setTraining('schedule', next);
      }),
      epochs: this.numberField('epochs', 'Epochs', DEFAULTS.epochs, positiveInteger, (v) => this.setTraining('epochs', v)),
      batchSize: this.numberField('batchSize', 'Batch size', DEFAULTS.batchSize, positiveInteger, (v) => this.setTraining('batchSize', v)),
      weightDecay: this.numberField('weightDecay', 'Weight decay', undefined, nonNegative, (v) => this.setTraining('weightDecay', v)),
    };
  }

  private renderSettings(): void {
    const s = this.state;
    this.els.settings.classList.remove('waiting');
    this.els.settings.hidden = s?.plan === undefined;
    if (!s?.plan) return;
    const training: TrainingSpec = s.plan.training ?? {};
    const schedule = training.schedule;
    const f = this.fields;
    f.preset.element.hidden = s.presets.length === 0;
    // the preset the plan's rates already follow, when one does (core/presets.ts activePresets)
    const active = s.model === undefined || this.derived.resolution === undefined ? [] : activePresets(s.plan, s.model, this.derived.resolution);
    this.activePreset = active[0] ?? '';
    f.preset.show(this.pendingPreset ?? this.activePreset, [
      { value: '', label: 'Set by hand (no preset)', description: 'The plan’s multipliers match no preset: pick one to apply it' },
      ...s.presets.map((p) => ({ value: p.id, label: `${p.label}${active.includes(p.id as PresetId) ? ' — current' : ''}`, description: p.description })),
    ]);
    this.renderPresetConfirm();
    f.lr.show(training.lr);
    f.optimizer.show(training.optimizer ?? DEFAULTS.optimizer);
    f.schedule.show(schedule?.type ?? 'constant');
    f.warmup.show(
      schedule?.warmup,
      schedule !== undefined && (schedule.type === 'stlr' || schedule.type === 'onecycle') ? 'this schedule has its own rise' : 'fraction of steps (< 1) or a number of steps',
    );
    f.epochs.show(training.epochs);
    f.batchSize.show(training.batchSize);
    f.weightDecay.show(training.weightDecay);
  }

  /** A preset picked: nothing happens until the user has seen what it overwrites and confirmed. */
  private pickPreset(id: string): void {
    if (id === '' || id === this.activePreset) {
      this.pendingPreset = undefined;
    } else this.pendingPreset = id;
    this.renderPresetConfirm();
    // after the select has closed its list and taken the focus back
    if (this.pendingPreset !== undefined) requestAnimationFrame(() => this.els.presetConfirm.querySelector<HTMLElement>('.confirm-apply')?.focus());
    else this.fields.preset.show(this.activePreset);
  }

  private renderPresetConfirm(): void {
    const box = this.els.presetConfirm;
    const s = this.state;
    const id = this.pendingPreset;
    const preset = s?.presets.find((p) => p.id === id);
    if (id === undefined || preset === undefined || !s?.plan) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    let changes: PresetChange[] | undefined;
    let problem: string | undefined;
    try {
      changes = s.model === undefined ? undefined : presetChanges(s.plan, s.model, id);
    } catch (e) {
      problem = e instanceof Error ? e.message : String(e);
    }
    const cancel = (): void => this.cancelPreset();
    const title = el('p', 'confirm-title');
    title.append('Apply the preset ', el('strong', '', `“${preset.label}”`), '?');
    const body: HTMLElement[] = [title];
    if (problem !== undefined) body.push(el('p', 'error', problem));
    else if (changes === undefined) body.push(el('p', 'hint', 'The model is not loaded yet: what the preset changes cannot be listed.'));
    else if (changes.length === 0) body.push(el('p', 'hint', 'It changes nothing: the plan already has these rates.'));
    else {
      const handSet = changes.filter((c) => c.handSet).length;
      body.push(
        el(
          'p',
          handSet > 0 ? 'warning' : 'hint',
          handSet > 0
            ? `It overwrites ${handSet} setting${handSet === 1 ? '' : 's'} made by hand (marked below) and changes ${changes.length} in all:`
            : `It changes ${changes.length} setting${changes.length === 1 ? '' : 's'}:`,
        ),
      );
      const ul = el('ul', 'preset-changes');
      for (const c of changes.slice(0, 30)) {
        const li = el('li', c.handSet ? 'hand-set' : '');
        li.append(el('code', '', c.field), ` ${c.before ?? '(not set)'} → ${c.after ?? '(removed)'}`);
        if (c.handSet) li.append(el('span', 'tag', 'set by hand'));
        ul.append(li);
      }
      if (changes.length > 30) ul.append(el('li', 'hint', `… ${changes.length - 30} more`));
      body.push(ul);
    }
    const row = el('div', 'confirm-actions');
    const apply = button('Apply preset', () => {
      this.pendingPreset = undefined;
      this.renderPresetConfirm();
      this.edit({ kind: 'applyPreset', preset: id });
    });
    apply.classList.add('confirm-apply');
    apply.disabled = problem !== undefined || changes?.length === 0;
    const no = button('Cancel', cancel, true);
    no.classList.add('confirm-cancel');
    row.append(apply, no);
    box.replaceChildren(...body, row);
    box.hidden = false;
  }

  private cancelPreset(): void {
    this.pendingPreset = undefined;
    this.renderPresetConfirm();
    this.fields.preset.show(this.activePreset);
  }

  /** `null` removes the setting from the plan (the default applies again). */
  private setTraining(key: TrainingKey, value: unknown): void {
    this.edit({ kind: 'setTraining', key, value });
  }

  private select(id: string, label: string, onChange: (value: string, sel: VscodeSingleSelect) => void, fixed?: readonly Choice[]): ChoiceField {
    const wrap = el('div', 'field');
    const lab = document.createElement('vscode-label');
    lab.textContent = label;
    lab.htmlFor = `field-${id}`;
    const sel = document.createElement('vscode-single-select');
    sel.id = `field-${id}`;
    sel.label = label;
    let shown = '';
    const setOptions = (options: readonly Choice[], value?: string): void => {
      const key = JSON.stringify(options);
      if (key === shown) return;
      shown = key;
      sel.replaceChildren(
        ...options.map((o) => {
          const opt = document.createElement('vscode-option');
          opt.value = o.value;
          opt.textContent = o.label;
          if (o.description !== undefined) opt.description = o.description;
          // new options are read by the select after this task: the one to show says so itself
          if (value !== undefined && o.value === value) opt.selected = true;
          return opt;
        }),
      );
    };
    if (fixed) setOptions(fixed);
    sel.addEventListener('change', () => onChange(sel.value, sel));
    wrap.append(lab, sel);
    return {
      element: wrap,
      show(value, options) {
        if (options) setOptions(options, value);
        // only a new value re-renders the select (and each of its renders measures the page)
        if (sel.value !== value) sel.value = value;
      },
    };
  }

  private numberField(id: string, label: string, fallback: number | undefined, check: FieldCheck, commit: (v: number | null) => void): NumberField {
    const wrap = el('div', 'field');
    const lab = document.createElement('vscode-label');
    lab.textContent = label;
    lab.htmlFor = `field-${id}`;
    const field = document.createElement('vscode-textfield');
    field.id = `field-${id}`;
    field.label = label;
    field.placeholder = fallback === undefined ? 'default' : `${formatNumber(fallback)} (default)`;
    let committed = '';
    let hint: string | undefined;
    const apply = (): void => {
      const text = field.value.trim();
      if (text === committed) return;
      if (text === '') {
        field.invalid = false;
        committed = text;
        commit(null);
        return;
      }
      const v = parseNumber(text);
      const problem = v === undefined ? 'not a number' : check(v);
      field.invalid = problem !== undefined;
      field.title = problem !== undefined ? `${label} ${problem}` : (hint ?? '');
      if (v === undefined || problem !== undefined) return;
      committed = text;
      commit(v);
    };
    field.addEventListener('change', apply);
    field.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') apply();
      else if (e.key === 'Escape') {
        field.value = committed;
        field.invalid = false;
      }
    });
    wrap.append(lab, field);
    return {
      element: wrap,
      show(value, nextHint) {
        hint = nextHint;
        const text = value === undefined ? '' : String(value);
        // a field being typed in keeps its text: Enter or leaving it still applies it
        const typing = document.activeElement === field && field.value !== committed;
        committed = text;
        if (typing) return;
        if (field.value !== text) field.value = text;
        if (field.invalid) field.invalid = false;
        if (field.title !== (hint ?? '')) field.title = hint ?? '';
      },
    };
  }

  // ---- tree --------------------------------------------------------------------------------------

  private renderTree(): void {
    const tree = this.derived.tree;
    this.els.treeBox.hidden = tree === undefined;
    if (!tree) return;
    const frozen = tree.groups.filter((g) => g.frozen).length;
    const n = (count: number, what: string): string => `${count} ${what}${count === 1 ? '' : 's'}`;
    const parts = [n(tree.groups.length, 'group'), n(tree.layerCount, 'layer'), `base LR ${formatNumber(tree.baseLr)}`];
    if (frozen > 0) parts.push(n(frozen, 'frozen group'));
    // said, not silent: the layers the hidden implicit group holds
    if (tree.hiddenLayerCount > 0) parts.push(`${n(tree.hiddenLayerCount, 'layer')} without weights in no group, not shown`);
    this.els.treeSummary.textContent = `${parts.join(' · ')} — bottom (input) to top (output)`;
    this.tree.render(tree, this.expanded);
    this.showFilterCount(this.tree.setFilter(this.els.filter.value));
    this.showTreeCollapsed();
  }

  private applyFilter(): void {
    this.showFilterCount(this.tree.setFilter(this.els.filter.value));
  }

  private showFilterCount(c: { matches: number; total: number }): void {
    const on = this.els.filter.value.trim() !== '';
    this.els.filterCount.textContent = on ? `${c.matches} of ${c.total} layer${c.total === 1 ? '' : 's'} match${c.matches === 0 ? ' — Esc clears' : ''}` : '';
    this.els.treeBox.classList.toggle('filtered', on);
  }

  private setTreeCollapsed(collapsed: boolean): void {
    if (this.treeCollapsed === collapsed) return;
    this.treeCollapsed = collapsed;
    this.showTreeCollapsed();
    this.persist();
  }

  private showTreeCollapsed(): void {
    const { fold, treeBox } = this.els;
    treeBox.classList.toggle('collapsed', this.treeCollapsed);
    fold.textContent = this.treeCollapsed ? '▸ Show layers' : '▾ Hide layers';
    fold.setAttribute('aria-expanded', String(!this.treeCollapsed));
    fold.title = this.treeCollapsed ? 'Show the layer tree' : 'Fold the layer tree away: the charts move up';
  }

  /** A new run or suggestion began: the header stops showing how the last run ended. */
  private supersede(): void {
    const s = this.status.state;
    if (s === 'failed' || s === 'succeeded' || s === 'cancelled') this.supersededStatus = JSON.stringify(this.status);
    this.renderRunControls();
  }

  /** The status the header shows: the run's, unless a newer run or suggestion made it old news. */
  private headerStatus(): TrainingStatus {
    if (this.supersededStatus !== undefined && JSON.stringify(this.status) === this.supersededStatus) {
      return { state: 'idle' };
    }
    this.supersededStatus = undefined;
    return this.status;
  }

  // ---- charts ------------------------------------------------------------------------------------

  private renderRates(): void {
    const box = this.els.rates;
    box.replaceChildren();
    const s = this.state;
    const res = this.derived.resolution;
    if (!s?.plan || !res) {
      box.append(el('p', 'hint', 'The charts appear when the plan and its model can be read.'));
      return;
    }
    const layers = res.groups
      .flatMap((g) => g.layers.map((l) => ({ l, g })))
      .sort((a, b) => a.l.depth - b.l.depth)
      .filter(({ l }) => l.params.some((p) => p.trainable));
    const drawn = new Set(layers.map(({ g }) => g.name));
    const colors = groupColors(res);
    const colorOf = (group: string, i: number): string => colors.get(group) ?? colorClass(i);
    const legend = res.groups.filter((g) => drawn.has(g.name)).map((g) => ({ label: g.name, color: colorOf(g.name, g.index) }));
    const grid = el('div', 'chart-grid');
    box.append(grid);
    const depth: BarChartSpec = {
      title: 'Effective learning rate by depth',
      xLabel: 'layer (input → output)',
      yLabel: 'LR (log)',
      legend,
      bars: layers.map(({ l, g }) => ({
        label: l.name,
        value: res.baseLr * l.lrMult,
        color: colorOf(g.name, g.index),
        hollow: l.frozen,
        detail: `${formatNumber(res.baseLr * l.lrMult)} (×${formatNumber(l.lrMult)}, ${g.name}${l.frozen ? ', frozen' : ''})`,
        fields: { group: g.name, lrMult: l.lrMult, frozen: String(l.frozen) },
      })),
      emptyText: 'The model has no trainable layers.',
      csv: { label: 'layer', value: 'effective LR', fields: ['group', 'lrMult', 'frozen'] },
    };
    grid.append(barChart(depth, this.saveChart));
    const frozenLayers = layers.filter(({ l }) => l.frozen).length;

    let steps = s.stepsPerEpoch;
    const note = el('p', 'hint');
    try {
      const stages = resolveStages(s.plan, res, s.planFile);
      const assumed = steps === undefined || steps < 1;
      if (assumed) steps = ASSUMED_STEPS_PER_EPOCH;
      const timeline = buildTimeline(stages, steps ?? ASSUMED_STEPS_PER_EPOCH);
      const preview = lrPreview(s.plan, res, timeline);
      // a group that never trains (no weights, or frozen by the plan) has no curve to draw
      const weighted = new Set(res.groups.filter((g) => g.layers.some((l) => l.params.some((p) => p.trainable))).map((g) => g.name));
      const series: LineSeries[] = preview.groups
        .map((name, gi) => ({
          label: name,
          color: colorOf(name, gi),
          points: preview.steps.map((t, i) => [t, preview.lrs[i]?.[gi] ?? NaN] as const),
        }))
        .filter((s) => weighted.has(s.label) && s.points.some(([, lr]) => lr > 0));
      const markers: VerticalMarker[] = timeline.stages
        .filter((st) => st.index > 0)
        .map((st) => ({ x: st.startStep, label: `stage ${st.index + 1}`, kind: 'stage' }));
      grid.append(
        this.charts.show('rates.schedule', {
          title: 'Schedule preview: each group’s learning rate',
          xLabel: 'optimizer step',
          yLabel: 'LR (log)',
          yLog: true,
          yFloorRatio: 1e4,
          xEnd: timeline.totalSteps,
          series,
          markers,
          emptyText: 'No steps to preview.',
        }),
      );
      note.textContent = `${timeline.stages.length} stage${timeline.stages.length === 1 ? '' : 's'} · ${timeline.totalEpochs} epochs · ${timeline.totalSteps} steps${assumed ? ` (assuming ${ASSUMED_STEPS_PER_EPOCH} steps per epoch: the dataset size is not known yet)` : ` (${steps} per epoch)`}. Gaps: the group is frozen in that stage.${frozenLayers > 0 ? ` Outlined bars: ${frozenLayers} frozen layer${frozenLayers === 1 ? '' : 's'} (their rate does not apply).` : ''}`;
    } catch (e) {
      note.textContent = `No schedule preview: ${e instanceof Error ? e.message : String(e)}`;
      note.classList.add('error');
    }
    box.append(note);
  }

  /** Draws the tabs' charts at the next frame, once however many messages asked for them. */
  private queueRedraw(...tabs: PanelTab[]): void {
    const idle = this.dirty.size === 0;
    for (const t of tabs) this.dirty.add(t);
    if (!idle) return;
    requestAnimationFrame(() => {
      const todo = [...this.dirty];
      this.dirty.clear();
      for (const t of todo) {
        if (t === 'rates') this.renderRates();
        else if (t === 'training') this.renderTraining();
        else this.renderLrFinder();
      }
    });
  }

  /**
   * The Training tab, redrawn every frame while a run streams: each part is built again only when
   * what it shows changed, and the tab's children are replaced only when the list of parts did —
   * so a button (an advice's Apply) keeps the focus and a click that spans a redraw lands.
   */
  private renderTraining(): void {
    const parts: HTMLElement[] = [];
    // the node kept under `name` while `key` (what it shows) is the same, else a new one
    const kept = (name: string, key: string, build: () => HTMLElement | undefined): HTMLElement | undefined => {
      const before = this.trainingParts.get(name);
      const node = before !== undefined && before.key === key ? before.node : build();
      if (node === undefined) this.trainingParts.delete(name);
      else this.trainingParts.set(name, { key, node });
      return node;
    };
    const part = (name: string, key: string, build: () => HTMLElement | undefined): void => {
      const node = kept(name, key, build);
      if (node !== undefined) parts.push(node);
    };
    const run = this.run;
    if (run === undefined || run.isEmpty) {
      part('empty', '', () => el('p', 'hint', 'Live curves appear here while a run trains; a finished run’s curves stay here afterwards.'));
      this.showTrainingParts(parts);
      return;
    }
    const colors = this.derived.resolution === undefined ? new Map<string, string>() : groupColors(this.derived.resolution);
    const colorOf = (group: string, i: number): string => colors.get(group) ?? colorClass(i);

    const report = run.report;
    if (report) part('summary', `${report.planFile}|${report.finishedAt}|${report.stopped}`, () => reportSummary(report));
    const res = this.derived.resolution;
    const advice = run.advice(res?.groups ?? []);
    const planIndexOf = (group: string): number | undefined => res?.groups.find((g) => g.name === group)?.planIndex;
    part('advice', JSON.stringify([advice, advice.map((a) => (a.kind === 'updateRatio' ? planIndexOf(a.group) : undefined))]), () =>
      adviceList(advice, planIndexOf, (groupIndex, lrMult) => this.edit({ kind: 'setGroup', groupIndex, key: 'lrMult', value: lrMult })),
    );
    const p = run.progress;
    if (p && run.report === undefined) {
      const eta = p.etaSeconds > 0 ? ` · about ${Math.ceil(p.etaSeconds)} s left` : '';
      const text = `Step ${p.step}/${p.totalSteps} · epoch ${p.epoch}/${p.epochs}${p.stages > 1 ? ` · stage ${p.stage}/${p.stages}` : ''}${eta}`;
      part('progress', text, () => el('p', 'hint', text));
    }
    const stepMarkers: VerticalMarker[] = run.stageStarts
      .filter((st) => st.stage > 1)
      .map((st) => ({ x: st.step, label: `stage ${st.stage}`, kind: 'stage' }));
    const epochMarkers: VerticalMarker[] = run.stageStarts
      .filter((st) => st.stage > 1)
      .map((st) => ({ x: st.epoch - 0.5, label: `stage ${st.stage}`, kind: 'stage' }));
    const charts: HTMLElement[] = [];
    const grid = { append: (node: HTMLElement): void => void charts.push(node) };
    // the step axes end at the run's planned steps while it trains, at its last step once it ended
    const stepEnd = run.report === undefined ? p?.totalSteps : run.stepLoss[run.stepLoss.length - 1]?.[0];
    const stepEpoch = { name: 'epoch', of: (step: number) => run.epochAt(step) };
    if (run.stepLoss.length > 0) {
      grid.append(
        this.charts.show('training.stepLoss', {
          title: 'Training loss per step',
          xLabel: 'step',
          yLabel: 'loss',
          yLogToggle: true,
          xDetail: stepEpoch,
          xEnd: stepEnd,
          series: [{ label: 'train loss', color: 'c0', points: run.stepLoss }],
          markers: stepMarkers,
        }),
      );
    }
    const epochs = run.epochs;
    const byEpoch = (f: (e: (typeof epochs)[number]) => number | undefined): Array<readonly [number, number]> =>
      epochs.flatMap((e) => {
        const v = f(e);
        return v === undefined ? [] : [[e.epoch, v] as const];
      });
    const intTicks = (v: number): string => (Number.isInteger(v) ? String(v) : '');
    const epochEnd = run.report === undefined ? p?.epochs : epochs[epochs.length - 1]?.epoch;
    if (epochs.length > 0) {
      grid.append(
        this.charts.show('training.epochLoss', {
          title: 'Loss per epoch',
          xLabel: 'epoch',
          yLabel: 'loss',
          yLogToggle: true,
          xFormat: intTicks,
          xEnd: epochEnd,
          series: [
            { label: 'train loss', color: 'c0', points: byEpoch((e) => e.trainLoss), dots: true },
            { label: 'validation loss', color: 'c1', points: byEpoch((e) => e.valLoss), dots: true, dashed: true },
          ].filter((s) => s.points.length > 0),
          markers: epochMarkers,
        }),
      );
      const acc = [
        { label: 'train accuracy', color: 'c2', points: byEpoch((e) => e.trainAccuracy), dots: true },
        { label: 'validation accuracy', color: 'c3', points: byEpoch((e) => e.valAccuracy), dots: true, dashed: true },
      ].filter((s) => s.points.length > 0);
      if (acc.length > 0) {
        grid.append(this.charts.show('training.epochAccuracy', { title: 'Accuracy per epoch', xLabel: 'epoch', yLabel: 'accuracy', xFormat: intTicks, xEnd: epochEnd, series: acc, markers: epochMarkers }));
      }
    }
    if (run.groupLrs.size > 0) {
      const perStep = run.groupLrAxis === 'step';
      grid.append(
        this.charts.show('training.groupLr', {
          title: `Learning rate per group${perStep ? '' : ' (end of each epoch)'}`,
          xLabel: perStep ? 'step' : 'epoch',
          yLabel: 'LR (log)',
          yLog: true,
          yFloorRatio: 1e4,
          ...(perStep ? { xDetail: stepEpoch, xEnd: stepEnd } : { xFormat: intTicks, xEnd: epochEnd }),
          series: [...run.groupLrs].map(([group, points], i) => ({ label: group, color: colorOf(group, i), points, dots: !perStep })),
          markers: perStep ? stepMarkers : epochMarkers,
        }),
      );
    }
    const d = run.diagnostics;
    if (d && d.layers.length > 0) {
      const groups = [...new Set(d.layers.map((l) => l.group))];
      const ratios = kept('ratios', JSON.stringify([d.step, d.layers, [...colors]]), () => {
        const spec: BarChartSpec = {
          title: `Update-to-weight ratio per layer${d.step !== undefined ? ` (step ${d.step})` : ' (last measured)'}`,
          xLabel: 'layer (input → output)',
          yLabel: '‖Δθ‖/‖θ‖ (log)',
          legend: groups.map((g, i) => ({ label: g, color: colorOf(g, i) })),
          bars: d.layers.map((l) => ({
            label: l.layer,
            value: l.updateRatio,
            color: colorOf(l.group, groups.indexOf(l.group)),
            detail: `ratio ${formatNumber(l.updateRatio)}, ‖g‖ ${formatNumber(l.gradNorm)} (${l.group})`,
            fields: { group: l.group, gradNorm: l.gradNorm },
          })),
          emptyText: 'No layer was updated in the measured step.',
          csv: { label: 'layer', value: 'update ratio', fields: ['group', 'gradNorm'] },
        };
        return barChart(spec, this.saveChart);
      });
      if (ratios !== undefined) grid.append(ratios);
    }
    const chartGrid = kept('grid', '', () => el('div', 'chart-grid'))!;
    placeChildren(chartGrid, charts);
    parts.push(chartGrid);
    const notes = run.messages.filter((m) => m.level !== 'info').slice(-5);
    part('notes', JSON.stringify(notes.map((m) => [m.level, m.message])), () => {
      if (notes.length === 0) return undefined;
      const ul = el('ul', 'run-log');
      for (const m of notes) ul.append(el('li', m.level, m.message));
      return ul;
    });
    this.showTrainingParts(parts);
  }

  private showTrainingParts(parts: readonly HTMLElement[]): void {
    placeChildren(this.els.training, parts);
  }

  private renderLrFinder(): void {
    const box = this.els.lrFinder;
    box.replaceChildren();
    const o = this.lrOutcome;
    if (o === undefined) {
      const busy = (this.status.state === 'running' || this.status.state === 'starting') && this.status.job === 'findLr';
      box.append(
        el(
          'p',
          'hint',
          busy
            ? 'The LR range test is running…'
            : 'Find LR sweeps the base learning rate over a few hundred steps, keeping the ratios between groups, and suggests a rate. Its curve appears here.',
        ),
      );
      return;
    }
    const what = o.mode === 'global' ? 'base LR (group ratios kept)' : `LR of group “${o.group ?? '?'}”`;
    // the other methods' suggestions, faint; methods that agree share one line
    const others = new Map<number, string[]>();
    for (const [method, v] of Object.entries(o.suggestions)) {
      if (v === undefined || method === o.method || v === o.suggested) continue;
      others.set(v, [...(others.get(v) ?? []), method]);
    }
    const markers: VerticalMarker[] = [{ x: o.suggested, label: `${o.method} ${formatNumber(o.suggested)}`, kind: 'suggestion' }];
    for (const [v, methods] of others) markers.push({ x: v, label: `${methods.join(' = ')} ${formatNumber(v)}`, kind: 'other' });
    box.append(
      this.charts.show('lrFinder.curve', {
        title: `LR range test: loss vs ${what}`,
        fileStem: 'lr-range-test',
        xLabel: 'learning rate (log)',
        yLabel: 'loss',
        yLogToggle: true,
        xLog: true,
        yClipQuantile: 0.95,
        series: [
          { label: 'loss', color: 'c5', points: o.points.map((p) => [p.lr, p.loss] as const) },
          { label: 'smoothed', color: 'c0', points: o.points.map((p) => [p.lr, p.smoothed] as const) },
        ],
        markers,
      }),
    );
    const row = el('div', 'apply-row');
    const text = el('p', 'lr-suggestion', `Suggested: ${o.apply.field} = ${formatNumber(o.apply.value)} (${o.method}${o.stoppedEarly ? ', the sweep stopped when the loss diverged' : ''}).`);
    const apply = button(`Apply ${o.apply.field} = ${formatNumber(o.apply.value)}`, () => this.command('applyLr'));
    apply.classList.add('apply-lr');
    apply.disabled = this.status.state === 'running' || this.status.state === 'starting';
    row.append(text, apply);
    box.append(row);
  }
}

function derive(state: PanelState): Derived {
  if (state.plan === undefined || state.model === undefined) return {};
  try {
    const resolution = resolveGroups(state.model, state.plan, state.planFile);
    return { resolution, tree: buildTreeModel(resolution, state.plan) };
  } catch (e) {
    return { resolveProblem: e instanceof Error ? e.message : String(e) };
  }
}

function reportSummary(r: RunReport): HTMLElement {
  const box = el('div', 'report-summary');
  const last = r.epochs[r.epochs.length - 1];
  const parts = [
    `Run ${r.stopped === 'completed' ? 'completed' : r.stopped === 'earlyStopping' ? 'stopped early' : r.stopped === 'cancelled' ? 'was stopped' : 'stopped: the loss was not finite'}`,
    `${r.epochs.length} epoch${r.epochs.length === 1 ? '' : 's'} on ${r.backend.name}`,
  ];
  if (last?.valLoss !== undefined) parts.push(`final validation loss ${formatNumber(last.valLoss)}`);
  if (r.best?.valAccuracy !== undefined) parts.push(`best validation accuracy ${formatNumber(r.best.valAccuracy)} (epoch ${r.best.epoch})`);
  box.append(el('p', '', `${parts.join(' · ')}.`));
  if (r.test !== undefined) {
    const t = r.test;
    const one = (m: { loss: number; accuracy?: number }): string => (m.accuracy !== undefined ? `accuracy ${formatNumber(m.accuracy)}, loss ${formatNumber(m.loss)}` : `loss ${formatNumber(m.loss)}`);
    box.append(el('p', '', `Test (data.test): final weights ${one(t.final)}${t.best ? ` · best epoch ${t.best.epoch}: ${one(t.best)}` : ''}.`));
  }
  const fc = r.frozenCheck;
  const check = el(
    'p',
    fc.unchanged ? 'ok' : 'error',
    fc.unchanged
      ? fc.weightsChecked === 0
        ? 'Frozen weights: none stayed frozen for the whole run, so none to check.'
        : `Frozen weights checked: ${fc.weightsChecked} unchanged, bit for bit.`
      : `Frozen weights changed: ${fc.changed.slice(0, 5).join(', ')}${fc.changed.length > 5 ? ' …' : ''}`,
  );
  box.append(check);
  if (r.message !== undefined) box.append(el('p', 'hint', r.message));
  return box;
}

/**
 * Makes `nodes` the children of `parent`, in order, without taking out a child that stays:
 * removing a node, even to put it back at once, takes the focus from inside it.
 */
function placeChildren(parent: HTMLElement, nodes: readonly Element[]): void {
  const keep = new Set(nodes);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  nodes.forEach((node, i) => {
    const at = parent.children[i];
    if (at !== node) parent.insertBefore(node, at ?? null);
  });
}
