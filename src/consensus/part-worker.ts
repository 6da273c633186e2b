// The worker thread of a consensus run: labels the pairs parts it is sent (part.ts) and replies with each tally, or
// with the error that stopped it.
import { parentPort } from 'node:worker_threads';
import { labelPart, type PartJob } from './part.ts';

parentPort!.on('message', (job: PartJob) => {
  labelPart(job).then(
    (tally) => parentPort!.postMessage({ ok: true, tally }),
    (error: unknown) => parentPort!.postMessage({ ok: false, error }),
  );
});
