/**
 * Advice from a run's live figures. Pure: the trainer puts it in report.json, the CLI prints it,
 * the panel and the tree show it while the run goes (the webview folds the same diagnostics).
 *
 * - Update ratio: per step, ‖Δθ‖/‖θ‖ around 1e-3 is the classic healthy figure (CS231n notes);
 *   a group whose median stays a decade or more outside for many steps gets a warning with the
 *   multiplier that would bring it to 1e-3 — Adam's update scales about linearly with the LR.
 * - Overfitting: validation loss rising for k epochs in a row while training loss falls.
 */
import type { DiagnosticsEvent, EpochMetrics } from './progress.ts';

export const ADVICE_LIMITS = {
  /** The rule of thumb's figure: what a suggested multiplier aims at. */
  target: 1e-3,
  /** One decade either side of the target: outside is "far outside". */
  band: [1e-4, 1e-2] as readonly [number, number],
  /** The window: the group's last this-many diagnostic samples. */
  window: 20,
  /** At least this many samples … */
  minSamples: 5,
  /** … spanning at least this many optimizer steps before a group is judged. */
  minSteps: 20,
  /** Epochs in a row with rising validation loss (and falling training loss). */
  overfitEpochs: 2,
} as const;

export interface UpdateRatioAdvice {
  kind: 'updateRatio';
  group: string;
  /** Median over the window of the group's per-sample update ratio (median over its layers). */
  figure: number;
  band: [number, number];
  direction: 'low' | 'high';
  current: number;
  suggested: number;
  samples: number;
  /** First and last optimizer step of the window (1-based). */
  steps: [number, number];
  message: string;
}

export interface OverfittingAdvice {
  kind: 'overfitting';
  /** Epoch with the lowest validation loss. */
  bestEpoch: number;
  bestValLoss: number;
  /** Epochs (1-based) over which validation loss rose while training loss fell. */
  epochs: [number, number];
  message: string;
}

export type Advice = UpdateRatioAdvice | OverfittingAdvice;

/** One diagnostics sample: the optimizer step and every training layer's figures. */
export type DiagnosticSample = Pick<DiagnosticsEvent, 'step' | 'layers'>;

export interface AdviceInput {
  diagnostics: readonly DiagnosticSample[];
  epochs: readonly EpochMetrics[];
  /** Each group's multiplier as the run used it. */
  groups: ReadonlyArray<{ name: string; lrMult: number }>;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Three significant digits, as every multiplier Layerwise writes. */
const round3 = (x: number): number => Number(x.toPrecision(3));

export function adviseRun(input: AdviceInput): Advice[] {
  return [...updateRatioAdvice(input), ...overfittingAdvice(input.epochs)];
}

/**
 * The samples `updateRatioAdvice` reads, in order: each group's last `window` samples in which it
 * trained. A run keeps only these (memory stays bounded however long it runs) and its checkpoint
 * carries them, so a resumed run's advice is the uninterrupted one's.
 */
export function adviceWindow<T extends DiagnosticSample>(samples: readonly T[]): T[] {
  const wanted = new Map<string, number>();
  const kept: T[] = [];
  for (let i = samples.length - 1; i >= 0; i--) {
    const sample = samples[i]!;
    let keep = false;
    for (const group of new Set(sample.layers.map((l) => l.group))) {
      const n = wanted.get(group) ?? 0;
      if (n < ADVICE_LIMITS.window) {
        wanted.set(group, n + 1);
        keep = true;
      }
    }
    if (keep) kept.push(sample);
  }
  return kept.reverse();
}

export function updateRatioAdvice(input: AdviceInput): UpdateRatioAdvice[] {
  const L = ADVICE_LIMITS;
  // per group: one figure per diagnostic sample in which it trained
  const series = new Map<string, Array<{ step: number; ratio: number }>>();
  for (const d of input.diagnostics) {
    const byGroup = new Map<string, number[]>();
    for (const l of d.layers) {
      const list = byGroup.get(l.group) ?? [];
      list.push(l.updateRatio);
      byGroup.set(l.group, list);
    }
    for (const [group, ratios] of byGroup) {
      const list = series.get(group) ?? [];
      list.push({ step: d.step, ratio: median(ratios) });
      series.set(group, list);
    }
  }
  const out: UpdateRatioAdvice[] = [];
  for (const g of input.groups) {
    const window = (series.get(g.name) ?? []).slice(-L.window);
    const first = window[0];
    const last = window[window.length - 1];
    if (first === undefined || last === undefined || window.length < L.minSamples || last.step - first.step + 1 < L.minSteps) continue;
    const figure = median(window.map((w) => w.ratio));
    // a zero multiplier is the user's choice, a zero figure has no multiplier that fixes it
    if (!(figure > 0) || !(g.lrMult > 0) || (figure >= L.band[0] && figure <= L.band[1])) continue;
    const direction = figure < L.band[0] ? 'low' : 'high';
    const suggested = round3((g.lrMult * L.target) / figure);
    out.push({
      kind: 'updateRatio',
      group: g.name,
      figure,
      band: [L.band[0], L.band[1]],
      direction,
      current: g.lrMult,
      suggested,
      samples: window.length,
      steps: [first.step, last.step],
      message:
        `group "${g.name}": update ratio ‖Δθ‖/‖θ‖ ${figure.toExponential(1)} (median of ${window.length} samples, steps ${first.step}–${last.step}) is ` +
        `${direction === 'low' ? 'far below' : 'far above'} the healthy ${L.band[0].toExponential(0)}–${L.band[1].toExponential(0)}; ` +
        `lrMult ${round3(g.lrMult)} → ${suggested} would bring it to about ${L.target.toExponential(0)}`,
    });
  }
  return out;
}

/** The first stretch of `overfitEpochs` epochs with rising validation and falling training loss. */
export function overfittingAdvice(epochs: readonly EpochMetrics[]): OverfittingAdvice[] {
  const k = ADVICE_LIMITS.overfitEpochs;
  const scored = epochs.filter((e): e is EpochMetrics & { valLoss: number } => e.valLoss !== undefined && Number.isFinite(e.valLoss));
  for (let i = k; i < scored.length; i++) {
    let rising = true;
    for (let j = i - k + 1; j <= i; j++) {
      const a = scored[j - 1] as EpochMetrics & { valLoss: number };
      const b = scored[j] as EpochMetrics & { valLoss: number };
      if (!(b.valLoss > a.valLoss && b.trainLoss < a.trainLoss)) rising = false;
    }
    if (!rising) continue;
    const best = scored.reduce((m, e) => (e.valLoss < m.valLoss ? e : m));
    const from = (scored[i - k + 1] as EpochMetrics).epoch;
    const to = (scored[i] as EpochMetrics).epoch;
    return [
      {
        kind: 'overfitting',
        bestEpoch: best.epoch,
        bestValLoss: best.valLoss,
        epochs: [from, to],
        message: `overfitting: validation loss rose for ${k} epochs in a row (epochs ${from}–${to}) while training loss fell; the best validation loss was at epoch ${best.epoch} (${best.valLoss.toFixed(4)})`,
      },
    ];
  }
  return [];
}
