/**
 * Which files are plans, how they are listed, and when a plan's model description can be
 * reused. Pure; the host feeds it file names and modification times.
 */
import { augmentIsOn, type Plan } from './plan.ts';

/** The `layerwise.planGlob` default: `layerwise.json` and `*.layerwise.json` anywhere. */
export const DEFAULT_PLAN_GLOB = '**/{layerwise.json,*.layerwise.json}';

/** Folders a plan is never looked for in (run outputs hold copies of resolved plans). */
export const PLAN_EXCLUDE_GLOB = '**/{node_modules,.git,runs}/**';

/** Same rule as the manifest's `resourceFilename =~ /(^|\.)layerwise\.json$/`. */
export function isPlanFileName(fileName: string): boolean {
  const base = fileName.split(/[\\/]/).pop() ?? '';
  return /(^|\.)layerwise\.json$/.test(base);
}

/** Plans listed by folder depth, then path: the workspace's top-level plan first. */
export function sortPlanPaths(relPaths: readonly string[]): string[] {
  const depth = (p: string) => p.split('/').length;
  return [...relPaths].sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
}

/**
 * What a plan's model description depends on: the model file (and when it last changed), the
 * replacement head, and — when the head's outputs come from the labels — the data. Editing
 * multipliers, freezing or training settings leaves the key unchanged, so the tree re-resolves
 * groups without asking the worker to load the model again.
 */
export function modelCacheKey(plan: Pick<Plan, 'model' | 'head' | 'data'>, modelStamp: string): string {
  const outputsFromData = plan.head !== undefined && (plan.head.outputs ?? 'auto') === 'auto';
  // the description carries the strip of augmented samples too: it changes with the data settings
  const previewFromData = augmentIsOn(plan.data?.augment);
  return JSON.stringify([plan.model, modelStamp, plan.head ?? null, outputsFromData || previewFromData ? (plan.data ?? null) : null]);
}

/** A file name for a new plan next to `existing` names: `layerwise.json`, else `<model>.layerwise.json`. */
export function newPlanFileName(existing: ReadonlySet<string>, modelFolderName: string): string {
  if (!existing.has('layerwise.json')) return 'layerwise.json';
  const stem = modelFolderName.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'model';
  let name = `${stem}.layerwise.json`;
  for (let i = 2; existing.has(name); i++) name = `${stem}-${i}.layerwise.json`;
  return name;
}
