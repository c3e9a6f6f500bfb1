/**
 * A run's checkpoint: everything the training loop needs to continue as if it had never stopped
 * (trainer.ts `RunState`), in the run's own folder.
 *
 *   checkpoint.json            manifest: position, loop state, fingerprint, tensor table, data file hash
 *   checkpoint-<step>-<id>.bin every tensor as raw float32 (weights incl. BatchNorm statistics,
 *                              optimizer moments, best-so-far and epoch-start weights when kept)
 *   checkpoint-previous.json   the manifest before the last one, still naming its own .bin
 *
 * Atomic in the way that matters: the .bin is written under a new name first, then the old
 * manifest is copied to checkpoint-previous.json, then checkpoint.json is replaced by rename. A
 * crash or a full disk at any point leaves a manifest whose .bin is complete; the size and
 * sha256 in the manifest catch a torn or damaged .bin, and then the previous checkpoint is used.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { LayerwiseError } from '../core/errors.ts';
import type { EpochMetrics, LayerDiagnostic, RunReport, StageReport } from '../core/progress.ts';
import type { RunFingerprint } from '../core/run-fingerprint.ts';
import type { DiagnosticSample } from '../core/advice.ts';

import { CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE } from '../core/interrupted-runs.ts';

export { CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE };
const BIN_PATTERN = /^checkpoint-\d+-[0-9a-f]+\.bin$/;

/** Where the loop continues: the next batch to train. */
export interface CheckpointPosition {
  /** 0-based epoch within the whole run. */
  epoch: number;
  /** 0-based batch within that epoch; 0 = the epoch has not started. */
  batch: number;
  /** Optimizer steps taken so far = the schedule position. */
  globalStep: number;
}

/** The loop's plain (non-tensor) state; trainer.ts `RunState` minus its tensors. */
export interface LoopProgress {
  startedAt: string;
  /** Training seconds before this checkpoint, summed over every resume. */
  trainSeconds: number;
  epochs: EpochMetrics[];
  groupLrByEpoch: Record<string, number[]>;
  stageReports: StageReport[];
  best?: RunReport['best'];
  sinceBest: number;
  lastDiagnostics?: LayerDiagnostic[];
  /** The diagnostics samples the run's advice still reads (core/advice.ts adviceWindow); absent in older checkpoints. */
  adviceSamples?: DiagnosticSample[];
  /** Params that trained in the current stage: one paused and trained again restarts fresh. */
  trainedBefore: string[];
  /** sha256 of every plan-frozen weight at the run's true start, for the final frozen check. */
  frozenBefore: Array<{ name: string; sha256: string }>;
  /** The unfinished epoch's sums so far, so its metrics equal an uninterrupted epoch's. */
  /** The unfinished epoch's sums; `seen`: samples that reached a step (streaming may leave unreadable files out). */
  partial: { lossSum: number; correct: number; seen: number; seconds: number };
  /** Steps at which earlier processes stopped and this run was resumed. */
  resumes: Array<{ step: number; at: string }>;
}

export interface TensorEntry {
  /** `weight:<name>`, `first:<name>`, `second:<name>`, `best:<name>` or `epochStart:<name>`. */
  key: string;
  shape: number[];
  /** Offset and length in float32 elements inside the .bin. */
  offset: number;
  length: number;
}

export interface CheckpointManifest {
  format: 'layerwise-checkpoint';
  version: 1;
  writtenAt: string;
  /** Why it was written: the end of an epoch, or a stop in the middle of one. */
  reason: 'epoch' | 'stopped';
  planFile: string;
  backend: string;
  fingerprint: RunFingerprint;
  position: CheckpointPosition;
  progress: LoopProgress;
  /** Optimizer step count per parameter that has state. */
  optimizerSteps: Record<string, number>;
  /**
   * Layers that draw random numbers while training (Dropout …): tfjs does not seed them, so a
   * resumed run matches an uninterrupted one exactly only when this is empty.
   */
  randomLayers: string[];
  tensors: TensorEntry[];
  data: { file: string; bytes: number; sha256: string };
}

export interface CheckpointTensor {
  key: string;
  shape: number[];
  values: Float32Array;
}

export type CheckpointContent = Omit<CheckpointManifest, 'format' | 'version' | 'writtenAt' | 'tensors' | 'data'>;

export interface LoadedCheckpoint {
  manifest: CheckpointManifest;
  tensors: Map<string, CheckpointTensor>;
  manifestFile: string;
  /** Set when checkpoint.json could not be used and the previous checkpoint was. */
  fellBack?: string;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** A file's size and sha256, read in 4 MiB pieces (checkpoints and weights can outgrow one Buffer). Throws what the disk says. */
export function fileSha256(file: string): { bytes: number; sha256: string } {
  const hash = createHash('sha256');
  const piece = Buffer.allocUnsafe(1 << 22);
  const fd = openSync(file, 'r');
  let bytes = 0;
  try {
    for (let n; (n = readSync(fd, piece, 0, piece.length, null)) > 0; bytes += n) hash.update(piece.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** A file as a run fingerprint records it: its size and sha256, or why it could not be read. */
export function fileIdentity(file: string): string {
  try {
    const { bytes, sha256: hash } = fileSha256(file);
    return `size ${bytes} bytes, sha256 ${hash}`;
  } catch (e) {
    return `unreadable (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

/** A file-system error in the user's words (disk full, file-size limit). */
export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOSPC':
      return 'the disk is full (ENOSPC)';
    case 'EFBIG':
      return 'a file-size limit was hit (EFBIG)';
    case 'EDQUOT':
      return 'the disk quota is exhausted (EDQUOT)';
    case undefined:
      return String(err.message ?? e);
    default:
      // node's messages already start with the code
      return err.message.startsWith(err.code) ? err.message : `${err.code}: ${err.message}`;
  }
}

/**
 * Writes a new checkpoint into `dir`, keeping the last good one until the new one is complete.
 * Throws a LayerwiseError naming the folder when the disk refuses; the previous checkpoint stays.
 */
export function writeCheckpoint(dir: string, content: CheckpointContent, tensors: readonly CheckpointTensor[]): string {
  let total = 0;
  for (const t of tensors) total += t.values.length;
  const floats = new Float32Array(total);
  const table: TensorEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    floats.set(t.values, offset);
    table.push({ key: t.key, shape: t.shape, offset, length: t.values.length });
    offset += t.values.length;
  }
  const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
  const binName = `checkpoint-${content.position.globalStep}-${randomBytes(4).toString('hex')}.bin`;
  const manifest: CheckpointManifest = {
    format: 'layerwise-checkpoint',
    version: 1,
    writtenAt: new Date().toISOString(),
    ...content,
    tensors: table,
    data: { file: binName, bytes: bytes.byteLength, sha256: sha256(bytes) },
  };
  const manifestFile = join(dir, CHECKPOINT_FILE);
  try {
    writeFileAtomic(join(dir, binName), bytes);
    if (existsSync(manifestFile)) writeFileAtomic(join(dir, PREVIOUS_CHECKPOINT_FILE), readFileSync(manifestFile));
    writeFileAtomic(manifestFile, JSON.stringify(manifest) + '\n');
  } catch (e) {
    removeUnreferencedBins(dir);
    const kept = existsSync(manifestFile) ? `; the previous checkpoint (${CHECKPOINT_FILE}) is kept` : '';
    throw new LayerwiseError(`cannot write the checkpoint: ${errnoText(e)}${kept}`, { file: dir });
  }
  removeUnreferencedBins(dir);
  return manifestFile;
}

/** Drops .bin files no manifest names (a replaced checkpoint, or one whose write failed). */
function removeUnreferencedBins(dir: string): void {
  const keep = new Set<string>();
  for (const f of [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE]) {
    try {
      const m = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Partial<CheckpointManifest>;
      if (typeof m.data?.file === 'string') keep.add(m.data.file);
    } catch {
      // absent or unreadable: it names nothing to keep
    }
  }
  for (const name of readdirSync(dir)) {
    if (BIN_PATTERN.test(name) && !keep.has(name)) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // another process removed it first
      }
    }
  }
}

/** Removes the checkpoint files once a run has ended and saved its model: nothing is left to resume. */
export function removeCheckpoint(dir: string): void {
  for (const f of [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE]) {
    try {
      unlinkSync(join(dir, f));
    } catch {
      // never written
    }
  }
  if (existsSync(dir)) removeUnreferencedBins(dir);
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_FILE)) || existsSync(join(dir, PREVIOUS_CHECKPOINT_FILE));
}

/** Reads the newest complete checkpoint in `dir`; falls back to the previous one when the newest is torn. */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new LayerwiseError('is not a run folder (no such folder)', { file: dir });
  }
  const problems: string[] = [];
  for (const name of [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE]) {
    const file = join(dir, name);
    if (!existsSync(file)) {
      problems.push(`${name}: absent`);
      continue;
    }
    try {
      const loaded = readOne(dir, file);
      return problems.length === 0 || name === CHECKPOINT_FILE ? loaded : { ...loaded, fellBack: problems.join('; ') };
    } catch (e) {
      problems.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new LayerwiseError(`no usable checkpoint in this run folder (${problems.join('; ')})`, { file: dir });
}

function readOne(dir: string, file: string): LoadedCheckpoint {
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as CheckpointManifest;
  if (manifest.format !== 'layerwise-checkpoint' || manifest.version !== 1 || !Array.isArray(manifest.tensors) || typeof manifest.data?.file !== 'string') {
    throw new Error('not a Layerwise checkpoint of version 1');
  }
  if (!BIN_PATTERN.test(manifest.data.file)) throw new Error(`names an unexpected data file ${JSON.stringify(manifest.data.file)}`);
  const binFile = join(dir, manifest.data.file);
  if (!existsSync(binFile)) throw new Error(`its data file ${manifest.data.file} is missing`);
  const size = statSync(binFile).size;
  if (size !== manifest.data.bytes) throw new Error(`its data file ${manifest.data.file} has ${size} bytes, the manifest says ${manifest.data.bytes} (torn write)`);
  const bytes = readFileSync(binFile);
  if (sha256(bytes) !== manifest.data.sha256) throw new Error(`its data file ${manifest.data.file} does not match its sha256 (damaged)`);
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const tensors = new Map<string, CheckpointTensor>();
  for (const t of manifest.tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.length || t.offset < 0 || t.offset + t.length > floats.length) throw new Error(`tensor ${t.key} lies outside the data file`);
    tensors.set(t.key, { key: t.key, shape: t.shape, values: floats.subarray(t.offset, t.offset + t.length) });
  }
  return { manifest, tensors, manifestFile: file };
}
