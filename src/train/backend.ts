// Picks the fastest TensorFlow.js backend that loads here. The native bindings are optional dependencies whose
// install fails without their library download, so each is tried and skipped quietly when absent.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InputError } from '../core/errors.ts';

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendSelection {
  /** tfjs' name of the active backend: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  /** Why this one: which candidates failed and how. */
  reason: string;
}

const require = createRequire(import.meta.url);

async function importOptional(specifier: string): Promise<void> {
  // A variable specifier keeps the type checker from requiring packages that are legitimately absent.
  const spec: string = specifier;
  await import(spec);
}

async function tryNative(pkg: string): Promise<void> {
  await importOptional(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new InputError(`${pkg} loaded but the tensorflow backend did not initialise`);
}

async function tryWasm(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // A plain path prefix (not a URL, no platform fetch) makes the loader read the .wasm binaries from the package's
  // own dist folder with fs, so this works offline.
  const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  wasm.setWasmPaths(`${dist}/`);
  if (!(await tf.setBackend('wasm'))) throw new InputError('wasm backend did not initialise');
}

async function tryCpu(): Promise<void> {
  if (!(await tf.setBackend('cpu'))) throw new InputError('cpu backend did not initialise');
}

const candidates: Record<Exclude<BackendChoice, 'auto'>, () => Promise<void>> = {
  'tensorflow-gpu': () => tryNative('@tensorflow/tfjs-node-gpu'),
  tensorflow: () => tryNative('@tensorflow/tfjs-node'),
  wasm: tryWasm,
  cpu: tryCpu,
};

const autoOrder: Exclude<BackendChoice, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

function firstLine(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return 'not installed';
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}

/**
 * Activates a backend: with 'auto', native GPU, then native CPU, then wasm, then the pure-JS cpu backend; with a
 * named choice, only that one (an error if it does not load).
 */
export async function selectBackend(choice: BackendChoice = 'auto'): Promise<BackendSelection> {
  const order = choice === 'auto' ? autoOrder : [choice];
  const failures: string[] = [];
  for (const candidate of order) {
    try {
      await candidates[candidate]();
      await tf.ready();
      const skipped = failures.length > 0 ? `; skipped ${failures.join('; ')}` : '';
      return { name: tf.getBackend(), reason: `${candidate} loaded${skipped}` };
    } catch (error) {
      failures.push(`${candidate}: ${firstLine(error)}`);
    }
  }
  throw new InputError(`no TensorFlow.js backend loaded (${failures.join('; ')})`);
}

/** The file URL of the wasm binaries, for callers that want to log where they came from. */
export function wasmBinaryLocation(): string {
  return pathToFileURL(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')).href;
}
