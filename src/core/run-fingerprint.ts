/**
 * What a run's math depends on, written into every checkpoint, so a resume can say exactly what
 * changed since the run started instead of silently training a different plan (Lightning's
 * "different number of parameter groups", or unfrozen modules re-frozen on resume). Pure: the
 * engine adds the file and data hashes it measured; this file only builds and compares.
 *
 * Only fields that change the numbers are recorded: `results`, comments, `output` and
 * `diagnosticsEvery` may change freely between a stop and its resume.
 */
import type { Resolution } from './groups.types.ts';
import { DEFAULTS, defaultWeightDecay, type Plan } from './plan.ts';
import type { UnfreezeStage } from './timeline.ts';

export type FingerprintValue = string | number | boolean | null;

/** One flat table per area a user recognises; the keys name the plan field or the file. */
export interface RunFingerprint {
  model: Record<string, FingerprintValue>;
  head: Record<string, FingerprintValue>;
  groups: Record<string, FingerprintValue>;
  parameters: Record<string, FingerprintValue>;
  stages: Record<string, FingerprintValue>;
  optimizer: Record<string, FingerprintValue>;
  training: Record<string, FingerprintValue>;
  data: Record<string, FingerprintValue>;
}

export const FINGERPRINT_AREAS: ReadonlyArray<keyof RunFingerprint> = [
  'model', 'head', 'groups', 'parameters', 'stages', 'optimizer', 'training', 'data',
];

/** Hashes the engine measured: the model's files and the data exactly as the run loaded it. */
export interface MeasuredInputs {
  /** Model file path (as the plan writes it, or relative to the model folder) → "size bytes, sha256 …". */
  modelFiles: Record<string, string>;
  /** sha256 of the loaded training samples and targets (after any validation split). */
  trainData: string;
  validationData?: string;
  trainSamples: number;
}

const json = (v: unknown): FingerprintValue => (v === undefined ? null : JSON.stringify(v));

export function runFingerprint(plan: Plan, resolution: Resolution, stages: readonly UnfreezeStage[], measured: MeasuredInputs): RunFingerprint {
  const t = plan.training ?? {};
  const optimizer = t.optimizer ?? DEFAULTS.optimizer;
  const model: RunFingerprint['model'] = { model: plan.model };
  for (const [file, id] of Object.entries(measured.modelFiles)) model[file] = id;
  const groups: RunFingerprint['groups'] = {};
  for (const g of resolution.groups) {
    groups[`${g.name}.lrMult`] = g.lrMult;
    groups[`${g.name}.frozen`] = g.frozen;
    groups[`${g.name}.layers`] = g.layers.map((l) => l.name).join(', ');
  }
  const parameters: RunFingerprint['parameters'] = {};
  for (const p of resolution.params) {
    // group-level changes show under "groups"; these catch `layers` overrides and decay rules
    parameters[`${p.name} group`] = p.group;
    parameters[`${p.name} lrMult`] = p.lrMult;
    parameters[`${p.name} weightDecay`] = p.weightDecay;
    parameters[`${p.name} frozen`] = p.frozen;
  }
  const stageTable: RunFingerprint['stages'] = { count: stages.length };
  for (const s of stages) {
    stageTable[`stage ${s.index + 1} epochs`] = s.epochs;
    stageTable[`stage ${s.index + 1} trains`] = s.trainGroups.join(', ');
    stageTable[`stage ${s.index + 1} lr`] = s.lr;
  }
  const d = plan.data;
  return {
    model,
    head: { head: json(plan.head), task: plan.task ?? null },
    groups,
    parameters,
    stages: stageTable,
    optimizer: {
      'training.optimizer': optimizer,
      'training.betas': json(t.betas ?? DEFAULTS.betas),
      'training.eps': t.eps ?? DEFAULTS.eps,
      'training.momentum': t.momentum ?? DEFAULTS.momentum,
      'training.nesterov': t.nesterov ?? DEFAULTS.nesterov,
      'training.weightDecay': t.weightDecay ?? defaultWeightDecay(optimizer),
    },
    training: {
      'training.batchSize': t.batchSize ?? DEFAULTS.batchSize,
      'training.schedule': json(t.schedule),
      'training.earlyStopping': json(t.earlyStopping),
      'training.seed': t.seed ?? null,
    },
    data: {
      'data.train': d?.train ?? null,
      'data.validation': d?.validation ?? null,
      'data.validationSplit': d?.validationSplit ?? null,
      'data.shuffle': d?.shuffle ?? DEFAULTS.shuffle,
      'data.seed': d?.seed ?? null,
      samples: measured.trainSamples,
      'training samples (sha256)': measured.trainData,
      'validation samples (sha256)': measured.validationData ?? null,
    },
  };
}

export interface FingerprintChange {
  area: keyof RunFingerprint;
  key: string;
  before: FingerprintValue | undefined;
  now: FingerprintValue | undefined;
}

export function fingerprintChanges(before: RunFingerprint, now: RunFingerprint): FingerprintChange[] {
  const out: FingerprintChange[] = [];
  for (const area of FINGERPRINT_AREAS) {
    const a = before[area] ?? {};
    const b = now[area] ?? {};
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (a[key] !== b[key]) out.push({ area, key, before: a[key], now: b[key] });
    }
  }
  return out;
}

const MAX_DETAILS = 3;

function show(v: FingerprintValue | undefined): string {
  if (v === undefined || v === null) return '(none)';
  if (typeof v === 'string' && /^size \d+ bytes, sha256 /.test(v)) return v.replace(/, sha256 (\w{12})\w*/, ', sha256 $1…');
  if (typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)) return `${v.slice(0, 12)}…`;
  return typeof v === 'string' ? v : String(v);
}

/**
 * One sentence per changed area, e.g. `groups changed since the run started (block2.lrMult 0.38 → 0.5)`;
 * empty when nothing that matters changed. A parameter change its group's change explains is not
 * repeated under "parameters".
 */
export function describeFingerprintChanges(before: RunFingerprint, now: RunFingerprint): string[] {
  const changes = fingerprintChanges(before, now);
  const changedGroups = new Set(changes.filter((c) => c.area === 'groups').map((c) => c.key.slice(0, c.key.lastIndexOf('.'))));
  const explained = (c: FingerprintChange): boolean => {
    if (c.area !== 'parameters') return false;
    const param = c.key.slice(0, c.key.lastIndexOf(' '));
    const group = now.parameters[`${param} group`] ?? before.parameters[`${param} group`];
    return typeof group === 'string' && changedGroups.has(group) && !c.key.endsWith(' group');
  };
  const byArea = new Map<string, FingerprintChange[]>();
  for (const c of changes) if (!explained(c)) byArea.set(c.area, [...(byArea.get(c.area) ?? []), c]);
  return [...byArea].map(([area, list]) => {
    const shown = list.slice(0, MAX_DETAILS).map((c) => `${c.key} ${show(c.before)} → ${show(c.now)}`);
    const more = list.length > MAX_DETAILS ? ` and ${list.length - MAX_DETAILS} more` : '';
    return `${area} changed since the run started (${shown.join('; ')}${more})`;
  });
}
