// The model side of a label run: one ONNX session per model file, shared by every metric that names it; text
// embeddings cached per prompt; image embeddings computed once per vision tower and shared (CLIP score and aesthetic
// both read ViT-L/14). Embeddings of split exports are not normalised (…WithProjection): we normalise all of them.
import { createSession, type Device, type OnnxSession } from './session.ts';
import { ClipTokenizer } from './tokenizer.ts';
import { MetricSpecError } from '../core/errors.ts';
import { visionKey, type MetricSpec } from './metric-spec.ts';
import { metricKind } from './metrics/registry.ts';

export interface TowerOptions {
  device?: Device;
  intraOpNumThreads?: number;
}

/** Rows of a [n, d] matrix scaled to unit length (a zero row stays zero). */
export function normaliseRows(data: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += data[i * d + j]! * data[i * d + j]!;
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let j = 0; j < d; j++) out[i * d + j] = data[i * d + j]! * scale;
  }
  return out;
}

export interface Embeddings {
  data: Float32Array;
  n: number;
  dim: number;
}

/** Owns the sessions and tokenizers of a set of metrics; dispose() releases them all. */
export class ModelHub {
  private readonly sessions = new Map<string, Promise<OnnxSession>>();
  private readonly tokenizers = new Map<string, Promise<ClipTokenizer>>();
  private readonly textCache = new Map<string, Float32Array>();
  private static readonly TEXT_CACHE_LIMIT = 50_000;

  constructor(private readonly options: TowerOptions = {}) {}

  session(path: string): Promise<OnnxSession> {
    let session = this.sessions.get(path);
    if (!session) {
      session = createSession(path, {
        device: this.options.device ?? 'auto',
        ...(this.options.intraOpNumThreads ? { intraOpNumThreads: this.options.intraOpNumThreads } : {}),
      });
      this.sessions.set(path, session);
    }
    return session;
  }

  tokenizer(spec: MetricSpec): Promise<ClipTokenizer> {
    const path = spec.tokenizer!;
    const key = `${path}|${spec.padTokenId ?? ''}`;
    let tokenizer = this.tokenizers.get(key);
    if (!tokenizer) {
      const options = spec.padTokenId === undefined ? {} : { padId: spec.padTokenId };
      tokenizer = path.endsWith('vocab.json')
        ? ClipTokenizer.fromVocabMerges(path, path.replace(/vocab\.json$/, 'merges.txt'), options)
        : ClipTokenizer.fromFile(path, options);
      this.tokenizers.set(key, tokenizer);
    }
    return tokenizer;
  }

  /** Checks every model of a metric against its kind's contract before any image is read; the image tower's provider. */
  validate(spec: MetricSpec): Promise<string> {
    return metricKind(spec.kind).validate(this, spec);
  }

  /** Normalised image embeddings of a batch of preprocessed images ([n, 3, S, S]) through the metric's tower. */
  async imageEmbeddings(spec: MetricSpec, pixels: Float32Array, n: number): Promise<Embeddings> {
    const size = spec.image.size;
    const feeds: Record<string, { data: Float32Array | BigInt64Array; dims: number[] }> = {
      pixel_values: { data: pixels, dims: [n, 3, size, size] },
    };
    let session: OnnxSession;
    if (spec.models.full) {
      session = await this.session(spec.models.full);
      // A full export computes both towers in one call; give it one short text.
      const tokens = (await this.anyTokenizer(spec)).encodeBatch(['']);
      feeds.input_ids = { data: tokens.inputIds, dims: tokens.shape };
      feeds.attention_mask = { data: tokens.attentionMask, dims: tokens.shape };
    } else {
      session = await this.session(spec.models.vision!);
    }
    const out = await session.run(feeds, ['image_embeds']);
    const embeds = out.image_embeds!;
    const dim = embeddingWidth(spec.models.full ?? spec.models.vision!, 'image_embeds', embeds.dims, n);
    return { data: normaliseRows(embeds.data as Float32Array, n, dim), n, dim };
  }

  /** Normalised text embeddings, cached per (text tower, tokenizer, prompt id). */
  async textEmbeddings(spec: MetricSpec, prompts: ReadonlyArray<{ id: string; text: string }>): Promise<Float32Array[]> {
    const tower = spec.models.full ?? spec.models.text!;
    const cacheKey = (id: string): string => `${tower}|${spec.tokenizer}|${spec.padTokenId ?? ''}|${id}`;
    const missing = prompts.filter((p, i) => !this.textCache.has(cacheKey(p.id)) && prompts.findIndex((q) => q.id === p.id) === i);
    if (missing.length > 0) {
      const tokens = (await this.tokenizer(spec)).encodeBatch(missing.map((p) => p.text));
      const feeds: Record<string, { data: Float32Array | BigInt64Array; dims: number[] }> = {
        input_ids: { data: tokens.inputIds, dims: tokens.shape },
        attention_mask: { data: tokens.attentionMask, dims: tokens.shape },
      };
      if (spec.models.full) {
        const size = spec.image.size;
        feeds.pixel_values = { data: new Float32Array(3 * size * size), dims: [1, 3, size, size] };
      }
      const session = await this.session(tower);
      const out = await session.run(feeds, ['text_embeds']);
      const embeds = out.text_embeds!;
      const dim = embeddingWidth(tower, 'text_embeds', embeds.dims, missing.length);
      const rows = normaliseRows(embeds.data as Float32Array, missing.length, dim);
      if (this.textCache.size + missing.length > ModelHub.TEXT_CACHE_LIMIT) this.textCache.clear();
      missing.forEach((p, i) => this.textCache.set(cacheKey(p.id), rows.slice(i * dim, (i + 1) * dim)));
    }
    return prompts.map((p) => this.textCache.get(cacheKey(p.id))!);
  }

  /** The aesthetic MLP over normalised image embeddings: one score per row. */
  async headScores(spec: MetricSpec, embeddings: Embeddings): Promise<Float64Array> {
    const session = await this.session(spec.models.head!);
    const input = session.inputNames[0]!;
    const out = await session.run({ [input]: { data: embeddings.data, dims: [embeddings.n, embeddings.dim] } });
    const name = session.outputNames[0]!;
    const { data, dims } = out[name]!;
    // Read flat, [n, 3] would silently give the three outputs of the first image as scores of three images.
    const oneScoreEach = dims[0] === embeddings.n && (dims.length === 1 || (dims.length === 2 && dims[1] === 1));
    if (!oneScoreEach) {
      throw new MetricSpecError(
        `${spec.models.head}: output "${name}" has shape ${formatDims(dims)} for ${embeddings.n} images; ` +
          'an aesthetic head must output [n] or [n, 1]',
      );
    }
    return Float64Array.from(data as Float32Array);
  }

  private anyTokenizer(spec: MetricSpec): Promise<ClipTokenizer> {
    if (!spec.tokenizer) throw new MetricSpecError(`${spec.path}: a full CLIP export needs "tokenizer"`);
    return this.tokenizer(spec);
  }

  async dispose(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const session of sessions) await (await session).dispose();
  }
}

export function requireOutputs(session: OnnxSession, path: string, names: string[]): void {
  for (const name of names) {
    if (session.outputNames.includes(name)) continue;
    if (name === 'image_embeds' && session.outputNames.includes('pooler_output')) {
      throw new MetricSpecError(
        `${path}: vision model has no projection (outputs ${session.outputNames.join(', ')}); ` +
          'export CLIPVisionModelWithProjection so it outputs image_embeds',
      );
    }
    if (name === 'text_embeds' && session.outputNames.includes('pooler_output')) {
      throw new MetricSpecError(
        `${path}: text model has no projection (outputs ${session.outputNames.join(', ')}); ` +
          'export CLIPTextModelWithProjection so it outputs text_embeds',
      );
    }
    throw new MetricSpecError(`${path}: model has no output "${name}" (outputs: ${session.outputNames.join(', ')})`);
  }
}

function formatDims(dims: readonly number[]): string {
  return `[${dims.join(', ')}]`;
}

/** d of an embedding output that must be [n, d]; any other shape is the model's fault, named with its file. */
function embeddingWidth(path: string, output: string, dims: readonly number[], n: number): number {
  if (dims.length !== 2 || dims[0] !== n || !(dims[1]! >= 1)) {
    throw new MetricSpecError(`${path}: output ${output} has shape ${formatDims(dims)} for ${n} inputs; expected [${n}, d]`);
  }
  return dims[1]!;
}

/** A cosine needs both towers to project to the same width; a shorter text embedding would be read past its end. */
export function checkSameWidth(spec: MetricSpec, image: Embeddings, texts: readonly Float32Array[]): void {
  const textDim = texts[0]?.length ?? image.dim;
  if (textDim === image.dim) return;
  const vision = spec.models.full ?? spec.models.vision!;
  const text = spec.models.full ?? spec.models.text!;
  throw new MetricSpecError(
    `${spec.path}: image embeddings of ${vision} are ${formatDims([image.n, image.dim])} but text embeddings of ${text} are ` +
      `${formatDims([texts.length, textDim])}: both towers must project to the same width`,
  );
}

/** Metrics grouped by the image tower they read, so each tower runs once per image. */
export function groupByVision(specs: readonly MetricSpec[]): Map<string, MetricSpec[]> {
  const groups = new Map<string, MetricSpec[]>();
  for (const spec of specs) {
    const key = visionKey(spec);
    groups.set(key, [...(groups.get(key) ?? []), spec]);
  }
  return groups;
}

/** Dot product of two unit vectors. */
export function cosine(a: Float32Array, aOffset: number, b: Float32Array, dim: number): number {
  let sum = 0;
  for (let j = 0; j < dim; j++) sum += a[aOffset + j]! * b[j]!;
  return sum;
}
