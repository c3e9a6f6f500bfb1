/**
 * The training worker: a child process forked by the extension host (or by tests). It speaks
 * the typed protocol in src/protocol/worker.ts over the IPC channel, runs one job at a time,
 * and never writes the plan file itself: results go back to the host, which edits the plan
 * through the editor (so unsaved changes are never clobbered).
 */
import { join, relative, resolve } from 'node:path';
import { assertNever, isLayerwiseError, LayerwiseError } from '../core/errors.ts';
import { isInside, resolvePlanPath } from '../core/paths.ts';
import type { TrainEvent } from '../core/progress.ts';
import { isHostToWorker, type HostToWorker, type ProblemInfo, type WorkerToHost } from '../protocol/worker.ts';
import { augmentPreview } from './augment-preview.ts';
import { describeModelFile, prepareModel } from './session.ts';
import { findLrPlan, trainPlan } from './pytorch-run.ts';
import { tune } from './tune.ts';

function send(m: WorkerToHost): void {
  // after a disconnect there is no channel; the checkpoint on disk is what survives. A channel that
  // closes while a message is in flight reports it to this callback (without one, process 'error'
  // would end the worker with code 1 before its stop checkpoint is written)
  if (process.connected) process.send?.(m, undefined, {}, () => undefined);
}

function problemOf(e: unknown): ProblemInfo {
  if (isLayerwiseError(e)) return { message: e.message, file: e.file, field: e.field };
  const err = e instanceof Error ? e : new Error(String(e));
  return { message: `internal error: ${err.message}` };
}

const running = new Map<string, AbortController>();

async function handle(m: HostToWorker): Promise<void> {
  if (m.type === 'cancel') {
    const job = running.get(m.id);
    if (job !== undefined && !job.signal.aborted) {
      job.abort();
      send({ type: 'stopping', id: m.id });
    }
    return;
  }
  const controller = new AbortController();
  running.set(m.id, controller);
  const onEvent = (event: TrainEvent) => send({ type: 'event', id: m.id, event });
  try {
    switch (m.type) {
      case 'train': {
        if (m.resumeFrom !== undefined && !isInside(resolve(m.workspaceRoot), resolve(m.resumeFrom))) {
          throw new LayerwiseError(`the run folder to resume lies outside the workspace folder ${m.workspaceRoot}`, { file: m.resumeFrom });
        }
        const outcome = await trainPlan({ ...m, signal: controller.signal, onEvent, progressIntervalMs: m.progressIntervalMs });
        send({ type: 'trained', id: m.id, report: outcome.report, reportFile: outcome.reportFile, results: outcome.results });
        break;
      }
      case 'findLr': {
        const r = await findLrPlan({ ...m, options: m.options, signal: controller.signal, onEvent });
        send({ type: 'lrFound', id: m.id, outcome: r.outcome, curveFile: r.curveFile, results: r.results });
        break;
      }
      case 'tune': {
        const result = await tune({ ...m, signal: controller.signal, onEvent });
        send({ type: 'tuned', id: m.id, result });
        break;
      }
      case 'describe': {
        const prepared = await prepareModel(m, { withData: 'ifNeeded' });
        const inputShape = (prepared.model?.inputs[0]?.shape ?? []) as Array<number | null>;
        prepared.model?.dispose();
        await prepared.data?.pool?.close();
        // the strip is a nicety: a problem with it never fails the description
        const preview = m.augmentPreview === true
          ? await augmentPreview(prepared.plan, prepared.planFile, prepared.workspaceRoot, inputShape).catch(() => undefined)
          : undefined;
        send({
          type: 'described', id: m.id, model: prepared.info,
          ...(prepared.data ? { trainSamples: prepared.data.train.n } : {}),
          ...(preview !== undefined ? { augmentPreview: preview } : {}),
        });
        break;
      }
      case 'describeModel': {
        // a bare model for "Create Plan from Model…": the same checks as a plan's `model` field
        const modelFile = resolvePlanPath(join(m.workspaceRoot, 'layerwise.json'), relative(m.workspaceRoot, m.modelFile), 'model', m.workspaceRoot);
        const info = await describeModelFile(modelFile, m.backend, { field: 'model' });
        send({ type: 'described', id: m.id, model: info });
        break;
      }
      default:
        assertNever(m, 'request');
    }
  } catch (e) {
    send({ type: 'failed', id: m.id, problem: problemOf(e), cancelled: controller.signal.aborted });
  } finally {
    running.delete(m.id);
    if (hostGone && running.size === 0) process.exit(0);
  }
}

process.on('message', (raw: unknown) => {
  if (!isHostToWorker(raw)) {
    const id = typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'string' ? (raw as { id: string }).id : '';
    send({ type: 'failed', id, problem: { message: 'malformed message from the host' }, cancelled: false });
    return;
  }
  void handle(raw);
});

// a file-size limit must fail the write (EFBIG, reported), not kill the worker
process.on('SIGXFSZ', () => undefined);

/** Longest wait, after the host went away, for a training run to write its stop checkpoint. */
const DISCONNECT_GRACE_MS = 10_000;
let hostGone = false;

// the parent went away (a window reload, a crashed extension host): nothing to report to, so stop —
// but let a training run write its checkpoint first, so the run can be resumed from this batch
process.on('disconnect', () => {
  hostGone = true;
  if (running.size === 0) process.exit(0);
  for (const c of running.values()) c.abort();
  setTimeout(() => process.exit(0), DISCONNECT_GRACE_MS);
});

send({ type: 'ready', pid: process.pid });
