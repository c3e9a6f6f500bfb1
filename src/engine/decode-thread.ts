/**
 * A data thread: a decoding thread of the pool (decode-pool.ts) decodes the image batches it is
 * sent and posts the floats back; started with row-reader.ts's data, it reads a streamed CSV's rows
 * ahead instead. Bundled as dist/decode-thread.js; run from source under tsx in development and tests.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LayerwiseError } from '../core/errors.ts';
import { decodeBatch } from './samples.ts';
import { isDecodeRequest, type DecodeReply } from './decode-protocol.ts';
import { serveRows, type RowThreadData } from './row-reader.ts';

const port = parentPort;
if (port === null) throw new Error('decode-thread.ts runs as a worker thread');
if ((workerData as RowThreadData | undefined)?.kind === 'rows') serveRows(workerData as RowThreadData);
port.on('message', (m: unknown) => {
  if (!isDecodeRequest(m)) {
    port.postMessage({ id: -1, error: 'malformed decode request' } satisfies DecodeReply);
    return;
  }
  decodeBatch(m.task.recipe, m.task.job).then(
    // the floats are in a SharedArrayBuffer (samples.ts): posted, not copied
    (r) => port.postMessage({ id: m.id, x: r.x, bad: r.bad } satisfies DecodeReply),
    (e: unknown) => port.postMessage((e instanceof LayerwiseError
      ? { id: m.id, error: e.problem, ...(e.file === undefined ? {} : { file: e.file }), ...(e.field === undefined ? {} : { field: e.field }) }
      : { id: m.id, error: e instanceof Error ? e.message : String(e) }) satisfies DecodeReply),
  );
});
