/** Messages between the decode pool and its threads. */
import type { BadSample, DecodeJob, SampleRecipe } from './samples.ts';

/** One batch of image files to decode. */
export interface DecodeTask {
  recipe: SampleRecipe;
  job: DecodeJob;
}

export interface DecodeRequest {
  id: number;
  task: DecodeTask;
}

/** An error names the file and field when it is a problem with the data. */
export type DecodeReply =
  | { id: number; x: Float32Array; bad: BadSample[]; error?: undefined }
  | { id: number; error: string; file?: string; field?: string };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function isDecodeTask(t: unknown): t is DecodeTask {
  if (!isRecord(t) || !isRecord(t.job)) return false;
  const job = t.job;
  return isRecord(t.recipe) && Array.isArray(job.files) && Array.isArray(job.samples) && typeof job.epoch === 'number';
}

export function isDecodeRequest(m: unknown): m is DecodeRequest {
  return isRecord(m) && typeof m.id === 'number' && isDecodeTask(m.task);
}

export function isDecodeReply(m: unknown): m is DecodeReply {
  return isRecord(m) && typeof m.id === 'number' && (typeof m.error === 'string' || (m.x instanceof Float32Array && Array.isArray(m.bad)));
}
