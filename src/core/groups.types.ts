/**
 * Types of the parameter-group resolution: the pure function `resolveGroups(model, plan)` in
 * `groups.ts` produces them, and the CLI's `inspect`, the extension's tree, the panel and the
 * optimizer all read them. Every setting carries the rule that decided it — nothing is silent.
 */

import type { BatchNormPolicy } from './plan.ts';

/** Which rule decided a setting, highest precedence first. */
export type RuleSource =
  | 'layers' // layers[name].x
  | 'group' // groups[i].x
  | 'discriminative' // the discriminative preset (multipliers only)
  | 'noDecay' // training.noDecay matched (weight decay only)
  | 'training' // training.x
  | 'plan' // a plan-level setting (batchNorm)
  | 'default'; // the spec's default (or the implicit "default" group)

export interface Decision {
  source: RuleSource;
  /** Human-readable, names the plan field: `groups[2] "head".lrMult`, `noDecay "bias"`, … */
  detail: string;
}

export interface ParamAudit {
  /** Full weight name, e.g. `dense_1/kernel`. */
  name: string;
  layer: string;
  shape: number[];
  size: number;
  /** Optimized by gradient descent (false for BatchNorm moving statistics). */
  trainable: boolean;
  group: string;
  lrMult: number;
  lrMultRule: Decision;
  /** training.lr × lrMult (before the schedule). */
  effectiveLr: number;
  weightDecay: number;
  weightDecayRule: Decision;
  frozen: boolean;
  frozenRule: Decision;
}

export interface LayerAudit {
  name: string;
  className: string;
  depth: number;
  group: string;
  /** The pattern (and its group index) that matched, or undefined for the implicit default group. */
  matchedBy?: { groupIndex: number; pattern: string };
  lrMult: number;
  lrMultRule: Decision;
  frozen: boolean;
  frozenRule: Decision;
  paramCount: number;
  params: ParamAudit[];
  isNewHead: boolean;
  /**
   * BatchNormalization layers only: the mode the layer runs in while it trains (`inference` when
   * frozen, whatever the policy says) and the rule that decided it.
   */
  batchNorm?: BatchNormPolicy;
  batchNormRule?: Decision;
}

export interface GroupAudit {
  name: string;
  /** Index in the resolved order (bottom → top); `default` comes first when it exists. */
  index: number;
  /** Index in the plan's `groups` array, undefined for the implicit default group. */
  planIndex?: number;
  implicit: boolean;
  patterns: string[];
  lrMult: number;
  lrMultRule: Decision;
  frozen: boolean;
  frozenRule: Decision;
  paramCount: number;
  layers: LayerAudit[];
}

export type WarningCode =
  | 'unmatchedLayers'
  | 'emptyGroup'
  | 'patternMatchesNothing'
  | 'patternShadowed'
  | 'zeroLrNotFrozen'
  | 'frozenBatchNormStatistics'
  | 'unknownLayerOverride'
  | 'geometricLrMismatch'
  | 'allFrozen'
  | 'batchNormNotBatchNorm';

export interface AuditWarning {
  code: WarningCode;
  message: string;
  /** Plan field the warning is about, when there is one. */
  field?: string;
  layer?: string;
  group?: string;
}

export interface Resolution {
  baseLr: number;
  groups: GroupAudit[];
  /** Every weight of the model, in model order. */
  params: ParamAudit[];
  warnings: AuditWarning[];
}
