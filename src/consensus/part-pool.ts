// Pairs parts labelled by worker threads, each holding one part at a time and sharing the score table's buffers:
// memory is the table plus a part per worker, whatever the number of pairs. Tallies come back in part order.
import { Worker } from 'node:worker_threads';
import type { PartJob, PartTally } from './part.ts';

// The workers run TypeScript: tsx is registered inside each before the worker module loads (as the image pool does).
const TSX_API = import.meta.resolve('tsx/esm/api');
const WORKER_MODULE = new URL('./part-worker.ts', import.meta.url).href;
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_MODULE)}); });`;

type Reply = { ok: true; tally: PartTally } | { ok: false; error: unknown };

/** Labels every job on `workers` threads; the first failure stops the rest and is thrown. */
export async function labelPartsInWorkers(jobs: readonly PartJob[], workers: number): Promise<PartTally[]> {
  const tallies: PartTally[] = new Array(jobs.length);
  let next = 0;
  const threads: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      let failed = false;
      const feed = (worker: Worker): void => {
        if (failed) return;
        if (next >= jobs.length) {
          if (running === 0) resolve();
          return;
        }
        const index = next++;
        running++;
        worker.once('message', (reply: Reply) => {
          running--;
          if (reply.ok) {
            tallies[index] = reply.tally;
            feed(worker);
          } else {
            failed = true;
            reject(reply.error);
          }
        });
        worker.postMessage(jobs[index]);
      };
      for (let i = 0; i < Math.min(workers, jobs.length); i++) {
        const worker = new Worker(BOOTSTRAP, { eval: true });
        threads.push(worker);
        worker.on('error', (error) => {
          failed = true;
          reject(error);
        });
        feed(worker);
      }
      if (jobs.length === 0) resolve();
    });
  } finally {
    await Promise.all(threads.map((worker) => worker.terminate()));
  }
  return tallies;
}
