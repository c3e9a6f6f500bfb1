/**
 * Learning-rate schedules (PLAN-SPEC "Schedules"): the factor s(t) that multiplies every
 * parameter's peak LR at optimizer step t (0-based) of a scope of T steps. One implementation
 * serves the trainer, the preview chart and the exporters, so their curves cannot drift apart.
 */
import { DEFAULTS, type ScheduleSpec } from './plan.ts';
import { assertNever } from './errors.ts';

// T·fraction computed in doubles can land a hair off a whole number (0.29·100 = 28.999…96);
// the user meant the whole number, so rounding forgives this much.
const ROUNDING_SLACK = 1e-9;

function floorForgiving(x: number): number {
  return Math.floor(x + ROUNDING_SLACK);
}

function ceilForgiving(x: number): number {
  return Math.ceil(x - ROUNDING_SLACK);
}

/** W: `warmup` < 1 is a fraction of T rounded up, ≥ 1 a step count; 0 when absent. */
export function warmupSteps(spec: ScheduleSpec, T: number): number {
  const warmup = spec.warmup;
  if (warmup === undefined || !(warmup > 0)) return 0;
  if (warmup < 1) return Math.max(0, ceilForgiving(warmup * T));
  return ceilForgiving(warmup);
}

/** The factor used by optimizer step t (the first step uses s(0), as PyTorch schedulers do). */
export function scheduleFactor(spec: ScheduleSpec | undefined, t: number, T: number): number {
  if (spec === undefined) return 1;
  // A scope of no steps still gets a well-defined curve rather than a division by zero.
  const steps = Math.max(1, T);
  const step = Math.max(0, t);
  switch (spec.type) {
    case 'constant': {
      const W = warmupSteps(spec, steps);
      return step < W ? step / W : 1;
    }
    case 'linear': {
      const W = warmupSteps(spec, steps);
      if (step < W) return step / W;
      return Math.max(0, (steps - step) / Math.max(1, steps - W));
    }
    case 'cosine': {
      const W = warmupSteps(spec, steps);
      if (step < W) return step / W;
      // Past T the cosine would climb again; the curve stays at its end (0) instead.
      const progress = Math.min(1, (step - W) / Math.max(1, steps - W));
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
    case 'stlr':
      return slantedTriangular(spec, step, steps);
    case 'onecycle':
      return oneCycle(spec, step, steps);
    default:
      return assertNever(spec.type, 'schedule type');
  }
}

/** s(0) … s(T−1): the curve a preview draws. */
export function scheduleCurve(spec: ScheduleSpec | undefined, T: number): number[] {
  return Array.from({ length: Math.max(0, T) }, (_, t) => scheduleFactor(spec, t, T));
}

function slantedTriangular(spec: ScheduleSpec, t: number, T: number): number {
  const cutFrac = spec.cutFrac ?? DEFAULTS.stlrCutFrac;
  const ratio = spec.ratio ?? DEFAULTS.stlrRatio;
  const cut = Math.max(1, floorForgiving(T * cutFrac));
  const p = t < cut ? t / cut : Math.max(0, 1 - (t - cut) / Math.max(1, T - cut));
  return (1 + p * (ratio - 1)) / ratio;
}

/**
 * torch 1.13 OneCycleLR, anneal_strategy='cos', three_phase=False, with max_lr = 1 so the result
 * is the factor lr/max_lr. The phase arithmetic (float(pct·T) − 1, T − 1) is torch's, unrounded.
 */
function oneCycle(spec: ScheduleSpec, t: number, T: number): number {
  const pctStart = spec.pctStart ?? DEFAULTS.onecyclePctStart;
  const divFactor = spec.divFactor ?? DEFAULTS.onecycleDivFactor;
  const finalDivFactor = spec.finalDivFactor ?? DEFAULTS.onecycleFinalDivFactor;
  const initial = 1 / divFactor;
  const min = initial / finalDivFactor;
  const warmEnd = pctStart * T - 1;
  const lastStep = T - 1;
  // torch raises past T; the curve rests at its final value instead.
  const step = Math.min(t, lastStep);
  if (step <= warmEnd) {
    // torch divides by zero when the rise has no length; the rise then ends at the peak.
    const pct = warmEnd > 0 ? step / warmEnd : 1;
    return annealCos(initial, 1, pct);
  }
  const span = lastStep - warmEnd;
  const pct = span > 0 ? (step - warmEnd) / span : 1;
  return annealCos(1, min, pct);
}

function annealCos(start: number, end: number, pct: number): number {
  const cosOut = Math.cos(Math.PI * pct) + 1;
  return end + ((start - end) / 2.0) * cosOut;
}
