/**
 * Which runs of a plan can be resumed: a run folder with a checkpoint and no finished report (it
 * crashed, was killed, or its window reloaded) or a report that says it was stopped — and not
 * the run that holds the plan's lock right now. The extension offers these for *Resume* at
 * activation, after a worker crash and in the panel; the CLI prints the command.
 * `isResumable` is the pure rule; `findInterruptedRuns` reads the folders.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { StopReason } from './progress.ts';
import { runningOwner } from './run-lock.ts';

/** The checkpoint files (engine/checkpoint.ts writes them). */
export const CHECKPOINT_FILE = 'checkpoint.json';
export const PREVIOUS_CHECKPOINT_FILE = 'checkpoint-previous.json';

export interface RunFolderFacts {
  folder: string;
  /** The plan the checkpoint belongs to (absent: no readable checkpoint manifest). */
  checkpointPlan?: string;
  /** report.json's `stopped`, or undefined when the run never wrote a report. */
  reportStopped?: StopReason;
  /** The folder the plan's lock names while a live process trains into it. */
  runningFolder?: string;
}

export interface InterruptedRun {
  folder: string;
  /** 'crashed': no report (killed, crashed, window closed); 'stopped': the user stopped it. */
  how: 'crashed' | 'stopped';
  /** Optimizer steps done and the run's total epochs reached, from the checkpoint. */
  step: number;
  epoch: number;
  writtenAt: string;
}

export function isResumable(facts: RunFolderFacts, planFile: string): boolean {
  if (facts.checkpointPlan === undefined || resolve(facts.checkpointPlan) !== resolve(planFile)) return false;
  if (facts.runningFolder !== undefined && resolve(facts.runningFolder) === resolve(facts.folder)) return false;
  // a finished run removes its checkpoint; one still there with a final report is not resumable
  return facts.reportStopped === undefined || facts.reportStopped === 'cancelled';
}

interface ManifestHead {
  planFile?: unknown;
  position?: { globalStep?: unknown; epoch?: unknown };
  writtenAt?: unknown;
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The plan's resumable runs under its output folder, newest first. */
export function findInterruptedRuns(outputRoot: string, planFile: string): InterruptedRun[] {
  if (!existsSync(outputRoot)) return [];
  const running = runningOwner(outputRoot, planFile)?.runFolder;
  const out: InterruptedRun[] = [];
  for (const name of readdirSync(outputRoot)) {
    const folder = join(outputRoot, name);
    const manifestFile = [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE].map((f) => join(folder, f)).find((f) => existsSync(f));
    if (manifestFile === undefined || !statSync(folder).isDirectory()) continue;
    const manifest = readJson<ManifestHead>(manifestFile);
    const report = readJson<{ stopped?: StopReason }>(join(folder, 'report.json'));
    const facts: RunFolderFacts = {
      folder,
      checkpointPlan: typeof manifest?.planFile === 'string' ? manifest.planFile : undefined,
      reportStopped: report?.stopped,
      runningFolder: running,
    };
    if (!isResumable(facts, planFile)) continue;
    out.push({
      folder,
      how: report === undefined ? 'crashed' : 'stopped',
      step: typeof manifest?.position?.globalStep === 'number' ? manifest.position.globalStep : 0,
      epoch: typeof manifest?.position?.epoch === 'number' ? manifest.position.epoch : 0,
      writtenAt: typeof manifest?.writtenAt === 'string' ? manifest.writtenAt : '',
    });
  }
  return out.sort((a, b) => b.writtenAt.localeCompare(a.writtenAt));
}
