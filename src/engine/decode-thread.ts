/**
 * A decoding thread (decode-pool.ts): reads the batches it is sent (images or CSV rows) and
 * posts the floats back. Bundled as dist/decode-thread.js; run from source under tsx in development and tests.
 */
import { parentPort } from 'node:worker_threads';
import { LayerwiseError } from '../core/errors.ts';
import { runDecodeTask } from './samples.ts';
import { isDecodeRequest, type DecodeReply } from './decode-protocol.ts';

const port = parentPort;
if (port === null) throw new Error('decode-thread.ts runs as a worker thread');
port.on('message', (m: unknown) => {
  if (!isDecodeRequest(m)) {
    port.postMessage({ id: -1, error: 'malformed decode request' } satisfies DecodeReply);
    return;
  }
  runDecodeTask(m.task).then(
    // an image batch's floats are shared (samples.ts); a CSV batch's few KB are handed over
    (r) => port.postMessage({ id: m.id, x: r.x, bad: r.bad } satisfies DecodeReply, r.x.buffer instanceof ArrayBuffer ? [r.x.buffer] : []),
    (e: unknown) => port.postMessage((e instanceof LayerwiseError
      ? { id: m.id, error: e.problem, ...(e.file === undefined ? {} : { file: e.file }), ...(e.field === undefined ? {} : { field: e.field }) }
      : { id: m.id, error: e instanceof Error ? e.message : String(e) }) satisfies DecodeReply),
  );
});
