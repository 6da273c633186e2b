// A pool of worker threads for the image work of every stage: label and encode preprocess images (decode, PIL-exact
// resize and crop, normalisation) straight into batch tensors on SharedArrayBuffers — each worker writes its rows at
// their offsets, so the main thread copies nothing and stays free to feed ONNX Runtime — and ingest verifies images
// (header bounds, then a full decode). The workers call the same preprocessInto and checkImage as the main thread
// would, so every output made from them does not depend on the number of workers.
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BdpoError } from '../core/errors.ts';
import { ImageDecodeError, type ImageDecodeReason, type PreprocessOptions } from './preprocess.ts';
import type { ImageCheck, ImageCheckOptions } from './image-check.ts';

/** The pool cannot run (a worker died, or it was disposed while rows were pending). */
export class ImagePoolError extends BdpoError {}

/** One batch tensor a row is written into, at row `index`; `batch` must be backed by a SharedArrayBuffer. */
export interface BatchTarget {
  batch: Float32Array;
  options: PreprocessOptions;
}

export type WorkerRequest =
  | {
      kind: 'preprocess';
      id: number;
      bytes: Uint8Array;
      targets: Array<{ buffer: SharedArrayBuffer; byteOffset: number; length: number; index: number; options: PreprocessOptions }>;
    }
  | { kind: 'check'; id: number; bytes: Uint8Array; options: ImageCheckOptions };

export type WorkerReply =
  | { id: number; outcome: 'done' }
  | { id: number; outcome: 'checked'; check: ImageCheck }
  | { id: number; outcome: 'rejected'; reason: ImageDecodeReason; message: string }
  | { id: number; outcome: 'failed'; name: string; message: string; stack: string };

/** A zeroed Float32Array the pool's workers can write into. */
export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

/**
 * Rows `rows` of a shared [n, …] batch of `stride` values per row, packed into an ordinary Float32Array: ONNX
 * Runtime's Node binding refuses tensors on a SharedArrayBuffer ("Invalid argument"), so this one copy per batch
 * remains, on the main thread while the model runs the batch before.
 */
export function packRows(shared: Float32Array, rows: readonly number[], stride: number): Float32Array {
  const packed = new Float32Array(rows.length * stride);
  if (rows.length * stride === shared.length) packed.set(shared);
  else rows.forEach((row, j) => packed.set(shared.subarray(row * stride, (row + 1) * stride), j * stride));
  return packed;
}

/** What is wrong with a `workers` option, for the stage to raise as its own error; null when it is valid. */
export function workerCountProblem(workers: number | undefined): string | null {
  return workers === undefined || (Number.isSafeInteger(workers) && workers >= 0)
    ? null
    : `workers must be an integer ≥ 0 (0: one per core), got ${workers}`;
}

/** Workers for `--workers N`: 0 or absent means one per core the process may use. */
export function resolveWorkerCount(workers: number | undefined): number {
  const problem = workerCountProblem(workers);
  if (problem !== null) throw new RangeError(problem);
  return workers === undefined || workers === 0 ? availableParallelism() : workers;
}

// Rows in flight per worker: one decoding in sharp's thread while the worker's JS thread resizes another.
const ROWS_PER_WORKER = 2;

// The workers run TypeScript: tsx is registered inside each before the worker module loads. (Node 20 does not apply
// `--import` hooks given in a Worker's execArgv to the worker's own entry module.)
const TSX_API = import.meta.resolve('tsx/esm/api');
const WORKER_MODULE = new URL('./image-worker.ts', import.meta.url).href;
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_MODULE)}); });`;

let liveWorkersInProcess = 0;

/** Image worker threads alive in this process, over all pools (0 once every pool is disposed). */
export function liveImageWorkers(): number {
  return liveWorkersInProcess;
}

interface Job {
  id: number;
  request: WorkerRequest;
  transfer: ArrayBuffer[];
  resolve: (reply: WorkerReply) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  exited: Promise<unknown>;
  inFlight: Map<number, Job>;
}

export class ImagePool {
  readonly size: number;
  private slots: Slot[] = [];
  private queue: Job[] = [];
  private nextId = 0;
  private failure: Error | null = null;
  private closed = false;

  constructor(workers?: number) {
    this.size = resolveWorkerCount(workers);
  }

  /** Workers of this pool that are still alive. */
  get liveWorkers(): number {
    return this.slots.length;
  }

  /**
   * Preprocesses row `index` into every target, in order, stopping at the first that cannot decode it: null when
   * all were written, else the ImageDecodeError (reason and message as the main thread would have thrown them).
   */
  preprocessRow(bytes: Uint8Array, index: number, targets: readonly BatchTarget[]): Promise<ImageDecodeError | null> {
    const shared = targets.map(({ batch, options }) => {
      if (!(batch.buffer instanceof SharedArrayBuffer)) throw new TypeError('an image pool target must be on a SharedArrayBuffer');
      return { buffer: batch.buffer, byteOffset: batch.byteOffset, length: batch.length, index, options };
    });
    return this.submit(bytes, (id, copy) => ({ kind: 'preprocess', id, bytes: copy, targets: shared })).then((reply) =>
      reply.outcome === 'rejected' ? new ImageDecodeError(reply.reason, reply.message) : null,
    );
  }

  /** checkImage run in a worker: the same verdict, with the decode off the calling thread. */
  checkImage(bytes: Uint8Array, options: ImageCheckOptions): Promise<ImageCheck> {
    return this.submit(bytes, (id, copy) => ({ kind: 'check', id, bytes: copy, options })).then((reply) => {
      if (reply.outcome !== 'checked') throw new ImagePoolError(`an image worker answered a check with "${reply.outcome}"`);
      return reply.check;
    });
  }

  private submit(bytes: Uint8Array, request: (id: number, copy: Uint8Array) => WorkerRequest): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new ImagePoolError('the image pool is disposed'));
    // A copy of just this image: posting a view of an Arrow column would clone the column's whole buffer.
    const copy = new Uint8Array(bytes);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.queue.push({ id, request: request(id, copy), transfer: [copy.buffer], resolve, reject });
      this.pump();
    });
  }

  /** Every row of a batch; the outcomes are in row order whatever order the workers finish in. */
  preprocessRows(rows: readonly Uint8Array[], targets: readonly BatchTarget[]): Promise<Array<ImageDecodeError | null>> {
    return Promise.all(rows.map((bytes, index) => this.preprocessRow(bytes, index, targets)));
  }

  /** Stops every worker; rows still pending are rejected. Safe to call more than once. */
  async dispose(): Promise<void> {
    this.closed = true;
    this.abandon(new ImagePoolError('the image pool was disposed with rows pending'));
    const slots = this.slots;
    await Promise.all(
      slots.map(async (slot) => {
        await slot.worker.terminate();
        await slot.exited;
      }),
    );
  }

  private pump(): void {
    if (this.queue.length === 0) return;
    if (this.slots.length === 0) for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
    for (const slot of this.slots) {
      while (slot.inFlight.size < ROWS_PER_WORKER && this.queue.length > 0) {
        const job = this.queue.shift()!;
        slot.inFlight.set(job.id, job);
        slot.worker.postMessage(job.request, job.transfer);
      }
      // Only a worker with rows in flight keeps the process alive: a forgotten pool never holds up its exit.
      if (slot.inFlight.size > 0) slot.worker.ref();
    }
  }

  private spawn(): Slot {
    const worker = new Worker(BOOTSTRAP, { eval: true });
    liveWorkersInProcess++;
    const slot: Slot = { worker, exited: once(worker, 'exit'), inFlight: new Map() };
    worker.on('message', (reply: WorkerReply) => this.settle(slot, reply));
    worker.on('error', (error) => this.fail(new ImagePoolError(`an image worker failed: ${error.message}`, { cause: error })));
    worker.on('exit', (code) => {
      liveWorkersInProcess--;
      this.slots = this.slots.filter((s) => s !== slot);
      if (!this.closed) this.fail(new ImagePoolError(`an image worker exited (code ${code})`));
    });
    return slot;
  }

  private settle(slot: Slot, reply: WorkerReply): void {
    const job = slot.inFlight.get(reply.id);
    if (job === undefined) return;
    slot.inFlight.delete(reply.id);
    if (reply.outcome !== 'failed') job.resolve(reply);
    else {
      const error = new Error(reply.message);
      error.name = reply.name;
      error.stack = reply.stack;
      job.reject(error);
    }
    if (slot.inFlight.size === 0) slot.worker.unref();
    this.pump();
  }

  /** A dead worker leaves rows nobody will write: the pool stops, and its callers learn why. */
  private fail(error: Error): void {
    if (this.failure || this.closed) return;
    this.failure = error;
    this.closed = true;
    this.abandon(error);
    for (const slot of this.slots) void slot.worker.terminate();
  }

  private abandon(error: Error): void {
    const pending = [...this.queue, ...this.slots.flatMap((slot) => [...slot.inFlight.values()])];
    this.queue = [];
    for (const slot of this.slots) slot.inFlight.clear();
    for (const job of pending) job.reject(error);
  }
}
