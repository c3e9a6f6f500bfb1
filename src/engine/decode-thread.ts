/**
 * A decoding thread (decode-pool.ts): decodes the batches it is sent and transfers the floats
 * back. Bundled as dist/decode-thread.js; run from source under tsx in development and tests.
 */
import { parentPort } from 'node:worker_threads';
import { decodeBatch } from './samples.ts';
import { isDecodeRequest, type DecodeReply } from './decode-protocol.ts';

const port = parentPort;
if (port === null) throw new Error('decode-thread.ts runs as a worker thread');
port.on('message', (m: unknown) => {
  if (!isDecodeRequest(m)) {
    port.postMessage({ id: -1, error: 'malformed decode request' } satisfies DecodeReply);
    return;
  }
  decodeBatch(m.recipe, m.job).then(
    (r) => port.postMessage({ id: m.id, x: r.x, bad: r.bad } satisfies DecodeReply, [r.x.buffer as ArrayBuffer]),
    (e: unknown) => port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) } satisfies DecodeReply),
  );
});
