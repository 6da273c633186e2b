// The worker thread of a consensus or calibrate run (part-pool.ts): reads the score files and labels the pairs
// parts it is sent, and replies with each result, or with the error that stopped it.
import { parentPort } from 'node:worker_threads';
import { BdpoError } from '../core/errors.ts';
import { readScoreFile } from '../core/score-table.ts';
import { labelPart } from './part.ts';
import type { PoolReply, PoolRequest } from './part-pool.ts';

parentPort!.on('message', ({ id, request }: { id: number; request: PoolRequest }) => {
  const work = request.kind === 'label' ? labelPart(request.job) : readScoreFile(request.dir, request.file);
  work.then(
    (value) => {
      const reply: PoolReply = { id, ok: true, value };
      const transfer = request.kind === 'scores' && 'words' in value ? [value.words.buffer, value.scores.buffer] : [];
      parentPort!.postMessage(reply, transfer as ArrayBuffer[]);
    },
    // A structured clone keeps a RangeError a RangeError but turns our error classes into plain Errors, which the
    // CLI would report as defects with a stack: they cross as what the user needs (message, exit code).
    (error: unknown) => {
      const reply: PoolReply =
        error instanceof BdpoError
          ? { id, ok: false, error: null, userError: { name: error.name, message: error.message, exitCode: error.exitCode } }
          : { id, ok: false, error };
      parentPort!.postMessage(reply);
    },
  );
});
