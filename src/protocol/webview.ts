/**
 * Messages between the extension host and the plan-editor webview. The webview posts nothing
 * but `ready` until the host has answered it with `state`; the host posts nothing before
 * `ready`. Every message is checked with the guards below on arrival.
 */
import type { InterruptedRun } from '../core/interrupted-runs.ts';
import type { LrFinderOutcome } from '../core/lr-finder.ts';
import type { ModelInfo } from '../core/model-info.ts';
import { DATA_FIELDS, type DataField, type Plan } from '../core/plan.ts';
import type { RunReport, TrainEvent } from '../core/progress.ts';
import type { JobKind, TrainingStatus } from '../core/status.ts';
import type { AugmentPreview } from './worker.ts';
import { TUNE_METHODS, type TuneMethod, type TuneResult } from '../core/tune.ts';
import { isTuneResult } from './worker.ts';
import { isObj } from './guards.ts';

/** One status value drives the status bar and the panel's run controls (defined in src/core/status.ts). */
export type { JobKind, TrainingStatus } from '../core/status.ts';

export interface PlanProblemInfo {
  message: string;
  field?: string;
}

export interface PresetInfo {
  id: string;
  label: string;
  description: string;
}

/** "Suggest Multipliers" for the panel's plan: nothing yet, measuring, or a suggestion to apply or discard. */
export type SuggestionState = { state: 'none' } | { state: 'running'; method: TuneMethod } | { state: 'ready'; result: TuneResult };

export interface PanelState {
  /** Absolute path (display) and URI string (identity) of the plan the panel edits. */
  planFile: string;
  planUri: string;
  /** The plan as parsed from the editor's current text; undefined when it does not parse. */
  plan?: Plan;
  problems: PlanProblemInfo[];
  /** The model's layers and weights (with the plan's new head), when it could be read. */
  model?: ModelInfo;
  modelProblem?: string;
  /** Optimizer steps per epoch (from the dataset size), for the schedule preview. */
  stepsPerEpoch?: number;
  /** A few training images under the plan's data.augment, when it is on. */
  augmentPreview?: AugmentPreview;
  trusted: boolean;
  presets: PresetInfo[];
  status: TrainingStatus;
  /** The last finished run's report and LR range test, to draw their curves after a reload. */
  lastReport?: RunReport;
  lastLrFinder?: LrFinderOutcome;
  /** The newest run of this plan that stopped or was cut off and can be resumed (core/interrupted-runs.ts). */
  interrupted?: InterruptedRun;
  suggestion?: SuggestionState;
}

export type HostToWebview =
  | { type: 'state'; state: PanelState }
  | { type: 'status'; status: TrainingStatus }
  | { type: 'trainEvent'; event: TrainEvent }
  | { type: 'runStarted'; job: JobKind }
  | { type: 'report'; report: RunReport }
  | { type: 'lrResult'; outcome: LrFinderOutcome }
  | { type: 'suggestion'; suggestion: SuggestionState };

export type LayerKey = 'lrMult' | 'frozen' | 'weightDecay';
export type TrainingKey = 'lr' | 'optimizer' | 'epochs' | 'batchSize' | 'weightDecay' | 'schedule';

export type PlanEditRequest =
  | { kind: 'setLayer'; layer: string; key: LayerKey; value: number | boolean | null }
  | { kind: 'setGroup'; groupIndex: number; key: LayerKey; value: number | boolean | null }
  | { kind: 'setTraining'; key: TrainingKey; value: unknown }
  | { kind: 'applyPreset'; preset: string }
  | { kind: 'moveLayer'; layer: string; toGroupIndex: number }
  /** One image-folder setting under `data`; `null` removes it (the default applies). */
  | { kind: 'setData'; field: DataField; value: unknown };

export type PanelCommand =
  | 'train'
  | 'resume'
  | 'findLr'
  | 'stop'
  | 'applyLr'
  | 'openReport'
  | 'openPlanText'
  | 'suggestMultipliers'
  | 'applySuggestion'
  | 'discardSuggestion';

/** A chart's curves or picture, for the host to save where the user says. */
export interface ChartExport {
  /** The name the save dialog proposes, e.g. `training-loss-per-step.csv`. */
  fileName: string;
  format: ChartExportFormat;
  /** The file's text (csv, svg) or its bytes in base64 (png). */
  content: string;
}
export type ChartExportFormat = 'csv' | 'svg' | 'png';
export const CHART_EXPORT_FORMATS: readonly ChartExportFormat[] = ['csv', 'svg', 'png'];

export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'edit'; edit: PlanEditRequest }
  | { type: 'command'; command: PanelCommand }
  | { type: 'persist'; state: unknown }
  | { type: 'saveChart'; file: ChartExport };

/** A handler table the compiler checks for completeness: one entry per message type. */
export type Handlers<M extends { type: string }> = { [K in M['type']]: (m: Extract<M, { type: K }>) => void | Promise<void> };

// ---- runtime guards -------------------------------------------------------------------------

const LAYER_KEYS: readonly string[] = ['lrMult', 'frozen', 'weightDecay'];
const TRAINING_KEYS: readonly string[] = ['lr', 'optimizer', 'epochs', 'batchSize', 'weightDecay', 'schedule'];
const COMMANDS: readonly string[] = ['train', 'resume', 'findLr', 'stop', 'applyLr', 'openReport', 'openPlanText', 'suggestMultipliers', 'applySuggestion', 'discardSuggestion'];

export function isSuggestionState(x: unknown): x is SuggestionState {
  if (!isObj(x)) return false;
  switch (x['state']) {
    case 'none':
      return true;
    case 'running':
      return (TUNE_METHODS as readonly unknown[]).includes(x['method']);
    case 'ready':
      return isTuneResult(x['result']);
    default:
      return false;
  }
}

function isLayerValue(key: unknown, v: unknown): boolean {
  if (v === null) return true;
  if (key === 'frozen') return typeof v === 'boolean';
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

export function isPlanEditRequest(x: unknown): x is PlanEditRequest {
  if (!isObj(x)) return false;
  switch (x['kind']) {
    case 'setLayer':
      return typeof x['layer'] === 'string' && LAYER_KEYS.includes(String(x['key'])) && isLayerValue(x['key'], x['value']);
    case 'setGroup':
      return Number.isInteger(x['groupIndex']) && (x['groupIndex'] as number) >= 0 && LAYER_KEYS.includes(String(x['key'])) && isLayerValue(x['key'], x['value']);
    case 'setTraining':
      return TRAINING_KEYS.includes(String(x['key'])) && 'value' in x;
    case 'applyPreset':
      return typeof x['preset'] === 'string';
    case 'moveLayer':
      return typeof x['layer'] === 'string' && Number.isInteger(x['toGroupIndex']) && (x['toGroupIndex'] as number) >= 0;
    case 'setData':
      return (DATA_FIELDS as readonly unknown[]).includes(x['field']) && 'value' in x;
    default:
      return false;
  }
}

/** A plain file name (no folder) with its format's extension; content as a string. */
export function isChartExport(x: unknown): x is ChartExport {
  if (!isObj(x)) return false;
  const format = x['format'];
  const name = x['fileName'];
  return (
    (CHART_EXPORT_FORMATS as readonly unknown[]).includes(format) &&
    typeof name === 'string' &&
    /^[^\\/:*?"<>|]{1,120}$/.test(name) &&
    name.endsWith(`.${String(format)}`) &&
    typeof x['content'] === 'string'
  );
}

export function isWebviewToHost(x: unknown): x is WebviewToHost {
  if (!isObj(x)) return false;
  switch (x['type']) {
    case 'ready':
      return true;
    case 'edit':
      return isPlanEditRequest(x['edit']);
    case 'command':
      return COMMANDS.includes(String(x['command']));
    case 'persist':
      return 'state' in x;
    case 'saveChart':
      return isChartExport(x['file']);
    default:
      return false;
  }
}

const STATUS_STATES: readonly string[] = ['idle', 'starting', 'running', 'succeeded', 'failed', 'cancelled'];

export function isHostToWebview(x: unknown): x is HostToWebview {
  if (!isObj(x)) return false;
  switch (x['type']) {
    case 'state':
      return isObj(x['state']) && typeof x['state']['planFile'] === 'string' && Array.isArray(x['state']['problems']);
    case 'status':
      return isObj(x['status']) && STATUS_STATES.includes(String(x['status']['state']));
    case 'trainEvent':
      return isObj(x['event']) && typeof x['event']['kind'] === 'string';
    case 'runStarted':
      return x['job'] === 'train' || x['job'] === 'findLr';
    case 'report':
      return isObj(x['report']) && Array.isArray(x['report']['epochs']);
    case 'lrResult':
      return isObj(x['outcome']) && Array.isArray(x['outcome']['points']);
    case 'suggestion':
      return isSuggestionState(x['suggestion']);
    default:
      return false;
  }
}

// ---- what the webview keeps across reloads ---------------------------------------------------

export type PanelTab = 'rates' | 'training' | 'lrFinder';
const PANEL_TABS: readonly string[] = ['rates', 'training', 'lrFinder'];

/**
 * What the webview stores with `vscode.setState` (VS Code hands it back after a reload; the custom
 * editor itself is restored by VS Code on its document, and `planUri` tells the page which plan
 * its saved view state belongs to).
 */
export interface PersistedPanelState {
  planUri: string;
  /** Names of the groups whose layers are shown. */
  expandedGroups: string[];
  tab: PanelTab;
  /** Layer-tree column widths (px) the user dragged, by column name. */
  columnWidths?: Record<string, number>;
  /** The layer tree folded away, so the charts sit under the settings. */
  treeCollapsed?: boolean;
}

export function isPersistedPanelState(x: unknown): x is PersistedPanelState {
  return (
    isObj(x) &&
    typeof x['planUri'] === 'string' &&
    Array.isArray(x['expandedGroups']) &&
    x['expandedGroups'].every((g) => typeof g === 'string') &&
    PANEL_TABS.includes(String(x['tab'])) &&
    (x['columnWidths'] === undefined || (isObj(x['columnWidths']) && Object.values(x['columnWidths']).every((w) => typeof w === 'number' && Number.isFinite(w) && w > 0))) &&
    (x['treeCollapsed'] === undefined || typeof x['treeCollapsed'] === 'boolean')
  );
}
