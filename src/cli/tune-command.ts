/** `layerwise tune`: the suggestion as a table before anything changes; `--apply` writes it. */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { applyTuneResult, describeChanges, TUNE_METHODS, type TuneResult } from '../core/tune.ts';
import type { BackendPreference } from '../protocol/worker.ts';
import { tune } from '../engine/tune.ts';
import { flagChoice, flagNumber, type ParsedArgs } from './args.ts';
import { formatMult } from './format.ts';

export const TUNE_FLAGS = {
  method: { value: true },
  budget: { value: true },
  batches: { value: true },
  seed: { value: true },
  'include-frozen': { value: false },
  apply: { value: false },
} as const;

export async function tuneCommand(args: ParsedArgs, planFile: string, workspaceRoot: string, backend: BackendPreference): Promise<number> {
  const method = flagChoice(args, 'method', TUNE_METHODS) ?? 'rgn';
  const json = args.flags.has('json');
  const apply = args.flags.has('apply');
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on('SIGINT', onSignal);
  let result: TuneResult;
  try {
    result = await tune({
      planFile,
      workspaceRoot,
      backend,
      method,
      budget: flagNumber(args, 'budget'),
      batches: flagNumber(args, 'batches'),
      seed: flagNumber(args, 'seed'),
      includeFrozen: args.flags.has('include-frozen'),
      signal: controller.signal,
      onEvent: (e) => {
        if (json) return;
        if (e.kind === 'log' && e.level !== 'info') process.stderr.write(`${e.level}: ${e.message}\n`);
        else if (e.kind === 'log' && e.message.startsWith('search round')) process.stderr.write(`${e.message}\n`);
        else if (e.kind === 'step' && process.stderr.isTTY) process.stderr.write(`\r  step ${e.step}/${e.totalSteps} of the budget   `);
      },
    });
  } finally {
    process.off('SIGINT', onSignal);
  }
  if (!json && process.stderr.isTTY) process.stderr.write('\r' + ' '.repeat(40) + '\r');
  if (apply) {
    // the plan as it is on disk now: the user may have edited it while tuning ran
    const previous = readFileSync(planFile, 'utf8');
    const text = applyTuneResult(previous, result, planFile);
    if (text !== previous) writeFileAtomic(planFile, text);
  }
  if (json) {
    process.stdout.write(JSON.stringify({ method: result.method, groups: result.groups.map((g) => ({ name: g.name, lrMult: g.lrMult })), steps: result.steps, ...(result.changes && { changes: result.changes }), applied: apply }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(formatTuneResult(result) + '\n');
  process.stdout.write(apply ? `applied to ${planFile}\n` : 'nothing changed: use --apply to write these multipliers into the plan\n');
  return 0;
}

/** group · current · suggested · why, then what a search spent and picked. */
export function formatTuneResult(result: TuneResult): string {
  const rows = result.groups.map((g) => [g.name, g.frozen ? 'frozen' : formatMult(g.current), g.frozen ? 'frozen' : formatMult(g.lrMult), g.why]);
  const header = ['group', 'current', 'suggested', 'why'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ');
  const lines = [line(header), ...rows.map(line)];
  if (result.method === 'rgn') {
    lines.unshift(`Auto-RGN: relative gradient norm ‖g‖/‖θ‖ per group over ${result.steps} batch(es) at the starting weights (no optimizer step), the largest group at ×1 — ${result.seconds.toFixed(1)}s`);
  } else {
    lines.unshift(`search: ${result.trials?.length ?? 0} trainings, ${result.steps} optimizer steps of a budget of ${result.budget ?? '?'} — ${result.seconds.toFixed(1)}s`);
    lines.push(describeChanges(result));
  }
  return lines.join('\n');
}
