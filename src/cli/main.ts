/**
 * `layerwise` — the same engine as the extension, from a terminal.
 * Every bad input ends with one line on stderr and a non-zero exit.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { cliWorkspaceRoot, resolveCliFolder } from '../core/paths.ts';
import { initPlan } from '../core/init-plan.ts';
import { RECIPES } from '../core/presets.ts';
import { formatProblem, LayerwiseError } from '../core/errors.ts';
import { EXPORT_TARGETS, exportPlan } from '../core/export/index.ts';
import { resolveGroups } from '../core/groups.ts';
import { SUGGESTION_METHODS } from '../core/lr-finder.ts';
import type { ModelInfo } from '../core/model-info.ts';
import type { Plan, PlanResults } from '../core/plan.ts';
import { mergeResults, setPlanValue } from '../core/plan-edit.ts';
import { planOnlyFormat } from '../core/pytorch-model.ts';
import type { TrainEvent } from '../core/progress.ts';
import { dataProgressText } from '../core/status.ts';
import { buildTimeline, resolveStages } from '../core/timeline.ts';
import { BACKEND_PREFERENCES } from '../protocol/worker.ts';
import { describeModelFile, prepareModel } from '../engine/session.ts';
import { findLrPlan, trainPlan } from '../engine/pytorch-run.ts';
import { flagChoice, flagNumber, flagString, parseArgs, UsageError, type ParsedArgs } from './args.ts';
import { formatAudit, formatLr, formatRunSummary, progressLine, skippedLine, testLine } from './format.ts';
import { TUNE_FLAGS, tuneCommand } from './tune-command.ts';

const USAGE = `usage: layerwise <command> [options]

commands:
  inspect <plan|model.json>   parameter groups: group → layer → parameter, with the rule that decided each
  train <plan>                fine-tune; writes the model + report.json into a run folder and results into the plan
  train <plan> --resume DIR   continue a stopped, killed or crashed run from the checkpoint in its folder
  find-lr <plan>              LR range test (ratios between groups kept); --apply sets the suggestion in the plan
  tune <plan> [--method rgn|search] [--budget N] [--batches N] [--include-frozen] [--apply]
                              suggest a multiplier per group (Auto-RGN, or a budgeted search); --apply writes them
  init <model.json>           write a plan with automatic groups, a preset and a recipe:
                              --recipe lp-ft|gradual (default lp-ft), --preset, --epochs N,
                              --keep-top (no new head), --data DIR|FILE, --out FILE
  export <plan> --to pytorch|hf-trainer|mmengine [--out FILE]
                              the plan as PyTorch code (param groups, schedule, stages) or an MMEngine config

A model may be a tfjs model.json, or plan-only: a PyTorch .safetensors checkpoint or a sharded
one's .safetensors.index.json (headers are read, never the weights), or a JSON list of
named_parameters() names and shapes. Plan-only models can be inspected, grouped and exported;
with a "pytorch" entry in the plan, train runs them on torch (torch.distributed.run for nproc > 1).

common options:
  --backend auto|tfjs-node|wasm|cpu   (default auto)
  --workspace DIR    folder no path may leave (default: the plan's folder)
  --json             machine-readable output on stdout
  --python PATH      train, find-lr: the Python interpreter for a PyTorch plan (wins over pytorch.python)
`;

const common = { backend: { value: true }, workspace: { value: true }, json: { value: false }, help: { value: false } };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'inspect':
      return inspect(parseArgs(rest, { ...common }));
    case 'train':
      return trainCommand(parseArgs(rest, { ...common, out: { value: true }, resume: { value: true }, progress: { value: false }, 'no-write-back': { value: false }, python: { value: true } }));
    case 'find-lr':
      return findLrCommand(
        parseArgs(rest, {
          ...common,
          out: { value: true },
          apply: { value: false },
          method: { value: true },
          group: { value: true },
          start: { value: true },
          end: { value: true },
          steps: { value: true },
          stage: { value: true },
          'no-write-back': { value: false },
          python: { value: true },
        }),
      );
    case 'tune': {
      const args = parseArgs(rest, { ...common, ...TUNE_FLAGS });
      const planFile = onePath(args, 'plan');
      return tuneCommand(args, planFile, workspaceFor(args, planFile), backendOf(args));
    }
    case 'init':
      return initCommand(
        parseArgs(rest, { ...common, preset: { value: true }, recipe: { value: true }, epochs: { value: true }, 'keep-top': { value: false }, out: { value: true }, data: { value: true } }),
      );
    case 'export':
      return exportCommand(parseArgs(rest, { ...common, to: { value: true }, out: { value: true } }));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function onePath(args: ParsedArgs, what: string): string {
  if (args.positional.length !== 1) throw new UsageError(`expected one ${what} (got ${args.positional.length})`);
  const p = resolve(args.positional[0] as string);
  if (!existsSync(p)) throw new LayerwiseError(`no such file`, { file: args.positional[0] });
  return p;
}

/** The plan's folder, or `--workspace DIR` when it names that folder or one above it. */
function workspaceFor(args: ParsedArgs, planFile: string): string {
  return cliWorkspaceRoot(planFile, flagString(args, 'workspace'));
}

const backendOf = (args: ParsedArgs) => flagChoice(args, 'backend', BACKEND_PREFERENCES) ?? 'auto';

async function inspect(args: ParsedArgs): Promise<number> {
  const file = onePath(args, 'plan or model file');
  const planOnly = planOnlyFormat(file) !== undefined;
  const isModel = planOnly || basename(file) === 'model.json' || isModelJson(file);
  if (isModel) {
    const info = await describeModelFile(file, backendOf(args));
    const resolution = resolveGroups(info, { model: basename(file) } as Plan);
    if (args.flags.has('json')) process.stdout.write(JSON.stringify({ model: info, resolution }, null, 2) + '\n');
    else process.stdout.write(planOnlyNote(info) + formatAudit(resolution, { source: file }) + '\n');
    return 0;
  }
  const prepared = await prepareModel(
    { planFile: file, workspaceRoot: workspaceFor(args, file), backend: backendOf(args) },
    { withData: true },
  );
  const { resolution, plan, data } = prepared;
  let timeline;
  if (data) {
    const batch = plan.training?.batchSize ?? 32;
    timeline = buildTimeline(resolveStages(plan, resolution, file), Math.ceil(data.train.n / batch));
  }
  prepared.model?.dispose();
  if (args.flags.has('json')) {
    process.stdout.write(JSON.stringify({ planFile: file, backend: prepared.backend, model: prepared.info, resolution, timeline }, null, 2) + '\n');
  } else {
    process.stdout.write(planOnlyNote(prepared.info) + formatAudit(resolution, { source: relative(process.cwd(), file) || file, timeline }) + '\n');
  }
  return 0;
}

/** Plan-only models are read from names: say how layers and norms were found, so nothing is silent. */
function planOnlyNote(info: ModelInfo): string {
  if (info.kind !== 'pytorch') return '';
  return (
    `plan-only PyTorch model (names and shapes, no weights): a layer is a module path; normalisation layers are ` +
    `recognised by name ("norm" in the path, or bn…/ln…/gn…) or by BatchNorm running statistics; ` +
    `${/\.safetensors(\.index\.json)?$/i.test(info.source) ? 'layer order reconstructed from the sorted header' : 'layer order as listed'}\n`
  );
}

function isModelJson(file: string): boolean {
  try {
    const head = readFileSync(file, 'utf8');
    return /"modelTopology"/.test(head) && /"weightsManifest"/.test(head);
  } catch {
    return false;
  }
}

/**
 * Results go into the plan as it is on disk now (the user may have edited it during the run).
 * A plan deleted or renamed meanwhile is not recreated: false, and the caller says where the results are.
 */
function writeBack(planFile: string, results: PlanResults, extra?: { path: Array<string | number>; value: unknown }): boolean {
  let previous: string;
  try {
    previous = readFileSync(planFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  let text = mergeResults(previous, results, planFile);
  if (extra) text = setPlanValue(text, extra.path, extra.value);
  if (text !== previous) writeFileAtomic(planFile, text);
  return true;
}

async function trainCommand(args: ParsedArgs): Promise<number> {
  const planFile = onePath(args, 'plan');
  const json = args.flags.has('json');
  const showBar = !json && (args.flags.has('progress') || process.stderr.isTTY === true);
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after this batch… (Ctrl+C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  let lastBarLen = 0;
  let lastTenth = 0;
  const clearBar = () => {
    if (lastBarLen > 0) process.stderr.write('\r' + ' '.repeat(lastBarLen) + '\r');
    lastBarLen = 0;
  };
  const onEvent = (e: TrainEvent) => {
    if (json) return;
    switch (e.kind) {
      case 'stage':
        clearBar();
        process.stdout.write(`stage ${e.stage}/${e.stages}: training ${e.trainGroups.join(', ') || '(nothing)'} for ${e.epochs} epoch(s), base LR ${formatLr(e.lr)}\n`);
        break;
      case 'step':
        if (showBar && process.stderr.isTTY === true) {
          const line = progressLine(e);
          process.stderr.write('\r' + line.padEnd(lastBarLen));
          lastBarLen = line.length;
        } else if (showBar) {
          // a log file gets a plain line per tenth of the run instead of carriage returns
          const tenth = Math.floor((e.step / e.totalSteps) * 10);
          if (tenth > lastTenth) {
            lastTenth = tenth;
            process.stderr.write(progressLine(e) + '\n');
          }
        }
        break;
      case 'epoch':
        clearBar();
        process.stdout.write(
          `  epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}${e.trainAccuracy !== undefined ? ` acc ${e.trainAccuracy.toFixed(3)}` : ''}` +
            `${e.valLoss !== undefined ? ` · val loss ${e.valLoss.toFixed(4)}` : ''}${e.valAccuracy !== undefined ? ` acc ${e.valAccuracy.toFixed(3)}` : ''} · ${e.seconds.toFixed(1)}s\n`,
        );
        break;
      case 'log':
        clearBar();
        process.stderr.write(`${e.level}: ${e.message}\n`);
        break;
      case 'data':
        if (showBar && process.stderr.isTTY === true) {
          const line = dataProgressText(e);
          process.stderr.write('\r' + line.padEnd(lastBarLen));
          lastBarLen = line.length;
        } else if (showBar && e.phase === 'ready') process.stderr.write(dataProgressText(e) + '\n');
        break;
      case 'diagnostics':
        break;
    }
  };
  const outFlag = flagString(args, 'out');
  const resumeFlag = flagString(args, 'resume');
  const python = flagString(args, 'python');
  const workspaceRoot = workspaceFor(args, planFile);
  const outcome = await trainPlan({
    planFile,
    workspaceRoot,
    backend: backendOf(args),
    ...(python !== undefined ? { python } : {}),
    outDir: outFlag === undefined ? undefined : resolveCliFolder(outFlag, '--out', workspaceRoot),
    resumeFrom: resumeFlag === undefined ? undefined : resolveCliFolder(resumeFlag, '--resume', workspaceRoot),
    signal: controller.signal,
    onEvent,
  });
  process.off('SIGINT', onSignal);
  clearBar();
  const { report } = outcome;
  if (!args.flags.has('no-write-back') && !writeBack(planFile, outcome.results)) {
    process.stderr.write(`layerwise: ${planFile} was deleted or renamed during the run; the results are in ${outcome.reportFile}\n`);
  }
  if (json) {
    process.stdout.write(JSON.stringify({ reportFile: outcome.reportFile, report }, null, 2) + '\n');
  } else {
    process.stdout.write('\n' + formatRunSummary(report, outcome.resolution) + '\n\n');
    process.stdout.write(
      `backend ${report.backend.name} (${report.backend.reason}) · ${report.timings.steps} steps in ${report.timings.trainSeconds.toFixed(1)}s (${report.timings.stepsPerSecond.toFixed(1)} steps/s)\n`,
    );
    const fc = report.frozenCheck;
    process.stdout.write(
      fc.weightsChecked === 0
        ? 'frozen check: no weight stayed frozen for the whole run, none to compare\n'
        : `frozen check: ${fc.weightsChecked} frozen weight(s) compared byte for byte — ${fc.unchanged ? 'unchanged' : `CHANGED: ${fc.changed.join(', ')}`}\n`,
    );
    const skipped = report.data === undefined ? undefined : skippedLine(report.data);
    if (skipped !== undefined) process.stdout.write(`${skipped}\n`);
    if (report.test) process.stdout.write(`${testLine(report.test)}\n`);
    if (report.distributed && report.distributed.nproc > 1) {
      process.stdout.write(`ranks: ${report.distributed.nproc} (${report.distributed.backend}) — weights ${report.distributed.replicasEqual ? 'identical on every rank' : 'DIFFER between ranks'}\n`);
    }
    if (report.message) process.stdout.write(`${report.message}\n`);
    process.stdout.write(`model: ${report.outputs.model || '(none: cancelled)'}\n`);
    if (report.outputs.best) process.stdout.write(`best validation epoch (${report.best?.epoch ?? '?'}): ${report.outputs.best}\n`);
    process.stdout.write(`report: ${outcome.reportFile}\n`);
    if (report.outputs.checkpoint) process.stdout.write(`resume with: layerwise train ${relative(process.cwd(), planFile) || planFile} --resume ${relative(process.cwd(), report.outputs.folder) || '.'}\n`);
  }
  if (report.stopped === 'cancelled') return 130;
  if (report.stopped === 'nonFinite' || !report.frozenCheck.unchanged || report.distributed?.replicasEqual === false) return 1;
  return 0;
}

/** The LR range test's options (the engine's and the panel's names) as find-lr's flags spell them. */
const FIND_LR_FLAGS: Readonly<Record<string, string>> = { startLr: '--start', endLr: '--end', steps: '--steps', stage: '--stage', group: '--group' };

async function findLrCommand(args: ParsedArgs): Promise<number> {
  const planFile = onePath(args, 'plan');
  const group = flagString(args, 'group');
  const outFlag = flagString(args, 'out');
  const method = flagChoice(args, 'method', SUGGESTION_METHODS);
  const start = flagNumber(args, 'start');
  const end = flagNumber(args, 'end');
  const steps = flagNumber(args, 'steps');
  const stage = flagNumber(args, 'stage');
  const json = args.flags.has('json');
  const python = flagString(args, 'python');
  const workspaceRoot = workspaceFor(args, planFile);
  const result = await findLrPlan({
    planFile,
    workspaceRoot,
    backend: backendOf(args),
    ...(python !== undefined ? { python } : {}),
    outDir: outFlag === undefined ? undefined : resolveCliFolder(outFlag, '--out', workspaceRoot),
    stage,
    options: {
      mode: group === undefined ? 'global' : 'group',
      group,
      ...(method && { method }),
      ...(start !== undefined && { startLr: start }),
      ...(end !== undefined && { endLr: end }),
      ...(steps !== undefined && { steps }),
    },
    onEvent: (e) => {
      if (!json && e.kind === 'step' && process.stderr.isTTY) process.stderr.write(`\rsweep ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)}   `);
    },
  }).catch((e: unknown) => {
    // the engine names its options; the user typed the flags
    if (e instanceof LayerwiseError && e.file === undefined && e.field !== undefined && Object.hasOwn(FIND_LR_FLAGS, e.field)) {
      throw new LayerwiseError(e.problem, { field: FIND_LR_FLAGS[e.field] });
    }
    throw e;
  });
  if (!json && process.stderr.isTTY) process.stderr.write('\n');
  const { outcome } = result;
  const apply = args.flags.has('apply');
  if (!args.flags.has('no-write-back')) writeBack(planFile, result.results, apply ? { path: outcome.apply.path, value: outcome.apply.value } : undefined);
  if (json) {
    process.stdout.write(JSON.stringify({ ...result, applied: apply }, null, 2) + '\n');
    return 0;
  }
  const s = outcome.suggestions;
  process.stdout.write(
    `LR range test (${outcome.mode === 'global' ? 'base LR, group ratios kept' : `group "${outcome.group}"`}): ${outcome.points.length} steps${outcome.stoppedEarly ? ' (stopped: loss diverged)' : ''}\n` +
      `  valley ${s.valley === undefined ? '–' : formatLr(s.valley)} · steep ${s.steep === undefined ? '–' : formatLr(s.steep)} · minimum ${s.minimum === undefined ? '–' : formatLr(s.minimum)}\n` +
      `  suggested (${outcome.method}): ${formatLr(outcome.suggested)} → ${outcome.apply.field} = ${Number(outcome.apply.value.toPrecision(4))}${apply ? ' (applied to the plan)' : ' (use --apply to set it)'}\n` +
      `  curve: ${result.curveFile}\n  plot:  ${result.plotFile}\n`,
  );
  return 0;
}

async function initCommand(args: ParsedArgs): Promise<number> {
  const modelFile = onePath(args, 'model file');
  if (statSync(modelFile).isDirectory()) throw new UsageError('give the path of model.json (or a .safetensors / parameter list), not its folder');
  const outFlag = flagString(args, 'out');
  const out = resolve(outFlag ?? join(process.cwd(), 'layerwise.json'));
  if (existsSync(out)) throw new LayerwiseError('already exists; choose another --out (a plan is never overwritten)', { file: out });
  assertFolderExists(out);
  const info = await describeModelFile(modelFile, backendOf(args));
  const rel = relative(dirname(out), modelFile).split('\\').join('/');
  const data = flagString(args, 'data');
  const plan = initPlan(info, {
    modelPath: rel,
    preset: flagString(args, 'preset'),
    recipe: flagChoice(args, 'recipe', RECIPES.map((r) => r.id)),
    epochs: flagNumber(args, 'epochs'),
    keepTop: args.flags.has('keep-top'),
    data: data === undefined ? undefined : { train: relative(dirname(out), resolve(data)).split('\\').join('/') },
  });
  writeFileAtomic(out, renderPlan(plan));
  if (args.flags.has('json')) process.stdout.write(JSON.stringify({ planFile: out, plan }, null, 2) + '\n');
  else {
    const stages = plan.unfreeze !== undefined && 'stages' in plan.unfreeze ? plan.unfreeze.stages : [];
    process.stdout.write(
      `wrote ${out} with ${plan.groups?.length ?? 0} groups (${plan.groups?.map((g) => g.name).join(', ')})` +
        `${plan.head?.cut === undefined ? '' : `, a new head on ${plan.head.cut}`}, ${stages.length} stage(s): ` +
        `${stages.map((s) => `${s.epochs} epoch(s) ${s.train === 'all' ? 'all' : s.train.join('+')}${s.lr === undefined ? '' : ` at ${s.lr}`}`).join(', then ')}\n`,
    );
  }
  return 0;
}

async function exportCommand(args: ParsedArgs): Promise<number> {
  const planFile = onePath(args, 'plan');
  const target = flagChoice(args, 'to', EXPORT_TARGETS);
  if (target === undefined) throw new UsageError(`--to is required: one of ${EXPORT_TARGETS.join(', ')}`);
  const prepared = await prepareModel({ planFile, workspaceRoot: workspaceFor(args, planFile), backend: backendOf(args) }, { withData: false });
  prepared.model?.dispose();
  const stages = resolveStages(prepared.plan, prepared.resolution, planFile);
  const planName = (relative(process.cwd(), planFile) || planFile).split('\\').join('/');
  const text = exportPlan(target, { plan: prepared.plan, resolution: prepared.resolution, stages, model: prepared.info, planName });
  const outFlag = flagString(args, 'out');
  if (outFlag === undefined) {
    process.stdout.write(text);
    return 0;
  }
  const out = resolve(outFlag);
  const modelFile = resolve(dirname(planFile), prepared.plan.model);
  if (out === resolve(planFile) || out === modelFile) {
    throw new UsageError(`--out ${outFlag} is the ${out === modelFile ? 'model' : 'plan'} itself; write the export to another file`);
  }
  assertReplaceableExport(out);
  writeFileAtomic(out, text);
  if (args.flags.has('json')) process.stdout.write(JSON.stringify({ file: out, target }, null, 2) + '\n');
  else process.stderr.write(`wrote ${out} (${target})\n`);
  return 0;
}

/** `--out FILE` is written in a folder that exists (the CLI creates no folders for a single file). */
function assertFolderExists(out: string): void {
  const folder = dirname(out);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new LayerwiseError(`the folder ${folder} does not exist; create it first or choose another --out`, { file: out, field: '--out' });
  }
}

/** An export replaces only an earlier export: a data file, a weight shard or a script the user wrote is never overwritten. */
function assertReplaceableExport(out: string): void {
  assertFolderExists(out);
  if (!existsSync(out)) return;
  if (statSync(out).isDirectory()) throw new LayerwiseError('is a folder; name the file to write', { file: out, field: '--out' });
  const head = readFileSync(out).subarray(0, 1024).toString('utf8');
  if (!head.includes('Generated by `layerwise export')) {
    throw new LayerwiseError('exists and is not a Layerwise export; a file you wrote is never overwritten — choose another --out', { file: out, field: '--out' });
  }
}

function renderPlan(plan: Plan): string {
  const body = JSON.stringify(plan, null, 2);
  return `// Layerwise fine-tuning plan — see the JSON Schema for every field (hover in VS Code).\n// Groups are ordered bottom → top; a layer belongs to the first group whose pattern matches it.\n${body}\n`;
}

// a file-size limit (ulimit -f) would kill the process on SIGXFSZ; ignored, the write fails with
// EFBIG instead and is reported like a full disk, with the last checkpoint kept
process.on('SIGXFSZ', () => undefined);

main(process.argv.slice(2)).then(
  // exit once stdout has flushed: a pipe takes large output (inspect --json) asynchronously
  (code) => process.stdout.write('', () => process.exit(code)),
  (e: unknown) => {
    if (e instanceof LayerwiseError) {
      process.stderr.write(`layerwise: ${e.message}\n`);
      if (e instanceof UsageError) process.stderr.write(`run "layerwise help" for usage\n`);
      process.exit(e instanceof UsageError ? 2 : 1);
    }
    const err = e as Error;
    process.stderr.write(`layerwise: internal error: ${formatProblem(err.message ?? String(e))}\n`);
    if (process.env['LAYERWISE_DEBUG']) process.stderr.write(`${err.stack}\n`);
    process.exit(70);
  },
);
