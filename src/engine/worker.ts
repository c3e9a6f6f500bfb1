/**
 * The training worker: a child process forked by the extension host (or by tests). It speaks
 * the typed protocol in src/protocol/worker.ts over the IPC channel, runs one job at a time,
 * and never writes the plan file itself: results go back to the host, which edits the plan
 * through the editor (so unsaved changes are never clobbered).
 */
import { join, relative } from 'node:path';
import { assertNever, isLayerwiseError } from '../core/errors.ts';
import { resolvePlanPath } from '../core/paths.ts';
import type { TrainEvent } from '../core/progress.ts';
import { isHostToWorker, type HostToWorker, type ProblemInfo, type WorkerToHost } from '../protocol/worker.ts';
import { findLr } from './lr-finder.ts';
import { describeModelFile, prepareModel } from './session.ts';
import { train } from './trainer.ts';
import { tune } from './tune.ts';

function send(m: WorkerToHost): void {
  process.send?.(m);
}

function problemOf(e: unknown): ProblemInfo {
  if (isLayerwiseError(e)) return { message: e.message, file: e.file, field: e.field };
  const err = e instanceof Error ? e : new Error(String(e));
  return { message: `internal error: ${err.message}` };
}

const running = new Map<string, AbortController>();

async function handle(m: HostToWorker): Promise<void> {
  if (m.type === 'cancel') {
    running.get(m.id)?.abort();
    return;
  }
  const controller = new AbortController();
  running.set(m.id, controller);
  const onEvent = (event: TrainEvent) => send({ type: 'event', id: m.id, event });
  try {
    switch (m.type) {
      case 'train': {
        const outcome = await train({ ...m, signal: controller.signal, onEvent, progressIntervalMs: m.progressIntervalMs });
        send({ type: 'trained', id: m.id, report: outcome.report, reportFile: outcome.reportFile, results: outcome.results });
        break;
      }
      case 'findLr': {
        const r = await findLr({ ...m, options: m.options, signal: controller.signal, onEvent });
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
        prepared.model?.dispose();
        send({ type: 'described', id: m.id, model: prepared.info, ...(prepared.data ? { trainSamples: prepared.data.train.n } : {}) });
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

// the parent went away: nothing to report to, stop at once
process.on('disconnect', () => process.exit(0));

send({ type: 'ready', pid: process.pid });
