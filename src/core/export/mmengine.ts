/**
 * `layerwise export --to mmengine`: an `optim_wrapper` config whose `paramwise_cfg.custom_keys`
 * give every parameter the plan's learning rate, weight decay and frozen state.
 *
 * MMEngine's DefaultOptimWrapperConstructor matches keys as substrings of `prefix.name` (for a
 * parameter of the root module, `.name`); the longest matching key wins, ties going to the key
 * that sorts first; a parameter no key matches gets the optimizer's lr and weight_decay. That
 * is not a glob, and has no first-match precedence, so the keys are computed for this model's
 * parameter names: a key per group pattern where a prefix says the same thing, then keys for the
 * exceptions (no-decay biases and norms, overrides, layers a prefix would take by mistake),
 * checked by replaying MMEngine's matching on every name until each parameter gets its settings.
 */
import { DEFAULTS, defaultWeightDecay } from '../plan.ts';
import type { ParamAudit } from '../groups.types.ts';
import type { LayerInfo } from '../model-info.ts';
import { assertNever } from '../errors.ts';
import { isWildcardPattern } from '../patterns.ts';
import { describeSchedule } from './pytorch.ts';
import { pyBool, pyFloat, pyStr, wrap, type ExportInput } from './python.ts';

/** What a custom key sets. `decayMult` is absent when the optimizer's weight_decay is 0. */
export interface KeySetting {
  lrMult: number;
  decayMult?: number;
  frozen: boolean;
}

export interface MmengineKeys {
  /** The optimizer's weight_decay that decay_mult multiplies. */
  baseWeightDecay: number;
  keys: Map<string, KeySetting>;
  /** Plan patterns no prefix key could stand for, expanded into keys for the layers they took. */
  expanded: Array<{ field: string; pattern: string }>;
}

/** The string MMEngine tests keys against: `prefix.name`, which is `.name` on the root module. */
export function mmengineMatchString(paramName: string): string {
  return paramName.includes('.') ? paramName : `.${paramName}`;
}

/** Keys in MMEngine's order: longest first, then by character order. */
export function mmengineKeyOrder(keys: Iterable<string>): string[] {
  return [...keys].sort().sort((a, b) => b.length - a.length);
}

/** The key MMEngine picks for a parameter, or undefined (then the optimizer's defaults apply). */
export function mmengineWinner(ordered: readonly string[], paramName: string): string | undefined {
  const s = mmengineMatchString(paramName);
  return ordered.find((k) => s.includes(k));
}

/** Custom keys that reproduce the resolution's settings for every trainable parameter. */
export function mmengineKeys(input: ExportInput): MmengineKeys {
  const { plan, resolution, model } = input;
  const params = resolution.params.filter((p) => p.trainable);
  const baseWeightDecay = chooseBaseDecay(input, params);
  const want = new Map(params.map((p) => [p.name, settingOf(p, baseWeightDecay)]));
  const keys = new Map<string, KeySetting>();
  const expanded: MmengineKeys['expanded'] = [];
  const layersByName = new Map(model.layers.map((l) => [l.name, l]));
  const byLayer = new Map<string, ParamAudit[]>();
  for (const p of params) byLayer.set(p.layer, [...(byLayer.get(p.layer) ?? []), p]);
  const groupOfLayer = new Map(resolution.groups.flatMap((g) => g.layers.map((l) => [l.name, g.name] as const)));

  const trainingDecay = plan.training?.weightDecay ?? defaultWeightDecay(plan.training?.optimizer ?? DEFAULTS.optimizer);
  for (const g of resolution.groups) {
    if (g.implicit || g.planIndex === undefined) continue;
    const spec = plan.groups?.[g.planIndex];
    const groupSetting = settingOf({ lrMult: g.lrMult, weightDecay: spec?.weightDecay ?? trainingDecay, frozen: g.frozen }, baseWeightDecay);
    g.patterns.forEach((pattern, j) => {
      const prefix = prefixKey(pattern, layersByName);
      if (prefix !== undefined) {
        if (!keys.has(prefix)) keys.set(prefix, groupSetting);
        return;
      }
      expanded.push({ field: `groups[${g.planIndex}].layers[${j}]`, pattern });
      for (const l of g.layers) {
        if (l.matchedBy?.pattern !== pattern) continue;
        const key = modulePrefixKey(l.name, groupOfLayer) ?? layerKey(layersByName.get(l.name) ?? { name: l.name, weights: [] });
        const under = params.filter((p) => p.name.startsWith(key) || p.name === key);
        if (!keys.has(key) && under.length > 0) keys.set(key, commonest(under.map((p) => want.get(p.name)!)));
      }
    });
  }

  // Each round adds keys for the parameters that still come out wrong: the layer's key when
  // all its parameters want the same, else the parameter's full name — the longest key that
  // can match it, so once it has that key it stays right and the rounds end.
  for (let round = 0; round <= params.length; round++) {
    const ordered = mmengineKeyOrder(keys.keys());
    const wrong = params.filter((p) => !sameSetting(effective(keys, ordered, p.name), want.get(p.name)!));
    if (wrong.length === 0) return { baseWeightDecay, keys: withoutIdleKeys(keys, params), expanded };
    const wrongByLayer = new Map<string, ParamAudit[]>();
    for (const p of wrong) wrongByLayer.set(p.layer, [...(wrongByLayer.get(p.layer) ?? []), p]);
    for (const [name, ps] of wrongByLayer) {
      const siblings = byLayer.get(name) ?? ps;
      const key = layerKey(layersByName.get(name) ?? { name, weights: [] });
      const first = want.get(ps[0]!.name)!;
      if (!keys.has(key) && siblings.every((s) => sameSetting(want.get(s.name)!, first))) keys.set(key, first);
      else for (const p of ps) keys.set(p.name, want.get(p.name)!);
    }
  }
  throw new Error('mmengine custom_keys did not converge');
}

/**
 * The shortest module prefix of `layer` (`encoder.layer.3.`) under which every layer is in the
 * same group as `layer`: one key then stands for a whole block a regex or a `?` glob took.
 */
function modulePrefixKey(layer: string, groupOfLayer: ReadonlyMap<string, string>): string | undefined {
  const group = groupOfLayer.get(layer);
  const parts = layer.split('.');
  for (let n = 1; n < parts.length; n++) {
    const prefix = `${parts.slice(0, n).join('.')}.`;
    let pure = true;
    for (const [name, g] of groupOfLayer) {
      if (name.startsWith(prefix) && g !== group) {
        pure = false;
        break;
      }
    }
    if (pure) return prefix;
  }
  return undefined;
}

/** The setting most parameters of a layer want (the first of equals on a tie). */
function commonest(settings: readonly KeySetting[]): KeySetting {
  let best = settings[0]!;
  let bestCount = 0;
  for (const s of settings) {
    const count = settings.filter((x) => sameSetting(x, s)).length;
    if (count > bestCount) [best, bestCount] = [s, count];
  }
  return best;
}

/** Keys that decide no parameter change nothing when dropped (a winner stays the first match). */
function withoutIdleKeys(keys: ReadonlyMap<string, KeySetting>, params: readonly ParamAudit[]): Map<string, KeySetting> {
  const ordered = mmengineKeyOrder(keys.keys());
  const used = new Set(params.map((p) => mmengineWinner(ordered, p.name)).filter((k): k is string => k !== undefined));
  return new Map([...keys].filter(([k]) => used.has(k)));
}

/** The optimizer's weight_decay: the plan's training value when it decays, else the largest decay any parameter gets. */
function chooseBaseDecay(input: ExportInput, params: readonly ParamAudit[]): number {
  const training = input.plan.training?.weightDecay ?? defaultWeightDecay(input.plan.training?.optimizer ?? DEFAULTS.optimizer);
  if (training > 0) return training;
  return params.reduce((m, p) => Math.max(m, p.weightDecay), 0);
}

function settingOf(p: Pick<ParamAudit, 'lrMult' | 'weightDecay' | 'frozen'>, base: number): KeySetting {
  return { lrMult: p.lrMult, frozen: p.frozen, ...(base > 0 ? { decayMult: p.weightDecay / base } : {}) };
}

const NO_KEY: KeySetting = { lrMult: 1, decayMult: 1, frozen: false };

function effective(keys: ReadonlyMap<string, KeySetting>, ordered: readonly string[], name: string): KeySetting {
  const k = mmengineWinner(ordered, name);
  return k === undefined ? NO_KEY : keys.get(k)!;
}

function sameSetting(a: KeySetting, b: KeySetting): boolean {
  if (a.frozen || b.frozen) return a.frozen === b.frozen;
  const close = (x: number, y: number) => Math.abs(x - y) <= 1e-12 * Math.max(1, Math.abs(x), Math.abs(y));
  return close(a.lrMult, b.lrMult) && close(a.decayMult ?? 1, b.decayMult ?? 1);
}

/**
 * A key standing for a pattern: an exact layer name → that layer's key; `prefix*` (no other
 * wildcard, prefix ending at a dot) → the prefix. Anything else has no substring equivalent.
 */
function prefixKey(pattern: string, layers: ReadonlyMap<string, Pick<LayerInfo, 'name' | 'weights'>>): string | undefined {
  if (!isWildcardPattern(pattern)) return layerKey(layers.get(pattern) ?? { name: pattern, weights: [] });
  if (pattern.startsWith('re:')) return undefined;
  const m = /^([^*?]+\.)\*$/.exec(pattern);
  return m?.[1];
}

/** `layer.` matches exactly the parameters of a module; a root parameter (its own layer) is matched by its name. */
function layerKey(layer: Pick<LayerInfo, 'name' | 'weights'>): string {
  const rootParam = layer.weights.length === 1 && layer.weights[0]!.name === layer.name;
  return rootParam ? layer.name : `${layer.name}.`;
}

export function exportMmengine(input: ExportInput): string {
  const { plan, resolution, stages } = input;
  const training = plan.training ?? {};
  const optimizer = training.optimizer ?? DEFAULTS.optimizer;
  const { baseWeightDecay, keys, expanded } = mmengineKeys(input);
  const command = input.command ?? `layerwise export ${input.planName} --to mmengine`;
  const out: string[] = [];
  // a "- " item keeps its continuation lines indented under it
  const note = (text: string) => out.push(...wrap(text, 94).map((l, i) => (i > 0 && text.startsWith('- ') ? `#   ${l}` : `# ${l}`)));
  out.push(`# Layerwise plan ${input.planName}, exported as an MMEngine optim_wrapper config.`);
  note(`Generated by \`${command}\` from the plan and its model ${JSON.stringify(plan.model)} (${resolution.params.filter((p) => p.trainable).length} parameters). Do not edit: change the plan and export again.`);
  out.push('#');
  note(
    'MMEngine matches custom_keys as substrings of each parameter name (the longest key wins) instead of the plan\'s patterns with first-match precedence, so these keys are computed for this model\'s parameter names and checked against every one of them: a model whose names differ needs a new export. Every parameter gets lr = lr x lr_mult and weight_decay = weight_decay x decay_mult.',
  );
  if (expanded.length > 0) {
    out.push('#');
    note(`Patterns no substring key can express were expanded into one key per layer they take: ${expanded.map((e) => `${JSON.stringify(e.pattern)} (${e.field})`).join(', ')}.`);
  }
  out.push('#');
  note('Not expressed here (see the pytorch export for code that does them):');
  const frozenKeys = [...keys].filter(([, v]) => v.frozen).map(([k]) => k).sort();
  if (frozenKeys.length > 0) {
    note(
      `- Frozen parameters: DefaultOptimWrapperConstructor does not freeze (0.11.0rc0 copies a custom key's requires_grad=False into the param group and never sets it on the parameter; it only leaves out parameters that are already requires_grad=False). So the keys of frozen layers say lr_mult=0.0 and decay_mult=0.0: AdamW, Adam and SGD then leave those weights bit-identical. Their gradients are still computed; to skip that (the plan's "no gradient"), freeze them in your model before the Runner is built, which MMEngine then leaves out of the optimizer:`,
    );
    out.push(
      '#     for name, param in model.named_parameters():',
      '#         if any(key in (name if "." in name else "." + name) for key in layerwise_frozen_keys):',
      '#             param.requires_grad_(False)',
      '#   (under DDP, before the model is wrapped: the reducer registers the parameters that need a gradient then).',
    );
    note('A frozen BatchNorm layer keeps moving its running statistics in train mode unless the model puts it in eval mode.');
  }
  note('- Tied weights (an embedding shared with a decoder) appear under two module names: bypass_duplicate=True keeps the first, as the plan does.');
  if (stages.length > 1) {
    note(
      `- Unfreezing stages: ${stages.map((s) => `${s.index + 1}. ${s.epochs} epoch(s) training ${s.trainGroups.join(', ') || 'nothing'} at base LR ${s.lr}`).join('; ')}. An optim_wrapper config has one set of param groups for the whole run; this one is the last stage's (every group the plan does not freeze trains).`,
    );
  }
  note(`- The schedule: ${describeSchedule(training.schedule)}. ${mmengineScheduleNote(input)}`);
  if (resolution.warnings.length > 0) {
    out.push('#', '# Warnings from the plan (layerwise inspect shows them too):');
    for (const w of resolution.warnings) out.push(...wrap(`- ${w.message}`, 92).map((l, i) => `#${i === 0 ? ' ' : '   '}${l}`));
  }
  const lastStageLr = stages[stages.length - 1]?.lr ?? resolution.baseLr;
  const opt = optimizerConfig(optimizer, lastStageLr, baseWeightDecay, training);
  out.push('', 'optim_wrapper = dict(', '    type="OptimWrapper",', `    optimizer=${opt},`, '    paramwise_cfg=dict(', '        bypass_duplicate=True,', '        custom_keys={');
  for (const key of [...keys.keys()].sort()) {
    const s = keys.get(key)!;
    // frozen: no step and no decay (the constructor does not freeze; see above)
    const fields = s.frozen ? [`lr_mult=${pyFloat(0)}`, `decay_mult=${pyFloat(0)}`] : [`lr_mult=${pyFloat(s.lrMult)}`];
    if (!s.frozen && s.decayMult !== undefined) fields.push(`decay_mult=${pyFloat(s.decayMult)}`);
    out.push(`            ${pyStr(key)}: dict(${fields.join(', ')}),${s.frozen ? '  # frozen' : ''}`);
  }
  out.push('        },', '    ),', ')');
  if (frozenKeys.length > 0) {
    out.push('', '# The keys of the layers the plan freezes (see "Frozen parameters" above).', `layerwise_frozen_keys = [${frozenKeys.map(pyStr).join(', ')}]`);
  }
  return out.join('\n') + '\n';
}

function optimizerConfig(
  optimizer: 'adamw' | 'adam' | 'sgd',
  lr: number,
  weightDecay: number,
  training: { betas?: [number, number]; eps?: number; momentum?: number; nesterov?: boolean },
): string {
  const betas = training.betas ?? DEFAULTS.betas;
  const adam = `lr=${pyFloat(lr)}, betas=(${pyFloat(betas[0])}, ${pyFloat(betas[1])}), eps=${pyFloat(training.eps ?? DEFAULTS.eps)}, weight_decay=${pyFloat(weightDecay)}`;
  switch (optimizer) {
    case 'adamw':
      return `dict(type="AdamW", ${adam})`;
    case 'adam':
      return `dict(type="Adam", ${adam})`;
    case 'sgd':
      return `dict(type="SGD", lr=${pyFloat(lr)}, momentum=${pyFloat(training.momentum ?? DEFAULTS.momentum)}, dampening=0, nesterov=${pyBool(training.nesterov ?? DEFAULTS.nesterov)}, weight_decay=${pyFloat(weightDecay)})`;
    default:
      return assertNever(optimizer, 'optimizer');
  }
}

/** Where MMEngine has a scheduler with the same closed form, say which; otherwise say why not. */
function mmengineScheduleNote(input: ExportInput): string {
  const spec = input.plan.training?.schedule;
  if (spec === undefined) return 'Nothing to schedule.';
  const oneCurve = input.stages.length === 1 || (spec.scope ?? DEFAULTS.scheduleScope) === 'run';
  const warm = spec.warmup !== undefined && spec.warmup > 0;
  if (!oneCurve) return 'It restarts at every stage, which chained MMEngine schedulers (each multiplying the current lr) cannot do after a decay to 0.';
  if (warm) return "Its warm-up starts at 0, which MMEngine's LinearLR (start_factor > 0 in the chained form) cannot.";
  switch (spec.type) {
    case 'constant':
      return 'No param_scheduler is needed.';
    case 'linear':
      return 'Same closed form: param_scheduler = [dict(type="LinearLR", start_factor=1.0, end_factor=0.0, by_epoch=False, begin=0, end=T)] with T the run\'s iterations (not executed here).';
    case 'cosine':
      return 'Same closed form: param_scheduler = [dict(type="CosineAnnealingLR", T_max=T, eta_min=0.0, by_epoch=False, begin=0, end=T)] with T the run\'s iterations (not executed here).';
    case 'stlr': {
      const ratio = spec.ratio ?? DEFAULTS.stlrRatio;
      return `Same closed form: two LinearLR, from 1/${ratio} to 1 over the first cut = max(1, floor(T x ${spec.cutFrac ?? DEFAULTS.stlrCutFrac})) iterations and from 1 to 1/${ratio} over the rest (not executed here).`;
    }
    case 'onecycle':
      return "MMEngine's OneCycleLR takes one eta_max per param group, and its constructor makes one group per parameter, so the per-group peaks would be a list as long as the model's parameters.";
    default:
      return assertNever(spec.type, 'schedule type');
  }
}

