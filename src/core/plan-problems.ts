/**
 * Every problem of a plan file that the editor can underline, at the exact range of the field it
 * is about, with its severity and the Quick Fixes that repair it. Pure: the host turns these into
 * `vscode.Diagnostic`s and `CodeAction`s, the unit tests read them directly.
 *
 * Syntax errors are left out on purpose: the JSON language service reports them already (the plan
 * schema is contributed through `jsonValidation`), and reporting them twice doubled the Problems
 * list. What is here is what only Layerwise knows: schema and semantic checks, the resolver's
 * audit (patterns that match nothing or are shadowed, empty groups, unknown layer overrides,
 * `lrMult: 0` that is not frozen), and every check that would otherwise fail only when Train is
 * pressed (unfreezing stages that need more epochs, unknown groups in a stage, a model that cannot
 * be found or loaded).
 */
import { findNodeAtLocation, parseTree, type Node } from 'jsonc-parser';
import { isLayerwiseError, jsonPath } from './errors.ts';
import { resolveGroups } from './groups.ts';
import type { WarningCode } from './groups.types.ts';
import type { ModelInfo } from './model-info.ts';
import { setPlanValue } from './plan-edit.ts';
import type { Plan } from './plan.ts';
import { isWildcardPattern } from './patterns.ts';
import { resolveStages } from './timeline.ts';
import { closest, collectPlanProblems, parsePlanText, type PlanPath } from './validate.ts';

/** Error: the plan cannot run as written. Warning: it runs, but probably not as meant. */
export type ProblemSeverity = 'error' | 'warning';

export type ProblemCode = 'schema' | 'resolve' | 'stages' | 'model' | WarningCode;

/** A repair, as data; `fixedText` turns it into the plan's new text. */
export type PlanFix =
  | { kind: 'replaceString'; title: string; path: PlanPath; value: string }
  | { kind: 'renameKey'; title: string; path: PlanPath; to: string }
  | { kind: 'remove'; title: string; path: PlanPath }
  | { kind: 'freezeInsteadOfZeroLr'; title: string; owner: PlanPath }
  | { kind: 'createGroup'; title: string; name: string }
  | { kind: 'setModel'; title: string; value: string };

export interface PlanDiagnostic {
  /** The message the Problems panel shows, naming the field first. */
  message: string;
  /** The field as users read it (`groups[2].layers[1]`). */
  field: string;
  path: PlanPath;
  offset: number;
  length: number;
  severity: ProblemSeverity;
  code: ProblemCode;
  fixes: PlanFix[];
}

export interface PlanDiagnosticsInput {
  file: string;
  /** The model's description, when the worker has given it: the model-dependent checks need it. */
  model?: ModelInfo;
  /** Why the model (or its data) cannot be loaded, when it cannot, and the field to blame (`model` when unknown). */
  modelProblem?: { field?: string; problem: string };
  /** Model files found in the workspace, relative to the plan's folder (`models/x/model.json`). */
  modelCandidates?: readonly string[];
}

const WARNING_SEVERITY: Record<WarningCode, ProblemSeverity> = {
  unmatchedLayers: 'warning',
  emptyGroup: 'warning',
  patternMatchesNothing: 'warning',
  patternShadowed: 'warning',
  zeroLrNotFrozen: 'warning',
  frozenBatchNormStatistics: 'warning',
  unknownLayerOverride: 'warning',
  geometricLrMismatch: 'warning',
  allFrozen: 'warning',
  batchNormNotBatchNorm: 'warning',
};

export function planDiagnostics(text: string, input: PlanDiagnosticsInput): PlanDiagnostic[] {
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  const out: PlanDiagnostic[] = [];
  const problems = collectPlanProblems(text, input.file);
  for (const p of problems) {
    if (isSyntaxProblem(p)) continue;
    out.push({ message: withField(p.field, p.path, p.message), field: p.field, path: p.path, offset: p.offset, length: p.length, severity: 'error', code: 'schema', fixes: createGroupFix(p.message) });
  }
  // the deeper checks need a plan that parses and passes the schema
  if (problems.length > 0 || root === undefined) return out;
  let plan: Plan;
  try {
    plan = parsePlanText(text, input.file);
  } catch {
    return out;
  }
  /** Where a finding lands: its field when it names one, else `fallback`. */
  const at = (field: string | undefined, fallback: PlanPath): { path: PlanPath; offset: number; length: number; field: string } => {
    const path = (field === undefined ? undefined : parseFieldPath(field)) ?? fallback;
    return { path, field: jsonPath(path), ...rangeOfPath(root, path) };
  };

  if (input.modelProblem !== undefined) {
    const where = at(input.modelProblem.field ?? 'model', ['model']);
    const candidates = where.field === 'model' ? (input.modelCandidates ?? []).filter((c) => c !== plan.model).slice(0, 5) : [];
    out.push({
      ...where,
      message: withField(where.field, where.path, input.modelProblem.problem),
      severity: 'error',
      code: 'model',
      fixes: candidates.map((c): PlanFix => ({ kind: 'setModel', title: `Point "model" at ${c}`, value: c })),
    });
  }
  const model = input.model;
  if (model === undefined) return sortByOffset(out);
  const layerNames = model.layers.map((l) => l.name);

  let resolution;
  try {
    resolution = resolveGroups(model, plan, input.file);
  } catch (e) {
    if (!isLayerwiseError(e)) throw e;
    const where = at(e.field, []);
    out.push({ ...where, message: withField(where.field, where.path, e.problem), severity: 'error', code: 'resolve', fixes: [] });
    return sortByOffset(out);
  }
  for (const w of resolution.warnings) {
    const where = at(w.field, []);
    out.push({
      ...where,
      message: where.path.length === 0 ? w.message : `${where.field}: ${w.message}`,
      severity: WARNING_SEVERITY[w.code],
      code: w.code,
      fixes: fixesFor(w.code, where.path, plan, layerNames, w.layer),
    });
  }
  try {
    resolveStages(plan, resolution, input.file);
  } catch (e) {
    if (!isLayerwiseError(e)) throw e;
    const where = at(e.field, ['unfreeze']);
    out.push({ ...where, message: withField(where.field, where.path, e.problem), severity: 'error', code: 'stages', fixes: createGroupFix(e.problem) });
  }
  return sortByOffset(out);
}

/** A stage that names a group the plan does not have: offer to add it (empty, at the top). */
function createGroupFix(problem: string): PlanFix[] {
  const unknown = /^unknown group "([^"]+)"/.exec(problem)?.[1];
  return unknown === undefined ? [] : [{ kind: 'createGroup', title: `Create the group "${unknown}"`, name: unknown }];
}

function fixesFor(code: WarningCode, path: PlanPath, plan: Plan, layerNames: readonly string[], layer: string | undefined): PlanFix[] {
  switch (code) {
    case 'patternMatchesNothing': {
      const pattern = valueAt(plan, path);
      if (typeof pattern !== 'string') return [];
      const suggestion = suggestPattern(pattern, layerNames);
      return suggestion === undefined ? [] : [{ kind: 'replaceString', title: `Did you mean "${suggestion}"?`, path, value: suggestion }];
    }
    case 'patternShadowed':
      return [{ kind: 'remove', title: 'Remove the shadowed pattern', path }];
    case 'unknownLayerOverride': {
      if (layer === undefined) return [];
      const near = closest(layer, layerNames);
      return near === undefined ? [] : [{ kind: 'renameKey', title: `Did you mean "${near}"?`, path, to: near }];
    }
    case 'zeroLrNotFrozen':
    case 'frozenBatchNormStatistics':
      return path.at(-1) === 'lrMult' ? [{ kind: 'freezeInsteadOfZeroLr', title: 'Replace "lrMult": 0 by "frozen": true', owner: path.slice(0, -1) }] : [];
    case 'unmatchedLayers':
    case 'emptyGroup':
    case 'geometricLrMismatch':
    case 'allFrozen':
    case 'batchNormNotBatchNorm':
      return [];
  }
}

/**
 * The pattern the user most likely meant: a layer name close to a plain name, or for `prefix*`
 * the closest prefix that some layer has (`blok3_*` → `block3_*`). Only a pattern that matches
 * at least one layer is offered.
 */
export function suggestPattern(pattern: string, layerNames: readonly string[]): string | undefined {
  if (!isWildcardPattern(pattern)) return closest(pattern, layerNames);
  const star = pattern.indexOf('*');
  if (star !== pattern.length - 1 || /[?[\]/]/.test(pattern)) return undefined;
  const prefix = pattern.slice(0, -1);
  const prefixes = new Set<string>();
  for (const name of layerNames) {
    for (let n = Math.max(1, prefix.length - 2); n <= Math.min(name.length, prefix.length + 2); n++) prefixes.add(name.slice(0, n));
  }
  // a prefix ending like the typed one (`_`) is the likelier meaning among equally close ones
  const last = prefix.at(-1);
  const ordered = [...prefixes].sort((a, b) => Number(b.at(-1) === last) - Number(a.at(-1) === last) || Math.abs(a.length - prefix.length) - Math.abs(b.length - prefix.length));
  const best = closest(prefix, ordered);
  return best === undefined || best === prefix ? undefined : `${best}*`;
}

/** The plan's text with a fix applied; comments and layout are kept. */
export function fixedText(text: string, fix: PlanFix): string {
  switch (fix.kind) {
    case 'replaceString':
      return setPlanValue(text, fix.path, fix.value);
    case 'renameKey': {
      const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
      const key = root === undefined ? undefined : findNodeAtLocation(root, fix.path)?.parent?.children?.[0];
      if (key === undefined) return text;
      return text.slice(0, key.offset) + JSON.stringify(fix.to) + text.slice(key.offset + key.length);
    }
    case 'remove':
      return setPlanValue(text, fix.path, undefined);
    case 'freezeInsteadOfZeroLr':
      return setPlanValue(setPlanValue(text, [...fix.owner, 'lrMult'], undefined), [...fix.owner, 'frozen'], true);
    case 'createGroup': {
      const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
      const groups = root === undefined ? undefined : findNodeAtLocation(root, ['groups']);
      return setPlanValue(text, ['groups', groups?.children?.length ?? 0], { name: fix.name, layers: [] });
    }
    case 'setModel':
      return setPlanValue(text, ['model'], fix.value);
  }
}

/** The range of a field given as users read it (`groups[2].layers[1]`), for "show in plan". */
export function fieldRange(text: string, field: string): { offset: number; length: number } {
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  return rangeOfPath(root, parseFieldPath(field) ?? []);
}

/** `groups[2].layers[1]` → ['groups', 2, 'layers', 1]; `layers["conv 1"].lrMult` → ['layers', 'conv 1', 'lrMult']. */
export function parseFieldPath(field: string): PlanPath | undefined {
  if (field === '(root)') return [];
  const path: PlanPath = [];
  const token = /(?:^|\.)([A-Za-z_$][\w$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  let at = 0;
  while (at < field.length) {
    token.lastIndex = at;
    const m = token.exec(field);
    if (m === null) return undefined;
    if (m[1] !== undefined) path.push(m[1]);
    else if (m[2] !== undefined) path.push(Number(m[2]));
    else if (m[3] !== undefined) path.push(JSON.parse(m[3]) as string);
    at = token.lastIndex;
  }
  return path;
}

/**
 * The range to underline for a path: the value there, or — for a whole object or list — its key
 * (or its `name`), so a squiggle is a word, not a screen. A path that does not exist (a default
 * that is not written, like `training.epochs`) falls back to the nearest field that does.
 */
export function rangeOfPath(root: Node | undefined, path: PlanPath): { offset: number; length: number } {
  if (root === undefined) return { offset: 0, length: 1 };
  let depth = path.length;
  let node = findNodeAtLocation(root, path);
  while (node === undefined && depth > 0) {
    depth--;
    node = findNodeAtLocation(root, path.slice(0, depth));
  }
  if (node === undefined || node === root) return { offset: root.offset, length: 1 };
  if (node.type === 'object' || node.type === 'array') {
    const named = node.type === 'object' ? findNodeAtLocation(node, ['name']) : undefined;
    const key = node.parent?.type === 'property' ? node.parent.children?.[0] : undefined;
    const label = named ?? key;
    if (label !== undefined) return { offset: label.offset, length: label.length };
    return { offset: node.offset, length: 1 };
  }
  return { offset: node.offset, length: node.length };
}

function valueAt(plan: Plan, path: PlanPath): unknown {
  let v: unknown = plan;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function isSyntaxProblem(p: { path: PlanPath; message: string }): boolean {
  return p.path.length === 0 && p.message.startsWith('syntax error');
}

function withField(field: string, path: PlanPath, message: string): string {
  return path.length > 0 ? `${field}: ${message}` : message;
}

function sortByOffset(list: PlanDiagnostic[]): PlanDiagnostic[] {
  return list.sort((a, b) => a.offset - b.offset);
}
