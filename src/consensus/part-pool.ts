// Worker threads of a consensus or calibrate run: they read score files (score-table.ts) and label pairs parts
// (part.ts), each holding one file at a time and sharing the score table's buffers, so memory is the table plus a
// file per worker, whatever the number of pairs. Answers come back to whoever asked, in any order.
import { Worker } from 'node:worker_threads';
import { InputError, UsageError, type BdpoError } from '../core/errors.ts';
import type { ScoreFileRows } from '../core/score-table.ts';
import type { PartJob, PartTally } from './part.ts';

// The workers run TypeScript: tsx is registered inside each before the worker module loads (as the image pool does).
const TSX_API = import.meta.resolve('tsx/esm/api');
const WORKER_MODULE = new URL('./part-worker.ts', import.meta.url).href;
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_MODULE)}); });`;

export type PoolRequest = { kind: 'label'; job: PartJob } | { kind: 'scores'; dir: string; file: string };
/** A BdpoError thrown in a worker, as it crosses back. */
export interface UserErrorReply {
  name: string;
  message: string;
  exitCode: 1 | 2;
}
export type PoolReply =
  | { id: number; ok: true; value: PartTally | ScoreFileRows }
  | { id: number; ok: false; error: unknown; userError?: UserErrorReply };

/** A worker's BdpoError, rebuilt in this thread with its message and exit code (its class does not cross). */
function userError({ name, message, exitCode }: UserErrorReply): BdpoError {
  const error = exitCode === 2 ? new UsageError(message) : new InputError(message);
  error.name = name;
  return error;
}

interface Pending {
  request: PoolRequest;
  resolve: (value: never) => void;
  reject: (error: unknown) => void;
}

export class PartPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Array<Pending & { id: number }> = [];
  private readonly inFlight = new Map<number, Pending>();
  private nextId = 0;
  private failure: unknown = null;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(BOOTSTRAP, { eval: true });
      worker.on('message', (reply: PoolReply) => this.settle(worker, reply));
      worker.on('error', (error) => this.fail(error));
      this.all.push(worker);
      this.idle.push(worker);
    }
  }

  label(job: PartJob): Promise<PartTally> {
    return this.ask({ kind: 'label', job });
  }

  scores(dir: string, file: string): Promise<ScoreFileRows> {
    return this.ask({ kind: 'scores', dir, file });
  }

  private ask<T>(request: PoolRequest): Promise<T> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, request, resolve: resolve as (value: never) => void, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.inFlight.set(job.id, job);
      worker.postMessage({ id: job.id, request: job.request });
    }
  }

  private settle(worker: Worker, reply: PoolReply): void {
    const pending = this.inFlight.get(reply.id);
    this.inFlight.delete(reply.id);
    this.idle.push(worker);
    if (pending) {
      if (reply.ok) pending.resolve(reply.value as never);
      else pending.reject(reply.userError ? userError(reply.userError) : reply.error);
    }
    this.pump();
  }

  private fail(error: unknown): void {
    this.failure = error;
    for (const pending of [...this.inFlight.values(), ...this.queue]) pending.reject(error);
    this.inFlight.clear();
    this.queue.length = 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((worker) => worker.terminate()));
  }
}
