/**
 * What each edit asked for by the tree or the panel does to the plan's text. Pure (no `vscode`):
 * every request becomes new text through the comment-preserving edits of core/plan-edit.ts, and
 * the host turns old → new text into one minimal WorkspaceEdit. Keeping the text as the only
 * state means an edit made by hand and one made by a click go through the same refresh.
 */
import { LayerwiseError, assertNever } from '../core/errors.ts';
import type { LrFinderOutcome } from '../core/lr-finder.ts';
import type { ModelInfo } from '../core/model-info.ts';
import { moveLayerToGroup, setDataField, setGroupField, setLayerOverride, setPlanValue, setTrainingField, type EditPath } from '../core/plan-edit.ts';
import type { OptimizerName, Plan, ScheduleSpec } from '../core/plan.ts';
import { resolveGroups } from '../core/groups.ts';
import { getPreset } from '../core/presets.ts';
import { freezeChange, type NodeTarget } from '../core/tree-model.ts';
import { parsePlanText } from '../core/validate.ts';
import type { PlanEditRequest, TrainingKey } from '../protocol/webview.ts';

/**
 * The edit a tree checkbox toggle asks for (`trains` = the new checked state), or undefined when
 * the node has no freeze setting of its own (the implicit group, a parameter) or the plan's
 * groups cannot be resolved.
 */
export function freezeRequest(plan: Plan, model: ModelInfo, target: NodeTarget, trains: boolean): PlanEditRequest | undefined {
  let resolution;
  try {
    resolution = resolveGroups(model, plan);
  } catch {
    return undefined;
  }
  const change = freezeChange(target, trains, resolution);
  if (change === undefined) return undefined;
  return change.kind === 'group'
    ? { kind: 'setGroup', groupIndex: change.planIndex, key: 'frozen', value: change.frozen }
    : { kind: 'setLayer', layer: change.layer, key: 'frozen', value: change.frozen };
}

export interface TextChange {
  offset: number;
  length: number;
  content: string;
}

/** The one replacement that turns `before` into `after` (common prefix and suffix kept), or undefined when equal. */
export function minimalChange(before: string, after: string): TextChange | undefined {
  if (before === after) return undefined;
  let start = 0;
  const max = Math.min(before.length, after.length);
  while (start < max && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let end = 0;
  while (end < max - start && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++;
  // never split a CRLF or a surrogate pair between the kept and the replaced part
  while (start > 0 && (isLowSurrogate(before.charCodeAt(start)) || (before[start - 1] === '\r' && before[start] === '\n'))) start--;
  return { offset: start, length: before.length - end - start, content: after.slice(start, after.length - end) };
}

const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;

export interface PlanChange {
  path: EditPath;
  /** `undefined` removes the member. */
  value: unknown;
}

/**
 * The smallest set of member-level changes from one plan value to another: objects are compared
 * member by member and same-length lists element by element, so comments on everything that did
 * not change stay where they are. Lists whose length changed are replaced whole.
 */
export function structuralChanges(before: unknown, after: unknown, path: EditPath = []): PlanChange[] {
  if (deepEqual(before, after)) return [];
  if (isRecord(before) && isRecord(after)) {
    const out: PlanChange[] = [];
    for (const key of Object.keys(before)) {
      if (!Object.hasOwn(after, key) || after[key] === undefined) {
        if (before[key] !== undefined) out.push({ path: [...path, key], value: undefined });
      }
    }
    for (const [key, value] of Object.entries(after)) {
      if (value === undefined) continue;
      if (!Object.hasOwn(before, key)) out.push({ path: [...path, key], value });
      else out.push(...structuralChanges(before[key], value, [...path, key]));
    }
    return out;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length && path.length > 0) {
    return after.flatMap((v, i) => structuralChanges(before[i], v, [...path, i]));
  }
  if (path.length === 0) throw new Error('a plan must stay an object');
  return [{ path, value: after }];
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Applies member-level changes one after another (each on the text the previous one left). */
export function applyChanges(text: string, changes: readonly PlanChange[], file?: string): string {
  return changes.reduce((t, c) => setPlanValue(t, c.path, c.value, { file }), text);
}

export interface RequestContext {
  /** The plan file, for messages. */
  file: string;
  /** Needed by presets that look at the model's layers. */
  model?: ModelInfo;
}

/** The plan's text after one edit request. Throws a LayerwiseError the host shows to the user. */
export function textAfterRequest(text: string, request: PlanEditRequest, ctx: RequestContext): string {
  switch (request.kind) {
    case 'setLayer':
      return setLayerOverride(text, request.layer, request.key, request.value ?? undefined);
    case 'setGroup':
      return setGroupField(text, request.groupIndex, request.key, request.value ?? undefined);
    case 'setTraining':
      return setTraining(text, request.key, request.value);
    case 'applyPreset': {
      if (ctx.model === undefined) {
        throw new LayerwiseError('the model is not loaded yet (or cannot be loaded); a preset needs its layers', { file: ctx.file, field: 'model' });
      }
      const plan = parsePlanText(text, ctx.file);
      const next = getPreset(request.preset).apply(plan, ctx.model);
      return applyChanges(text, structuralChanges(plan, next), ctx.file);
    }
    case 'moveLayer':
      return moveLayerToGroup(text, request.layer, request.toGroupIndex);
    case 'setData':
      return setDataField(text, request.field, request.value ?? undefined, ctx.file);
    default:
      return assertNever(request, 'plan edit');
  }
}

const OPTIMIZERS: readonly string[] = ['adamw', 'adam', 'sgd'];
const SCHEDULES: readonly string[] = ['constant', 'linear', 'cosine', 'stlr', 'onecycle'];

/** The panel sends untyped values for training fields; check them before they reach the file. */
function setTraining(text: string, key: TrainingKey, value: unknown): string {
  const field = `training.${key}`;
  if (value === null || value === undefined) return setTrainingField(text, key, undefined);
  const bad = (what: string) => new LayerwiseError(`must be ${what} (got ${JSON.stringify(value)})`, { field });
  switch (key) {
    case 'lr':
      if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw bad('a number > 0');
      return setTrainingField(text, key, value);
    case 'weightDecay':
      if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) throw bad('a number ≥ 0');
      return setTrainingField(text, key, value);
    case 'epochs':
    case 'batchSize':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw bad('a whole number ≥ 1');
      return setTrainingField(text, key, value);
    case 'optimizer':
      if (typeof value !== 'string' || !OPTIMIZERS.includes(value)) throw bad(`one of ${OPTIMIZERS.join(', ')}`);
      return setTrainingField(text, key, value as OptimizerName);
    case 'schedule': {
      if (!isRecord(value) || typeof value['type'] !== 'string' || !SCHEDULES.includes(value['type'])) {
        throw bad(`a schedule object with "type" one of ${SCHEDULES.join(', ')}`);
      }
      // member by member, so a comment on the schedule's other settings survives a type change
      const before = parsePlanTextOrEmpty(text, field).training?.schedule;
      if (before === undefined) return setTrainingField(text, key, value as unknown as ScheduleSpec);
      return applyChanges(text, structuralChanges(before, value, ['training', 'schedule']));
    }
    default:
      return assertNever(key, 'training field');
  }
}

function parsePlanTextOrEmpty(text: string, field: string): Plan {
  try {
    return parsePlanText(text, field);
  } catch {
    return { model: '' };
  }
}

/** Accepting an LR range test's suggestion: the field its outcome names (`training.lr` or a group's multiplier). */
export function textWithSuggestedLr(text: string, outcome: Pick<LrFinderOutcome, 'apply'>, file?: string): string {
  return setPlanValue(text, outcome.apply.path, outcome.apply.value, { file });
}
