/** Text rendering for the CLI: the audit tree, the stage table, the progress bar. */
import type { Decision, Resolution } from '../core/groups.types.ts';
import type { DataPipelineReport, RunReport, StepEvent, TestMetrics } from '../core/progress.ts';
import type { Timeline } from '../core/timeline.ts';

export function formatLr(lr: number): string {
  return lr === 0 ? '0' : lr.toExponential(2);
}

export function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function formatMult(m: number): string {
  return `×${Number(m.toPrecision(4))}`;
}

const rule = (d: Decision): string => d.detail;

/** The data.test line of a run summary: the final weights, and the best epoch's when kept. */
export function testLine(test: NonNullable<RunReport['test']>): string {
  const one = (m: TestMetrics): string => `loss ${fmt(m.loss)}${m.accuracy !== undefined ? `, acc ${fmt(m.accuracy, 3)}` : ''}`;
  return `test (data.test): final weights ${one(test.final)}${test.best ? ` · best epoch ${test.best.epoch}: ${one(test.best)}` : ''}`;
}

/** group → layer → parameter, each with multiplier, LR, weight decay, frozen and the deciding rule. */
export function formatAudit(resolution: Resolution, opts: { source: string; timeline?: Timeline; color?: boolean }): string {
  const lines: string[] = [];
  const total = resolution.params.reduce((n, p) => n + p.size, 0);
  const trains = resolution.params.filter((p) => p.trainable && !p.frozen).reduce((n, p) => n + p.size, 0);
  lines.push(`${opts.source} — base LR ${formatLr(resolution.baseLr)}, ${formatCount(total)} parameters, ${formatCount(trains)} trainable`);
  lines.push('groups, bottom → top:');
  for (const g of resolution.groups) {
    const state = g.frozen ? 'frozen' : formatMult(g.lrMult);
    lines.push(
      `● ${g.name}${g.implicit ? ' (implicit: layers no pattern matched)' : ''}  ${state}  lr ${formatLr(g.frozen ? 0 : resolution.baseLr * g.lrMult)}  ${formatCount(g.paramCount)} params  [mult: ${rule(g.lrMultRule)}; frozen: ${rule(g.frozenRule)}]`,
    );
    if (g.patterns.length > 0) lines.push(`│   patterns: ${g.patterns.map((p) => JSON.stringify(p)).join(', ')}`);
    g.layers.forEach((l, li) => {
      const lastLayer = li === g.layers.length - 1;
      const lp = lastLayer ? '└─' : '├─';
      const cont = lastLayer ? '   ' : '│  ';
      const matched = l.matchedBy ? `matched ${JSON.stringify(l.matchedBy.pattern)}` : 'no pattern';
      lines.push(
        `${lp} ${l.name} (${l.className}${l.isNewHead ? ', new head' : ''})  ${l.frozen ? 'frozen' : formatMult(l.lrMult)}  ${formatCount(l.paramCount)}  [${matched}; mult: ${rule(l.lrMultRule)}; frozen: ${rule(l.frozenRule)}${l.batchNormRule ? `; BatchNorm ${l.batchNorm}: ${rule(l.batchNormRule)}` : ''}]`,
      );
      l.params.forEach((p, pi) => {
        const pp = pi === l.params.length - 1 ? '└─' : '├─';
        const what = !p.trainable ? `statistic, ${p.frozen ? 'frozen (inference mode)' : l.batchNorm === 'inference' ? 'fixed (BatchNorm in inference mode)' : 'moves in training mode'}` : p.frozen ? 'frozen' : `lr ${formatLr(p.effectiveLr)}  wd ${p.weightDecay}`;
        lines.push(`${cont} ${pp} ${p.name} [${p.shape.join('×')}]  ${what}  [wd: ${rule(p.weightDecayRule)}]`);
      });
    });
  }
  if (opts.timeline) {
    lines.push('');
    lines.push(formatStages(resolution, opts.timeline));
  }
  if (resolution.warnings.length > 0) {
    lines.push('');
    lines.push('warnings:');
    for (const w of resolution.warnings) lines.push(`  ! ${w.message}${w.field ? ` (${w.field})` : ''}`);
  }
  return lines.join('\n');
}

export function formatStages(resolution: Resolution, timeline: Timeline): string {
  const lines = [`stages (${timeline.totalEpochs} epochs, ${timeline.stepsPerEpoch} steps per epoch, ${timeline.totalSteps} steps):`];
  for (const s of timeline.stages) {
    const groups = resolution.groups.map((g) => (s.trainGroups.includes(g.name) ? `${g.name} ${formatLr(s.lr * g.lrMult)}` : `${g.name} –`));
    lines.push(`  stage ${s.index + 1}: ${s.epochs} epoch(s), steps ${s.startStep + 1}–${s.startStep + s.steps}, peak LR per group: ${groups.join(', ')}`);
  }
  return lines.join('\n');
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}

const fmt = (v: number | undefined, digits = 4): string => (v === undefined ? '–' : v.toFixed(digits));

/** The files a run left out as unreadable (data.onBadImage "skip"), counted and named; undefined when none. */
export function skippedLine(data: DataPipelineReport): string | undefined {
  if (data.skipped === 0) return undefined;
  const more = data.skipped > data.skippedFiles.length ? `, … (${(data.skipped - data.skippedFiles.length).toLocaleString('en-US')} more in the report)` : '';
  return `data: ${data.skipped.toLocaleString('en-US')} file(s) left out as unreadable: ${data.skippedFiles.join(', ')}${more}`;
}

/** One table per stage: group, trainable, effective LR, and the stage's last-epoch metrics. */
export function formatRunSummary(report: RunReport, resolution: Resolution): string {
  const out: string[] = [];
  for (const s of report.stages) {
    const stageEpochs = report.epochs.filter((e) => e.stage === s.stage);
    const last = stageEpochs[stageEpochs.length - 1];
    out.push(
      `stage ${s.stage}: ${stageEpochs.length}/${s.epochs} epoch(s)` +
        (last ? ` — train loss ${fmt(last.trainLoss)}${last.trainAccuracy !== undefined ? `, acc ${fmt(last.trainAccuracy, 3)}` : ''}${last.valLoss !== undefined ? `, val loss ${fmt(last.valLoss)}` : ''}${last.valAccuracy !== undefined ? `, val acc ${fmt(last.valAccuracy, 3)}` : ''}` : ''),
    );
    // groups holding only weightless layers (inputs, flatten, …) have nothing to report
    const rows = resolution.groups.filter((g) => g.layers.some((l) => l.params.some((p) => p.trainable))).map((g) => {
      const trains = s.trainGroups.includes(g.name);
      return [g.name, trains ? 'yes' : g.frozen ? 'frozen (plan)' : 'not yet', trains ? formatLr(s.lr * g.lrMult) : '–', formatMult(g.lrMult)];
    });
    out.push(table(['group', 'trains', 'peak LR', 'multiplier'], rows).replace(/^/gm, '  '));
  }
  if (report.advice !== undefined && report.advice.length > 0) out.push('advice:', ...report.advice.map((a) => `  ! ${a.message}`));
  return out.join('\n');
}

export function progressLine(e: StepEvent, width = 28): string {
  const frac = e.totalSteps > 0 ? e.step / e.totalSteps : 0;
  const filled = Math.round(frac * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const eta = e.etaSeconds > 0 && Number.isFinite(e.etaSeconds) ? ` · ETA ${Math.ceil(e.etaSeconds)}s` : '';
  return `${bar} ${Math.round(frac * 100)}% · stage ${e.stage}/${e.stages} · epoch ${e.epoch}/${e.epochs} · step ${e.step}/${e.totalSteps} · loss ${e.loss.toFixed(4)}${eta}`;
}
