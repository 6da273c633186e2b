// The threads a command that decodes images ran on, for its summary: the image workers, libuv's pool (sized by
// bin/bdpo.cjs before it starts; sharp decodes there) and, for the model-running commands, ONNX Runtime.
import { availableParallelism } from 'node:os';
import { resolveWorkerCount } from '../models/image-pool.ts';

// libuv's default when UV_THREADPOOL_SIZE is unset (a library caller that did not size it).
const LIBUV_DEFAULT_THREADS = 4;

export function threadsLine(options: { workers?: number; intraOpNumThreads?: number }, runsModels: boolean): string {
  const cores = availableParallelism();
  const libuv = Number(process.env.UV_THREADPOOL_SIZE) || LIBUV_DEFAULT_THREADS;
  const onnx = runsModels ? `, ${options.intraOpNumThreads ?? cores} ONNX Runtime intra-op` : '';
  return `  threads: ${resolveWorkerCount(options.workers)} image workers, ${libuv} libuv${onnx}, on ${cores} cores`;
}
