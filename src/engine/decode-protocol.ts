/** Messages between the decode pool and its threads. */
import type { BadSample, DecodeJob, SampleRecipe } from './samples.ts';

export interface DecodeRequest {
  id: number;
  recipe: SampleRecipe;
  job: DecodeJob;
}

export type DecodeReply =
  | { id: number; x: Float32Array; bad: BadSample[]; error?: undefined }
  | { id: number; error: string };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

export function isDecodeRequest(m: unknown): m is DecodeRequest {
  return isRecord(m) && typeof m.id === 'number' && isRecord(m.recipe) && isRecord(m.job) &&
    Array.isArray(m.job.files) && Array.isArray(m.job.samples) && typeof m.job.epoch === 'number';
}

export function isDecodeReply(m: unknown): m is DecodeReply {
  return isRecord(m) && typeof m.id === 'number' && (typeof m.error === 'string' || (m.x instanceof Float32Array && Array.isArray(m.bad)));
}
