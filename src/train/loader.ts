import { formatShape } from '../io/float16-bytes.ts';
import { LATENT_TABLE, MissingDataError, TEXT_TABLE, TensorStore } from '../io/tensor-store.ts';
import { PairOrder, resolveOrderOptions, type LoaderState, type PairLoaderOptions, type PlannedBatch } from './pair-order.ts';

// ---------------------------------------------------------------------------------------------------------------
// A compact index from content ids to row locations
// ---------------------------------------------------------------------------------------------------------------
// Cached tensors (latents/, text/): id → float16 bytes, row group by row group

// ---------------------------------------------------------------------------------------------------------------
// The pair order over consensus/<rule>

// ---------------------------------------------------------------------------------------------------------------
// The loader

/** One batch, ready for the trainer: float32 arrays, row-major. */
export interface LoaderBatch {
  /** [B, C, H, W] latents of image a (VAE mean × scaling factor, as cached). */
  latentsA: Float32Array;
  latentsB: Float32Array;
  latentShape: [number, number, number, number];
  /** [B, T, W] text-encoder states; the empty prompt's where captionDropped. */
  text: Float32Array;
  textShape: [number, number, number];
  /** y = P(a ≻ b): the consensus label (1, 0, or 0.5 where the rule's tie policy kept a tie), or `soft`. */
  label: Float64Array;
  pairIds: string[];
  promptIds: string[];
  /** 1 where the text states were replaced by the empty prompt's (caption dropout). */
  captionDropped: Uint8Array;
  /** Epoch this batch belongs to (0-based); batches never span two. */
  epoch: number;
  /** Batches returned before this one (across resumes). */
  index: number;
}

interface Produced {
  batch: LoaderBatch;
  stateAfter: LoaderState;
}

export class PairLoader implements AsyncIterable<LoaderBatch> {
  private pending: Promise<Produced | null> | null = null;
  private current: LoaderState;
  private closed = false;

  private constructor(
    private readonly order: PairOrder,
    private readonly latents: TensorStore,
    private readonly texts: TensorStore,
    private readonly emptyText: Float32Array | null,
    private readonly prefetch: boolean,
    private readonly encodeHint: string,
  ) {
    this.current = order.snapshot();
  }

  static async open(options: PairLoaderOptions): Promise<PairLoader> {
    const order = await PairOrder.open(resolveOrderOptions(options));
    return PairLoader.assemble(order, options);
  }

  /** Continues from `state()` of an earlier loader: the batches that follow are those the earlier one would have given. */
  static async resume(state: LoaderState, options: { dir?: string; cacheBytes?: number; prefetch?: boolean } = {}): Promise<PairLoader> {
    const order = await PairOrder.restore(state, options.dir ?? state.options.dir);
    return PairLoader.assemble(order, options);
  }

  private static async assemble(order: PairOrder, options: { cacheBytes?: number; prefetch?: boolean }): Promise<PairLoader> {
    const dir = order.options.dir;
    const cache = options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes };
    const [latents, texts] = await Promise.all([TensorStore.open(dir, LATENT_TABLE, cache), TensorStore.open(dir, TEXT_TABLE, cache)]);
    const encodeHint = `run bdpo encode ${dir} --rule ${order.options.rule}`;
    if (latents.size === 0) throw new MissingDataError(`${dir}: no latents/part-*.parquet (${encodeHint})`);
    if (texts.size === 0) throw new MissingDataError(`${dir}: no text/part-*.parquet (${encodeHint})`);
    if (latents.shape.length !== 3) throw new MissingDataError(`latents/: shape ${formatShape(latents.shape)} is not C×H×W`);
    if (texts.shape.length !== 2) throw new MissingDataError(`text/: shape ${formatShape(texts.shape)} is not tokens×width`);
    let emptyText: Float32Array | null = null;
    if (order.options.captionDropout > 0) {
      emptyText = new Float32Array(texts.length);
      await texts.decodeInto('', emptyText, 0, 'the empty prompt (caption dropout needs it)', encodeHint);
    }
    return new PairLoader(order, latents, texts, emptyText, options.prefetch ?? true, encodeHint);
  }

  get latentShape(): readonly number[] {
    return this.latents.shape;
  }

  get textShape(): readonly number[] {
    return this.texts.shape;
  }

  /** Position after the last batch returned by next(): pass it to PairLoader.resume. JSON-serialisable. */
  state(): LoaderState {
    return structuredClone(this.current);
  }

  /** The next batch, or null when every epoch has been read. */
  async next(): Promise<LoaderBatch | null> {
    if (this.closed) throw new Error('the pair loader is closed');
    const job = this.pending ?? this.produce();
    this.pending = null;
    const produced = await job;
    if (produced === null) return null;
    this.current = produced.stateAfter;
    if (this.prefetch) {
      this.pending = this.produce();
      // Surfaced by the next call to next(); never an unhandled rejection in between.
      this.pending.catch(() => undefined);
    }
    return produced.batch;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<LoaderBatch> {
    for (;;) {
      const batch = await this.next();
      if (batch === null) return;
      yield batch;
    }
  }

  /** Waits for a prefetch in flight and drops the caches. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pending?.catch(() => undefined);
    this.pending = null;
    this.latents.clear();
    this.texts.clear();
  }

  private async produce(): Promise<Produced | null> {
    const plan = await this.order.nextBatch();
    if (plan === null) return null;
    return { batch: await this.decode(plan), stateAfter: plan.stateAfter };
  }

  private async decode(plan: PlannedBatch): Promise<LoaderBatch> {
    const n = plan.entries.length;
    const [c, h, w] = this.latents.shape as [number, number, number];
    const [t, width] = this.texts.shape as [number, number];
    const per = this.latents.length;
    const perText = this.texts.length;
    const latentsA = new Float32Array(n * per);
    const latentsB = new Float32Array(n * per);
    const text = new Float32Array(n * perText);
    const hint = this.encodeHint;
    const jobs: Promise<void>[] = [];
    plan.entries.forEach((e, i) => {
      jobs.push(this.latents.decodeInto(e.imageA, latentsA, i * per, `image ${e.imageA} (image_a of pair ${e.pairId})`, hint));
      jobs.push(this.latents.decodeInto(e.imageB, latentsB, i * per, `image ${e.imageB} (image_b of pair ${e.pairId})`, hint));
      if (plan.dropped[i]) text.set(this.emptyText!, i * perText);
      else jobs.push(this.texts.decodeInto(e.promptId, text, i * perText, `prompt ${e.promptId} (pair ${e.pairId})`, hint));
    });
    await Promise.all(jobs);
    return {
      latentsA,
      latentsB,
      latentShape: [n, c, h, w],
      text,
      textShape: [n, t, width],
      label: Float64Array.from(plan.entries, (e) => e.y),
      pairIds: plan.entries.map((e) => e.pairId),
      promptIds: plan.entries.map((e) => e.promptId),
      captionDropped: plan.dropped,
      epoch: plan.epoch,
      index: plan.index,
    };
  }
}
