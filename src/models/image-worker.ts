// One thread of the image pool (image-pool.ts): decodes, resizes, crops and normalises each row it is sent straight
// into the shared batch tensors, or checks an image for ingest, with the same preprocessInto and checkImage the main
// thread would call, so the bytes and verdicts are the same.
import { parentPort } from 'node:worker_threads';
import { checkImage } from './image-check.ts';
import { ImageDecodeError, preprocessInto } from './preprocess.ts';
import type { WorkerReply, WorkerRequest } from './image-pool.ts';

const port = parentPort;
if (port === null) throw new Error('image-worker.ts runs only as a worker thread of the image pool');

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  try {
    if (request.kind === 'check') return { id: request.id, outcome: 'checked', check: await checkImage(request.bytes, request.options) };
    // The targets in order, stopping at the first that fails: one reject per row, as the in-thread loop did.
    for (const target of request.targets) {
      const batch = new Float32Array(target.buffer, target.byteOffset, target.length);
      await preprocessInto(request.bytes, batch, target.index, target.options);
    }
    return { id: request.id, outcome: 'done' };
  } catch (error) {
    if (error instanceof ImageDecodeError) return { id: request.id, outcome: 'rejected', reason: error.reason, message: error.message };
    const failure = error instanceof Error ? error : new Error(String(error));
    return { id: request.id, outcome: 'failed', name: failure.name, message: failure.message, stack: failure.stack ?? '' };
  }
}

port.on('message', (request: WorkerRequest) => {
  void handle(request).then((reply) => port.postMessage(reply));
});
