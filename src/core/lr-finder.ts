/**
 * The LR range test's pure half: the sweep, the smoothing, the stop rule and the suggestions
 * (fastai's `valley`, `steep`, `minimum`). The engine feeds it losses; everything here is
 * testable without tfjs.
 */
import { LayerwiseError } from './errors.ts';

export type SuggestionMethod = 'valley' | 'steep' | 'minimum';
export const SUGGESTION_METHODS: readonly SuggestionMethod[] = ['valley', 'steep', 'minimum'];

export interface LrFinderOptions {
  /** `global` scales every group's LR together (ratios kept); `group` sweeps one group's multiplier. */
  mode: 'global' | 'group';
  group?: string;
  startLr: number;
  endLr: number;
  steps: number;
  /** Stop when the smoothed loss exceeds this multiple of its best. */
  divergeFactor: number;
  /** Exponential smoothing weight of the loss (fastai: 0.98). */
  beta: number;
  method: SuggestionMethod;
}

export const LR_FINDER_DEFAULTS: LrFinderOptions = {
  mode: 'global',
  startLr: 1e-7,
  endLr: 10,
  steps: 100,
  divergeFactor: 4,
  beta: 0.98,
  method: 'valley',
};

export interface LrCurvePoint {
  /** The swept value: base LR (global mode) or the group's LR (group mode). */
  lr: number;
  loss: number;
  smoothed: number;
}

export interface LrSuggestions {
  valley?: number;
  steep?: number;
  minimum?: number;
}

export interface LrFinderOutcome {
  mode: 'global' | 'group';
  group?: string;
  points: LrCurvePoint[];
  suggestions: LrSuggestions;
  method: SuggestionMethod;
  suggested: number;
  /** What --apply would set: `training.lr` (global) or the group's / layers' lrMult (group). */
  apply: { field: string; path: Array<string | number>; value: number };
  stoppedEarly: boolean;
}

/** The i-th LR of an exponential sweep from start to end over n steps (i = 0 … n−1). */
export function sweepLr(opts: Pick<LrFinderOptions, 'startLr' | 'endLr' | 'steps'>, i: number): number {
  const n = Math.max(1, opts.steps - 1);
  return opts.startLr * Math.pow(opts.endLr / opts.startLr, i / n);
}

/** Bias-corrected exponential moving average, as fastai's recorder smooths losses. */
export class LossSmoother {
  private avg = 0;
  private count = 0;
  private best = Infinity;
  constructor(private readonly beta: number) {}

  add(loss: number): { smoothed: number; best: number } {
    this.count += 1;
    this.avg = this.beta * this.avg + (1 - this.beta) * loss;
    const smoothed = this.avg / (1 - Math.pow(this.beta, this.count));
    if (smoothed < this.best) this.best = smoothed;
    return { smoothed, best: this.best };
  }
}

/** True when the sweep should stop: a non-finite loss, or the smoothed loss above factor × best. */
export function shouldStop(smoothed: number, best: number, divergeFactor: number): boolean {
  return !Number.isFinite(smoothed) || smoothed > divergeFactor * best;
}

/**
 * Suggestions from a recorded curve, with fastai's definitions (`fastai.callback.schedule`):
 * the first tenth and the last five points are skipped, as `lr_find` does, then
 * - minimum: the LR at the smoothed-loss minimum, divided by 10;
 * - steep: the LR where the smoothed loss falls fastest per unit of log LR;
 * - valley: in the longest decreasing run, about two thirds of the way down.
 */
export function suggestLrs(points: readonly LrCurvePoint[], sweepSteps = points.length): LrSuggestions {
  const skipStart = Math.floor(sweepSteps / 10);
  const kept = points.length - skipStart - 5 >= 3 ? points.slice(skipStart, points.length - 5) : points;
  if (kept.length < 3) return {};
  const lrs = kept.map((p) => p.lr);
  const losses = kept.map((p) => p.smoothed);
  const n = losses.length;

  let minIdx = 0;
  for (let i = 1; i < n; i++) if (losses[i]! < losses[minIdx]!) minIdx = i;
  const minimum = lrs[minIdx]! / 10;

  let steepIdx = 0;
  let steepest = Infinity;
  for (let i = 0; i + 1 < n; i++) {
    const slope = (losses[i + 1]! - losses[i]!) / (Math.log(lrs[i + 1]!) - Math.log(lrs[i]!));
    if (slope < steepest) {
      steepest = slope;
      steepIdx = i;
    }
  }
  const steep = lrs[steepIdx]!;

  const lds = new Array<number>(n).fill(1);
  let maxStart = 0;
  let maxEnd = 0;
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) {
      if (losses[i]! < losses[j]! && lds[i]! < lds[j]! + 1) lds[i] = lds[j]! + 1;
      if (lds[maxEnd]! < lds[i]!) {
        maxEnd = i;
        maxStart = maxEnd - lds[maxEnd]!;
      }
    }
  }
  const sections = (maxEnd - maxStart) / 3;
  const idx = maxStart + Math.trunc(sections) + Math.trunc(sections / 2);
  const valley = lrs[Math.min(n - 1, Math.max(0, idx))]!;

  return { valley, steep, minimum };
}

export function pickSuggestion(s: LrSuggestions, method: SuggestionMethod): number {
  const v = s[method] ?? s.valley ?? s.minimum;
  if (v === undefined) {
    throw new LayerwiseError(
      'the LR range test recorded too few points to suggest a learning rate (the loss diverged at once: lower startLr)',
    );
  }
  return v;
}
