// The one place that creates, runs and releases ONNX Runtime sessions: device → execution provider mapping
// (with the reason for the choice), feeding only the inputs a model declares, plain typed arrays out.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { fromFloat16Array, toFloat16Array } from '../io/float16.ts';
import { InputError } from '../core/errors.ts';

export type Device = 'auto' | 'cpu' | 'cuda';
export type ExecutionProvider = 'cpu' | 'cuda';

export interface CreateSessionOptions {
  /** 'auto' (default) uses CUDA when its execution provider loads, else the CPU. */
  device?: Device;
  /** Default: the number of cores. */
  intraOpNumThreads?: number;
}

export type TypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

/** A tensor as plain data: row-major values and their dims. */
export interface TensorValue<T extends TypedArray = TypedArray> {
  data: T;
  dims: readonly number[];
}

/**
 * A feed. Plain number arrays are converted to the declared element type (float32, float16, int64, int32); integer
 * typed arrays to int64; float32/float64 to float16.
 */
export interface Feed {
  data: TypedArray | readonly number[];
  dims: readonly number[];
}

/** Declared name, element type and shape (numbers, or symbolic names such as "batch_size") of a model value. */
export interface ValueInfo {
  name: string;
  type: string;
  shape: readonly (number | string)[];
}

export interface OnnxSession {
  /** The underlying ONNX Runtime session (for anything this wrapper does not cover). */
  readonly session: ort.InferenceSession;
  readonly provider: ExecutionProvider;
  /** Why this provider was chosen, e.g. "auto: CUDA execution provider not available (...); using CPU". */
  readonly providerReason: string;
  readonly intraOpNumThreads: number;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  /**
   * Runs the model on the feeds it declares (extra feeds are ignored; a missing one is an error naming it).
   * `outputNames` restricts which outputs are fetched. float16 outputs are returned as Float32Array.
   */
  run(feeds: Readonly<Record<string, Feed>>, outputNames?: readonly string[]): Promise<Record<string, TensorValue>>;
  /** Releases the session after in-flight runs finish. Safe to call more than once. */
  dispose(): Promise<void>;
}

function describe(source: string | Uint8Array): string {
  return typeof source === 'string' ? source : `<${source.byteLength}-byte model>`;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Where onnxruntime-node keeps its native libraries. The CUDA provider library is only there when its installer
 * fetched it; checking first spares CPU-only machines a native error log line on every probe.
 */
function cudaLibraryState(): 'present' | 'absent' | 'unknown' {
  try {
    const require = createRequire(import.meta.url);
    const binDir = join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
    if (!existsSync(binDir)) return 'unknown';
    const names = ['libonnxruntime_providers_cuda.so', 'onnxruntime_providers_cuda.dll'];
    return names.some((n) => existsSync(join(binDir, n))) ? 'present' : 'absent';
  } catch {
    return 'unknown';
  }
}

function valueInfos(metadata: readonly ort.InferenceSession.ValueMetadata[]): ValueInfo[] {
  return metadata.map((m) =>
    m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] },
  );
}

/**
 * The options a session on `provider` is created with. CUDA: onnxruntime-node 1.30 creates the CUDA provider options
 * from ONNX Runtime's defaults and copies only `deviceId` from this object, so the throughput settings cannot be
 * passed from Node; two of them are those defaults already (cudnn_conv_algo_search EXHAUSTIVE,
 * do_copy_in_default_stream 1), and arena_extend_strategy stays kNextPowerOfTwo. Keys the binding would drop are
 * left out, so the object says what the session really gets.
 */
export function sessionOptionsFor(provider: ExecutionProvider, intraOpNumThreads: number): ort.InferenceSession.SessionOptions {
  const executionProviders: ort.InferenceSession.ExecutionProviderConfig[] =
    provider === 'cuda' ? [{ name: 'cuda', deviceId: 0 }] : ['cpu'];
  return { intraOpNumThreads, graphOptimizationLevel: 'all', executionProviders };
}

/** Opens a model (path or bytes) on the requested device. */
export async function createSession(source: string | Uint8Array, options: CreateSessionOptions = {}): Promise<OnnxSession> {
  const device = options.device ?? 'auto';
  if (device !== 'auto' && device !== 'cpu' && device !== 'cuda')
    throw new InputError(`unknown device "${String(device)}" (expected auto, cpu or cuda)`);
  const threads = options.intraOpNumThreads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new InputError(`intraOpNumThreads must be a positive integer, got ${threads}`);
  const open = (provider: ExecutionProvider) =>
    typeof source === 'string'
      ? ort.InferenceSession.create(source, sessionOptionsFor(provider, threads))
      : ort.InferenceSession.create(source, sessionOptionsFor(provider, threads));

  let session: ort.InferenceSession | undefined;
  let provider: ExecutionProvider = 'cpu';
  let reason: string;
  if (device === 'cpu') {
    reason = 'cpu requested';
  } else {
    const libs = cudaLibraryState();
    let cudaError: string | undefined;
    if (device === 'auto' && libs === 'absent') {
      cudaError = 'the CUDA provider library of onnxruntime-node is not installed';
    } else {
      try {
        session = await open('cuda');
        provider = 'cuda';
      } catch (e) {
        cudaError = message(e);
      }
    }
    if (device === 'cuda' && session === undefined) {
      throw new InputError(
        `cannot use the CUDA execution provider for ${describe(source)}: ${cudaError ?? 'unknown error'}` +
          ' (install onnxruntime-node with its CUDA libraries, or use device "cpu" or "auto")',
      );
    }
    reason =
      session !== undefined
        ? `${device}: CUDA execution provider loaded`
        : `auto: CUDA execution provider not available (${cudaError}); using CPU`;
  }
  if (session === undefined) {
    try {
      session = await open('cpu');
    } catch (e) {
      throw new InputError(`cannot load ONNX model ${describe(source)}: ${message(e)}`);
    }
  }
  return new Session(session, provider, reason, threads, describe(source));
}

/** The typed array ONNX Runtime expects for each element type. */
const ARRAY_FOR_TYPE: Record<string, string> = {
  float32: 'Float32Array',
  float64: 'Float64Array',
  float16: 'Uint16Array',
  int64: 'BigInt64Array',
  uint64: 'BigUint64Array',
  int32: 'Int32Array',
  uint32: 'Uint32Array',
  int16: 'Int16Array',
  uint16: 'Uint16Array',
  int8: 'Int8Array',
  uint8: 'Uint8Array',
  bool: 'Uint8Array',
};

function isNumberList(
  data: TypedArray | readonly number[],
): data is readonly number[] | Float64Array | Float32Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array {
  return Array.isArray(data) || !(data instanceof BigInt64Array || data instanceof BigUint64Array);
}

/**
 * Converts a feed to the declared element type where that loses nothing a caller could mean: integers to int64,
 * numbers to float32, float32 to float16 (fp16 exports); anything else must already have the right array type.
 */
function convertFeed(name: string, declared: string, data: TypedArray | readonly number[]): TypedArray {
  const kind = Array.isArray(data) ? 'Array' : (data as TypedArray).constructor.name;
  if (kind === ARRAY_FOR_TYPE[declared] && declared !== 'float16') return data as TypedArray;
  if (declared === 'float32' && isNumberList(data) && (Array.isArray(data) || data instanceof Float64Array)) return Float32Array.from(data);
  if (declared === 'float16' && (Array.isArray(data) || data instanceof Float32Array || data instanceof Float64Array))
    return toFloat16Array(data);
  if (declared === 'float16' && data instanceof Uint16Array) return data; // already half-precision bits
  if (declared === 'int64' && isNumberList(data) && !(data instanceof Float32Array || data instanceof Float64Array)) {
    const out = new BigInt64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i] as number;
      if (!Number.isInteger(v)) throw new Error(`input ${name}: int64 expected, got ${v} at index ${i}`);
      out[i] = BigInt(v);
    }
    return out;
  }
  if (declared === 'int32' && Array.isArray(data)) return Int32Array.from(data);
  throw new InputError(`input ${name}: the model declares ${declared}, got ${kind}`);
}

function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

class Session implements OnnxSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  private readonly pending = new Set<Promise<unknown>>();
  private disposed: Promise<void> | undefined;

  constructor(
    readonly session: ort.InferenceSession,
    readonly provider: ExecutionProvider,
    readonly providerReason: string,
    readonly intraOpNumThreads: number,
    private readonly label: string,
  ) {
    this.inputNames = [...session.inputNames];
    this.outputNames = [...session.outputNames];
    this.inputs = valueInfos(session.inputMetadata);
    this.outputs = valueInfos(session.outputMetadata);
  }

  async run(feeds: Readonly<Record<string, Feed>>, outputNames?: readonly string[]): Promise<Record<string, TensorValue>> {
    if (this.disposed !== undefined) throw new Error(`session for ${this.label} has been disposed`);
    const tensors = this.prepareFeeds(feeds);
    for (const o of outputNames ?? []) {
      if (!this.outputNames.includes(o))
        throw new InputError(`model ${this.label} has no output "${o}" (outputs: ${this.outputNames.join(', ')})`);
    }
    const job = outputNames === undefined ? this.session.run(tensors) : this.session.run(tensors, [...outputNames]);
    this.pending.add(job);
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await job;
    } catch (e) {
      throw new InputError(`running ${this.label} failed: ${message(e)}`);
    } finally {
      this.pending.delete(job);
      for (const t of Object.values(tensors)) t.dispose();
    }
    const out: Record<string, TensorValue> = {};
    for (const [name, value] of Object.entries(results)) {
      const t = value as ort.Tensor;
      // float16 comes back as Uint16Array bit patterns; callers get numbers.
      const data = t.type === 'float16' ? fromFloat16Array(t.data as Uint16Array) : (t.data as TypedArray);
      out[name] = { data, dims: [...t.dims] };
      t.dispose();
    }
    return out;
  }

  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      await Promise.allSettled([...this.pending]);
      await this.session.release();
    })();
    return this.disposed;
  }

  private prepareFeeds(feeds: Readonly<Record<string, Feed>>): Record<string, ort.Tensor> {
    const missing = this.inputs.filter((i) => feeds[i.name] === undefined);
    if (missing.length > 0) {
      const need = missing.map((i) => `"${i.name}" (${i.type} ${formatShape(i.shape)})`).join(', ');
      throw new InputError(`model ${this.label} needs input ${need}; feeds given: ${Object.keys(feeds).join(', ') || 'none'}`);
    }
    // Symbolic dims are not matched across inputs: ORT does not enforce that, and some exports reuse one name
    // ("batch") for the text and the image batch of a full CLIP model.
    const tensors: Record<string, ort.Tensor> = {};
    for (const info of this.inputs) {
      const feed = feeds[info.name] as Feed;
      const count = feed.dims.reduce((a, b) => a * b, 1);
      if (feed.data.length !== count) {
        throw new InputError(`input ${info.name}: ${feed.data.length} values do not fill dims ${formatShape(feed.dims)} (${count})`);
      }
      if (info.shape.length > 0) {
        const mismatch = `input ${info.name}: dims ${formatShape(feed.dims)} do not match the declared ${formatShape(info.shape)}`;
        if (feed.dims.length !== info.shape.length) throw new InputError(mismatch);
        info.shape.forEach((d, i) => {
          if (typeof d === 'number' && d !== feed.dims[i]) throw new InputError(mismatch);
        });
      }
      const data = convertFeed(info.name, info.type, feed.data);
      tensors[info.name] = new ort.Tensor(info.type as 'float32', data as Float32Array, [...feed.dims]);
    }
    return tensors;
  }
}

/** Picks a float32 output, with a clear error when it is absent or of another type. */
export function float32Output(outputs: Readonly<Record<string, TensorValue>>, name: string): TensorValue<Float32Array> {
  const v = outputs[name];
  if (v === undefined) throw new Error(`output "${name}" missing (got ${Object.keys(outputs).join(', ')})`);
  if (!(v.data instanceof Float32Array)) throw new Error(`output "${name}" is ${v.data.constructor.name}, expected Float32Array`);
  return { data: v.data, dims: v.dims };
}
