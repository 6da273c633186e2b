// `bdpo label`: score every (image, prompt) of a dataset once with every metric, through ONNX Runtime, into
// scores/<metric>/part-*.parquet. The unit of work is one images part × one metric, so a re-run skips what is done and
// adding a metric later scores only that metric. Shard i of n scores every n-th images part (all metrics of a part
// together) and reads no other; an image that another part also holds is left to that part when
// the dataset reader yields the other copy first (io/part-dedupe.ts), so no image is scored twice. Within a part, decoding and preprocessing of the next batch run
// while the current batch is in the model.
import { rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { metricInfoLocation } from '../core/dataset-meta.ts';
import { checkPart, duplicateRowsDigest, listParts, readPart, readRows, writeRowsPart } from '../io/arrow-table.ts';
import { writeParquetPart } from '../io/parquet.ts';
import { runRecord, recordRun, emptyCounts, addCounts, type Counts, type PartRecord } from '../core/manifest.ts';
import { partFingerprint, runUnitGroups, UnitLedger, type UnitGroup, type UnitOutcome, type UnitSpec } from '../core/units.ts';
import { WHOLE, type Shard } from '../core/shard.ts';
import type { RejectReason, RejectRow } from '../core/schema.ts';
import { loadMetricSpec, type MetricSpec } from '../models/metric-spec.ts';
import { BdpoError, InputError, MetricSpecError } from '../core/errors.ts';
import { ModelHub, groupByVision, type Embeddings, type TowerOptions } from '../models/towers.ts';
import { metricKind } from '../models/metrics/registry.ts';
import type { Rgb } from '../models/preprocess.ts';
import { ImagePool, packRows, sharedFloat32, workerCountProblem, type BatchTarget } from '../models/image-pool.ts';
import { SCORE_SPECS, type MetricInfo } from '../core/schema.ts';
import { FileDigests, metricProvenance, unitVersion, type MetricProvenance } from '../models/provenance.ts';

export interface LabelOptions extends TowerOptions {
  /** Paths of metric JSON files. */
  metrics: string[];
  batchSize?: number;
  shard?: Shard;
  /**
   * @deprecated Ignored since the image worker pool (`workers`) sets how many images are preprocessed at once;
   * still checked, so a caller's bad value is still an error.
   */
  concurrency?: number;
  /** Image worker threads (decode, resize, normalise); 0 or absent: one per core. */
  workers?: number;
  onProgress?: (progress: LabelProgress) => void;
}

export interface LabelProgress {
  partsDone: number;
  partsTotal: number;
  images: number;
  seconds: number;
}

export interface MetricRunSummary {
  name: string;
  kind: string;
  version: string;
  provider: string;
  scored: number;
  partsWritten: number;
  partsSkipped: number;
}

export interface LabelSummary {
  dir: string;
  shard: Shard;
  metrics: MetricRunSummary[];
  /** Images read / scored / rejected in this run's units (skipped units count from the manifest). */
  counts: Counts;
  seconds: number;
  imagesPerSecond: number;
}

const STAGE = 'label';

/** One name under any shard layout: the images part's. */
export function scorePartFile(metric: string, partName: string): string {
  return `scores/${metric}/part-${partName}.parquet`;
}

export async function runLabel(dir: string, options: LabelOptions): Promise<LabelSummary> {
  checkLabelOptions(options);
  const started = new Date();
  const shard = options.shard ?? WHOLE;
  if (options.metrics.length === 0) throw new MetricSpecError('no metrics given (--metrics a.json b.json …)');
  const specs = await Promise.all(options.metrics.map(loadMetricSpec));
  const names = new Set<string>();
  for (const spec of specs) {
    if (names.has(spec.name)) throw new MetricSpecError(`two metrics are named "${spec.name}"`);
    names.add(spec.name);
  }
  const parts = await listParts(dir, 'images');
  if (parts.length === 0) throw new InputError(`${dir}: no images/part-*.arrow (run bdpo ingest first)`);
  // Every input is checked before the first output: a bad manifest or a damaged part late in the list must not
  // leave the scores of the parts before it behind.
  const ledger = await UnitLedger.open(dir, STAGE, shard);
  const ownerOfPart = (file: string): string => `${STAGE}:${file}`;
  ledger.assign(parts.map(ownerOfPart));
  const owned = parts.filter((file) => ledger.owns({ key: ownerOfPart(file) }));
  for (const file of owned) await checkPart(dir, file);

  const hub = new ModelHub(options);
  // Workers start with the first batch, so a run whose units are all done spawns none.
  const pool = new ImagePool(options.workers);
  const summaries: MetricRunSummary[] = [];
  const totals = emptyCounts();
  let imagesDone = 0;
  try {
    const providers: string[] = [];
    for (const spec of specs) providers.push(await hub.validate(spec));
    // What made the scores, hashed once per run: recorded with them, and part of each unit's version.
    const digests = new FileDigests();
    const provenance = new Map<string, MetricProvenance>();
    for (const spec of specs) provenance.set(spec.name, await metricProvenance(spec, digests));
    const prompts = new Map<string, string>();
    for await (const prompt of readRows(dir, 'prompts')) prompts.set(prompt.prompt_id, prompt.text);
    for (const [m, spec] of specs.entries()) {
      await writeMetricInfo(dir, spec, provenance.get(spec.name)!);
      const provider = providers[m]!;
      summaries.push({ name: spec.name, kind: spec.kind, version: spec.version, provider, scored: 0, partsWritten: 0, partsSkipped: 0 });
    }
    // Units of an images part that is gone (re-ingested under another name or shard layout) score nothing that exists.
    for (const [recordKey, record] of ledger.records()) {
      if (record.input !== undefined && !parts.includes(record.input) && ledger.owns({ key: ownerOfPart(record.input) })) {
        await ledger.forget(recordKey);
      }
    }

    interface MetricUnit extends UnitSpec {
      spec: MetricSpec;
    }
    const groups = async function* (): AsyncGenerator<UnitGroup<MetricUnit>> {
      for (const [index, file] of owned.entries()) {
        const partName = basename(file)
          .replace(/^part-/, '')
          .replace(/\.arrow$/, '');
        // The images part's recorded sha256 and which of its rows other parts hold first: a part that ingest rewrote
        // (other captions, same size), or whose duplicates moved, is rescored.
        const inputSha256 = await partFingerprint(dir, file, ...(await duplicateRowsDigest(dir, file)));
        let skippedCounts: Counts | null = null;
        let ran = false;
        yield {
          units: specs.map((spec) => ({
            key: `${STAGE}:${spec.name}:${partName}`,
            owner: ownerOfPart(file),
            version: unitVersion(spec, provenance.get(spec.name)!),
            input: file,
            inputSha256,
            spec,
          })),
          skipped: (unit, record) => {
            const summary = summaries.find((s) => s.name === unit.spec.name)!;
            summary.partsSkipped++;
            summary.scored += record.counts.taken;
            skippedCounts ??= record.counts;
          },
          run: async (todo) => {
            ran = true;
            const result = await scorePart(
              dir,
              file,
              todo.map((u) => u.spec),
              prompts,
              hub,
              pool,
              options,
              (n) => {
                imagesDone += n;
                options.onProgress?.({
                  partsDone: index,
                  partsTotal: owned.length,
                  images: imagesDone,
                  seconds: (Date.now() - started.getTime()) / 1000,
                });
              },
            );
            const rejectParts: PartRecord[] = [];
            if (result.rejects.length > 0) rejectParts.push(await writeRowsPart(dir, 'rejects', `label-${partName}`, result.rejects));
            const outcomes = new Map<string, UnitOutcome>();
            for (const unit of todo) {
              const spec = unit.spec;
              const columns = result.scores.get(spec.name)!;
              const written = await writeParquetPart(
                dir,
                scorePartFile(spec.name, partName),
                SCORE_SPECS,
                {
                  image_id: columns.imageIds,
                  prompt_id: columns.promptIds,
                  score: columns.scores,
                  metric_version: columns.imageIds.map(() => spec.version),
                },
                {
                  metadata: {
                    metric: spec.name,
                    kind: spec.kind,
                    version: spec.version,
                    provenance: JSON.stringify(provenance.get(spec.name)!),
                  },
                },
              );
              const counts: Counts = result.unitCounts.get(spec.name)!;
              outcomes.set(unit.key, { parts: [written, ...rejectParts], counts });
              const summary = summaries.find((s) => s.name === spec.name)!;
              summary.partsWritten++;
              summary.scored += columns.scores.length;
            }
            addCounts(totals, result.imageCounts);
            return outcomes;
          },
        };
        if (!ran && skippedCounts) addCounts(totals, skippedCounts);
        options.onProgress?.({
          partsDone: index + 1,
          partsTotal: owned.length,
          images: imagesDone,
          seconds: (Date.now() - started.getTime()) / 1000,
        });
      }
    };
    await runUnitGroups(ledger, groups());
  } finally {
    await pool.dispose();
    await hub.dispose();
  }
  const seconds = (Date.now() - started.getTime()) / 1000;
  await recordRun(
    dir,
    runRecord(
      STAGE,
      { metrics: specs.map((s) => ({ name: s.name, version: s.version, path: s.path })), batchSize: options.batchSize ?? 16 },
      [],
      totals,
      started,
      shard,
    ),
  );
  return { dir, shard, metrics: summaries, counts: totals, seconds, imagesPerSecond: seconds > 0 ? imagesDone / seconds : 0 };
}

/** Options of the library call that are not metric files: a batch size of 0 would loop forever, so none passes. */
export class LabelOptionError extends BdpoError {}

function checkLabelOptions(options: LabelOptions): void {
  const counts: Array<[string, number | undefined]> = [
    ['batchSize', options.batchSize],
    ['concurrency', options.concurrency],
    ['intraOpNumThreads', options.intraOpNumThreads],
  ];
  for (const [name, value] of counts) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1))
      throw new LabelOptionError(`${name} must be an integer ≥ 1, got ${value}`);
  }
  const workers = options.workers;
  const workersProblem = workerCountProblem(workers);
  if (workersProblem !== null) throw new LabelOptionError(workersProblem);
}

async function writeMetricInfo(dir: string, spec: MetricSpec, provenance: MetricProvenance): Promise<void> {
  const { name, kind, version, score, temperature } = spec;
  const info: MetricInfo = { name, kind, version, score, temperature, provenance: { ...provenance } };
  const location = metricInfoLocation(dir, spec.name);
  await writeFileAtomic(location.path, Buffer.from(`${JSON.stringify(info, null, 2)}\n`));
  // A dataset of the earlier layout: the copy inside scores/<metric>/ would keep engines from reading the folder.
  await rm(location.legacy, { force: true });
}

function countReasons(rejects: RejectRow[]): Record<string, number> {
  const byReason: Record<string, number> = {};
  for (const r of rejects) byReason[r.reason] = (byReason[r.reason] ?? 0) + 1;
  return byReason;
}

interface ScoreColumns {
  imageIds: string[];
  promptIds: string[];
  scores: number[];
}

interface PartResult {
  read: number;
  scores: Map<string, ScoreColumns>;
  /** Every reject of the part, for its rejects file: those of all metrics, and the per-metric non-finite ones. */
  rejects: RejectRow[];
  /** Per metric: read = its scores + the rejects of every metric + its own. */
  unitCounts: Map<string, Counts>;
  /** Per image: taken when every metric scored it. */
  imageCounts: Counts;
}

interface Row {
  imageId: string;
  promptId: string;
  text: string;
  bytes: Uint8Array;
  sourceRef: string;
}

interface PreparedBatch {
  rows: Row[];
  /** Per image setting (visionKey): pixels of the rows that decoded, packed in order. */
  pixels: Map<string, Float32Array>;
  /** Indices (into rows) of the rows that decoded. */
  good: number[];
  rejects: RejectRow[];
}

async function scorePart(
  dir: string,
  file: string,
  specs: MetricSpec[],
  prompts: Map<string, string>,
  hub: ModelHub,
  pool: ImagePool,
  options: LabelOptions,
  onImages: (n: number) => void,
): Promise<PartResult> {
  const part = await readPart(dir, file);
  const ids = part.getChild('image_id')!;
  const promptIds = part.getChild('prompt_id')!;
  const bytes = part.getChild('bytes')!;
  const refs = part.getChild('source_ref')!;
  const rows: Row[] = [];
  const rejects: RejectRow[] = [];
  const seen = new Set<string>();
  let read = 0;
  for (let i = 0; i < part.numRows; i++) {
    const imageId = ids.get(i) as string;
    const promptId = promptIds.get(i) as string;
    // The same image under the same prompt (a generation repeated across seeds) is scored once.
    if (seen.has(`${imageId}:${promptId}`)) continue;
    seen.add(`${imageId}:${promptId}`);
    read++;
    const text = prompts.get(promptId);
    if (text === undefined) {
      rejects.push(labelReject(refs.get(i) as string, 'missing_prompt', `prompt ${promptId.slice(0, 12)} is not in prompts/`));
      continue;
    }
    rows.push({ imageId, promptId, text, bytes: bytes.get(i) as Uint8Array, sourceRef: refs.get(i) as string });
  }

  const scores = new Map<string, ScoreColumns>(specs.map((s) => [s.name, { imageIds: [], promptIds: [], scores: [] }]));
  const shared: RejectRow[] = [...rejects];
  const own = new Map<string, RejectRow[]>(specs.map((s) => [s.name, []]));
  // Rows (batch index, row index) that some metric could not score: the image is not taken.
  const notScored = new Set<string>();
  const groups = groupByVision(specs);
  const batchSize = options.batchSize ?? 16;
  const batches: Row[][] = [];
  for (let start = 0; start < rows.length; start += batchSize) batches.push(rows.slice(start, start + batchSize));

  let next = batches.length > 0 ? prepareBatch(batches[0]!, groups, pool) : null;
  try {
    for (let b = 0; b < batches.length; b++) {
      const batch = await next!;
      // Decode the next batch while this one is in the model.
      next = b + 1 < batches.length ? prepareBatch(batches[b + 1]!, groups, pool) : null;
      rejects.push(...batch.rejects);
      shared.push(...batch.rejects);
      if (batch.good.length === 0) continue;
      const goodRows = batch.good.map((i) => batch.rows[i]!);
      for (const [key, group] of groups) {
        const embeddings = await hub.imageEmbeddings(group[0]!, batch.pixels.get(key)!, goodRows.length);
        for (const spec of group) {
          const out = scores.get(spec.name)!;
          const prompts = goodRows.map((r) => ({ id: r.promptId, text: r.text }));
          const { values, texts } = await metricKind(spec.kind).score(hub, spec, embeddings, prompts);
          goodRows.forEach((row, i) => {
            const problem = nonFinite(spec, embeddings, i, texts?.[i], values[i]!);
            if (problem !== null) {
              const reject = labelReject(row.sourceRef, 'non_finite_score', `metric ${spec.name}: ${problem}`);
              rejects.push(reject);
              own.get(spec.name)!.push(reject);
              notScored.add(`${b}:${i}`);
              return;
            }
            out.imageIds.push(row.imageId);
            out.promptIds.push(row.promptId);
            out.scores.push(values[i]!);
          });
        }
      }
      onImages(goodRows.length);
    }
  } catch (error) {
    // The batch being prepared is abandoned: the pool's disposal rejects its rows, and nobody awaits them any more.
    next?.catch(() => undefined);
    throw error;
  }
  const unitCounts = new Map<string, Counts>(
    specs.map((spec) => {
      const mine = [...shared, ...own.get(spec.name)!];
      return [spec.name, { read, taken: scores.get(spec.name)!.scores.length, rejected: mine.length, byReason: countReasons(mine) }];
    }),
  );
  const byReason = countReasons(shared);
  if (notScored.size > 0) byReason.non_finite_score = notScored.size;
  const rejected = shared.length + notScored.size;
  return { read, scores, rejects, unitCounts, imageCounts: { read, taken: read - rejected, rejected, byReason } };
}

/** Why row i of a batch has no finite score for `spec` (its image embedding, its text embedding or the score), or null. */
function nonFinite(spec: MetricSpec, embeddings: Embeddings, i: number, text: Float32Array | undefined, score: number): string | null {
  if (!allFinite(embeddings.data.subarray(i * embeddings.dim, (i + 1) * embeddings.dim))) {
    return `image embedding of ${basename(spec.models.full ?? spec.models.vision!)} is not finite`;
  }
  if (text !== undefined && !allFinite(text)) return `text embedding of ${basename(spec.models.full ?? spec.models.text!)} is not finite`;
  return Number.isFinite(score) ? null : `score is ${score}`;
}

function allFinite(values: Float32Array): boolean {
  for (const x of values) if (!Number.isFinite(x)) return false;
  return true;
}

async function prepareBatch(rows: Row[], groups: Map<string, MetricSpec[]>, pool: ImagePool): Promise<PreparedBatch> {
  const settings = [...groups.entries()].map(([key, group]) => ({ key, spec: group[0]! }));
  const full = new Map<string, Float32Array>();
  const targets: BatchTarget[] = settings.map(({ key, spec }) => {
    // Shared memory: each worker writes its rows in place.
    const batch = sharedFloat32(rows.length * 3 * spec.image.size * spec.image.size);
    full.set(key, batch);
    const image = { size: spec.image.size, mean: spec.image.mean as unknown as Rgb, std: spec.image.std as unknown as Rgb };
    return { batch, options: { profile: spec.preprocess, ...image } };
  });
  const outcomes = await pool.preprocessRows(
    rows.map((row) => row.bytes),
    targets,
  );
  // The outcomes are in row order, whichever worker finished first, so that outputs stay byte-identical.
  const rejects = outcomes.flatMap((failure, i) =>
    failure === null ? [] : [labelReject(rows[i]!.sourceRef, failure.reason, failure.message)],
  );
  const good = outcomes.flatMap((failure, i) => (failure === null ? [i] : []));
  const pixels = new Map<string, Float32Array>();
  for (const { key, spec } of settings) pixels.set(key, packRows(full.get(key)!, good, 3 * spec.image.size * spec.image.size));
  return { rows, pixels, good, rejects };
}

function labelReject(sourceRef: string, reason: RejectReason, detail: string): RejectRow {
  return { source_ref: sourceRef, stage: STAGE, reason, detail };
}
