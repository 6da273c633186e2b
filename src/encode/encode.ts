// `bdpo encode`: caches what the trainer needs so that training never touches an image or a text model.
// - latents/part-*.parquet (image_id, shape "CxHxW", latent): the VAE encoder's latent mean × the scaling factor,
//   float16 little endian, for every image of the selected pairs (the kept pairs of consensus/<rule>, or every pair);
// - text/part-*.parquet (prompt_id, shape "TxW", hidden): the text encoder's last_hidden_state per prompt, float16,
//   plus one row for the empty prompt (prompt_id "") for caption dropout and classifier-free guidance.
// Units of work, as in the label stage: one images part (latents) or one prompts part (text) per selection, run by
// the shard its key hashes to and recorded in its own record file; a re-run skips finished units. Images are decoded and preprocessed for the next batch
// while the current one is in the VAE.
//
// Preprocessing is Stable Diffusion training's: RGB, shortest side resized to `resolution` with PIL's bicubic filter,
// centre crop, scaled to [-1, 1], NCHW — the label stage's preprocessing (src/label/preprocess.ts, a port of PIL's
// resampler) with mean = std = 0.5. Text: CLIP BPE, 77 tokens, padded as the tokenizer's files say (<|endoftext|>
// for SD 1.x and for a tokenizer.json without a pad token), input_ids only unless the model also declares
// attention_mask.
//
// meta/latents.json and meta/text.json record the model (sha256), resolution, scaling factor and tokenizer
// the cache was made with; a run with different ones is refused rather than mixed into the same cache, so every part
// in latents/ and text/ is valid for the settings recorded there. A unit is done when the manifest records it with the
// same input: the sha256 of its images (prompts) part and the digest of the selection. A selection that changes
// (consensus re-run into the same folder after calibration, say) gives new part files named after the new digest;
// an image already in any other part of latents/ (another rule, an earlier version of this one) is not encoded
// again, and the parts it lives in stay. Parts of the selection being written are not a source of reuse, so a
// resumed run writes the same files as an uninterrupted one.
import { access, rm, stat } from 'node:fs/promises';
import { JsonFileError } from '../io/json-file.ts';
import { encoderInfoLocation, readMetaJson } from '../core/dataset-meta.ts';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { checkPart, duplicateRowsDigest, listParts, readPart, writeRowsPart } from '../io/arrow-table.ts';
import { openDatasetParquet, readRowGroupColumns, writeParquetPart } from '../io/parquet.ts';
import {
  addCounts,
  describeInputs,
  emptyCounts,
  runRecord,
  recordRun,
  type Counts,
  type InputFile,
  type PartRecord,
} from '../core/manifest.ts';
import { partFingerprint, runUnits, UnitLedger, type UnitJob } from '../core/units.ts';
import { createSession, float32Output, type OnnxSession } from '../models/session.ts';
import type { RejectReason, RejectRow } from '../core/schema.ts';
import { WHOLE, type Shard } from '../core/shard.ts';
import type { Rgb } from '../models/preprocess.ts';
import { ImagePool, packRows, sharedFloat32, workerCountProblem } from '../models/image-pool.ts';
import { CLIP_CONTEXT_LENGTH, ClipTokenizer } from '../models/tokenizer.ts';
import type { TowerOptions } from '../models/towers.ts';
import { encodeFloat16, formatShape } from '../io/float16-bytes.ts';
import { IdIndex } from '../core/id-index.ts';
import { LATENT_TABLE, listParquetParts, rowSpans, TEXT_TABLE, TensorStore } from '../io/tensor-store.ts';
import { LATENT_SPECS, TEXT_SPECS } from '../core/schema.ts';
import { BdpoError } from '../core/errors.ts';

/** Stable Diffusion 1.x/2.x VAE scaling factor (SDXL's is 0.13025). */
export const SD_SCALING_FACTOR = 0.18215;
/** prompt_id of the empty prompt's row in text/. */
export const EMPTY_PROMPT_ID = '';

/** Row groups of ≈ 1 MiB: a loader cache miss reads one. */
const ROW_GROUP_BYTES = 2 ** 20;

export function rowGroupRows(bytesPerRow: number): number {
  return Math.max(1, Math.min(4096, Math.floor(ROW_GROUP_BYTES / Math.max(1, bytesPerRow))));
}

const MAX_RESOLUTION = 4096;
const HALF: Rgb = [0.5, 0.5, 0.5];
const STAGE = 'encode';

export class EncodeError extends BdpoError {
  override name = 'EncodeError';
}

export interface EncodeOptions extends TowerOptions {
  /** VAE encoder ONNX (input pixel_values [n, 3, H, W] in [-1, 1], output latent_mean). */
  vae: string;
  /** Text encoder ONNX (input input_ids [n, 77], output last_hidden_state). */
  text: string;
  /** tokenizer.json or vocab.json (merges.txt beside it); default: beside the text encoder, or ../tokenizer/. */
  tokenizer?: string;
  /** Folder under consensus/: encode the kept pairs of that rule. Absent: every pair in pairs/. */
  rule?: string;
  /** Side of the square crop fed to the VAE (a multiple of 8). Default 64. */
  resolution?: number;
  /** Default 0.18215 (SD 1.x/2.x). */
  scalingFactor?: number;
  /** Images per VAE batch (default 8). */
  batchSize?: number;
  /** Prompts per text-encoder batch (default 16). */
  textBatchSize?: number;
  /**
   * @deprecated Ignored since the image worker pool (`workers`) sets how many images are preprocessed at once;
   * still checked, so a caller's bad value is still an error.
   */
  concurrency?: number;
  /** Image worker threads (decode, resize, crop, scale) while the VAE runs; 0 or absent: one per core. */
  workers?: number;
  shard?: Shard;
  onProgress?: (progress: EncodeProgress) => void;
}

export interface EncodeProgress {
  unitsDone: number;
  unitsTotal: number;
  images: number;
  prompts: number;
  seconds: number;
}

export interface CacheSummary {
  /** Rows encoded by this run. */
  encoded: number;
  /** Rows of finished units from an earlier run of this selection (skipped units). */
  done: number;
  /** Rows not encoded because a finished unit of another selection already holds them. */
  reused: number;
  partsWritten: number;
  partsSkipped: number;
  /** Tensor shape of a row, e.g. "4x8x8"; null when nothing was encoded. */
  shape: string | null;
}

export interface EncodeSummary {
  dir: string;
  shard: Shard;
  /** "rule-<name>" or "all-pairs". */
  selection: string;
  provider: string;
  resolution: number;
  scalingFactor: number;
  latents: CacheSummary;
  text: CacheSummary;
  /** Images of this run's units: read = encoded + rejected. */
  counts: Counts;
  seconds: number;
  imagesPerSecond: number;
}

// ---------------------------------------------------------------------------------------------------------------
// What to encode

interface Selection {
  name: string;
  images: IdIndex;
  prompts: IdIndex;
}

/** The infix that names a selection's parts: its name and the first 8 hex digits of the digest of its ids. */
function selectionTag(name: string, ids: IdIndex): string {
  return `${name}-${ids.digest().slice(0, 8)}`;
}

async function selectPairs(dir: string, rule: string | undefined): Promise<Selection> {
  const images = IdIndex.builder();
  const prompts = IdIndex.builder();
  if (rule !== undefined) {
    if (!/^[a-z0-9][a-z0-9_.=-]*$/i.test(rule)) throw new EncodeError(`--rule must be a folder name under consensus/, got "${rule}"`);
    const files = await listParquetParts(dir, `consensus/${rule}`);
    if (files.length === 0) throw new EncodeError(`${dir}: no consensus/${rule}/part-*.parquet (run bdpo consensus first)`);
    for (const file of files) {
      const source = await openDatasetParquet(dir, file);
      for (const group of rowSpans(source.rowGroups, 65536)) {
        const c = await readRowGroupColumns(source, group, ['prompt_id', 'image_a', 'image_b', 'kept']);
        for (let i = 0; i < group.numRows; i++) {
          if (c.kept![i] !== true) continue;
          images.add(String(c.image_a![i]));
          images.add(String(c.image_b![i]));
          prompts.add(String(c.prompt_id![i]));
        }
      }
    }
    return { name: `rule-${rule}`, images: images.build(), prompts: prompts.build() };
  }
  const parts = await listParts(dir, 'pairs');
  if (parts.length === 0) throw new EncodeError(`${dir}: no pairs/part-*.arrow (run bdpo ingest first)`);
  for (const file of parts) {
    const part = await readPart(dir, file);
    const a = part.getChild('image_a')!;
    const b = part.getChild('image_b')!;
    const p = part.getChild('prompt_id')!;
    for (let i = 0; i < part.numRows; i++) {
      images.add(a.get(i) as string);
      images.add(b.get(i) as string);
      prompts.add(p.get(i) as string);
    }
  }
  return { name: 'all-pairs', images: images.build(), prompts: prompts.build() };
}

/** Parts of a cache folder that may serve as a source of reuse: all but those of the selection being written. */
async function reusableParts(dir: string, table: 'latents' | 'text', tag: string): Promise<string[]> {
  // Names of this version end in the tag; those of earlier versions carried a shard label after it.
  return (await listParquetParts(dir, table)).filter((file) => !file.endsWith(`-${tag}.parquet`) && !file.includes(`-${tag}-s`));
}

// ---------------------------------------------------------------------------------------------------------------
// Settings guard

type CacheSettings = Record<string, string | number | InputFile>;

/** The settings as compared: files by content only (paths may differ between machines, bytes may not). */
function comparable(settings: CacheSettings): string {
  const entries = Object.entries(settings).map(([k, v]) => [k, typeof v === 'object' ? { sha256: v.sha256 } : v] as const);
  return JSON.stringify(Object.fromEntries(entries.sort((x, y) => x[0].localeCompare(y[0]))));
}

/** Writes meta/<table>.json, or checks that the existing one names the same models and settings. */
async function checkSettings(dir: string, table: 'latents' | 'text', settings: CacheSettings): Promise<void> {
  const location = encoderInfoLocation(dir, table);
  const path = location.path;
  let existing: CacheSettings | null = null;
  try {
    // Settings describe the cached parts: with the table removed (to re-encode), the old settings bind nothing.
    if ((await listParts(dir, table, '.parquet')).length > 0) existing = (await readMetaJson(location)) as CacheSettings;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new EncodeError(error instanceof JsonFileError ? error.message : `${path}: ${(error as Error).message}`);
    }
  }
  if (existing === null) {
    await writeFileAtomic(path, Buffer.from(`${JSON.stringify(settings, null, 2)}\n`));
    await rm(location.legacy, { force: true });
    return;
  }
  if (comparable(existing) !== comparable(settings)) {
    const differ = Object.keys({ ...existing, ...settings }).filter(
      (k) => comparable({ [k]: existing[k] ?? '' }) !== comparable({ [k]: settings[k] ?? '' }),
    );
    throw new EncodeError(
      `${table}/ was encoded with other settings (${differ.join(', ')} differ from ${path}): ` +
        `use the same models and options, or remove ${join(dir, table)} to re-encode`,
    );
  }
  // A dataset of the earlier layout: its settings move to meta/, as the copy inside the table would keep engines
  // from reading the folder as one dataset.
  if (
    !(await access(path).then(
      () => true,
      () => false,
    ))
  ) {
    await writeFileAtomic(path, Buffer.from(`${JSON.stringify(existing, null, 2)}\n`));
    await rm(location.legacy, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Models

/** The tokenizer file to use: the explicit one, else beside the text encoder or in the diffusers layout. */
async function tokenizerPath(textModel: string, explicit: string | undefined): Promise<string> {
  if (explicit !== undefined) return explicit;
  const here = dirname(textModel);
  // Beside the model, or the diffusers layout (text_encoder/model.onnx next to tokenizer/).
  for (const path of [
    join(here, 'tokenizer.json'),
    join(here, '..', 'tokenizer', 'tokenizer.json'),
    join(here, '..', 'tokenizer', 'vocab.json'),
  ]) {
    if (
      await access(path).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  throw new EncodeError(`no tokenizer.json beside ${textModel} (nor in ../tokenizer/): pass --tokenizer`);
}

// Building the BPE tables takes ≈ 0.4 s; a process that encodes several datasets builds them once per file content.
const tokenizers = new Map<string, Promise<ClipTokenizer>>();

function openTokenizer(file: InputFile): Promise<ClipTokenizer> {
  // The path too: a tokenizer_config.json beside the file can change the padding.
  const key = `${resolve(file.path)}|${file.sha256}`;
  let tokenizer = tokenizers.get(key);
  if (!tokenizer) {
    const options = { maxLength: CLIP_CONTEXT_LENGTH };
    tokenizer = file.path.endsWith('vocab.json')
      ? ClipTokenizer.fromVocabMerges(file.path, join(dirname(file.path), 'merges.txt'), options)
      : ClipTokenizer.fromFile(file.path, options);
    tokenizers.set(key, tokenizer);
    tokenizer.catch(() => tokenizers.delete(key));
  }
  return tokenizer;
}

function vaeInputName(session: OnnxSession, path: string): string {
  if (session.inputNames.includes('pixel_values')) return 'pixel_values';
  if (session.inputNames.length === 1) return session.inputNames[0]!;
  throw new EncodeError(`${path}: a VAE encoder takes one input (pixel_values); this model takes ${session.inputNames.join(', ')}`);
}

function requireOutput(session: OnnxSession, path: string, name: string, what: string): void {
  if (!session.outputNames.includes(name)) {
    throw new EncodeError(`${path}: ${what} must output "${name}" (outputs: ${session.outputNames.join(', ')})`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The run

/** latents/part-<images part>-<selection tag>.parquet: one name under any shard layout. */
export function latentPartFile(partName: string, tag: string): string {
  return `latents/part-${partName}-${tag}.parquet`;
}

/** text/part-<prompts part>-<selection tag>.parquet */
export function textPartFile(partName: string, tag: string): string {
  return `text/part-${partName}-${tag}.parquet`;
}

export const EMPTY_TEXT_PART = 'text/part-empty-prompt.parquet';
const EMPTY_UNIT = `${STAGE}:text:empty-prompt`;

function emptySummary(): CacheSummary {
  return { encoded: 0, done: 0, reused: 0, partsWritten: 0, partsSkipped: 0, shape: null };
}

async function requireFile(flag: string, path: string): Promise<void> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
    throw new EncodeError(`--${flag} ${path}: ${error.message}`);
  });
  if (info === null) throw new EncodeError(`--${flag} ${path}: no such file`);
  if (!info.isFile()) throw new EncodeError(`--${flag} ${path}: not a file`);
}

export async function runEncode(dir: string, options: EncodeOptions): Promise<EncodeSummary> {
  const started = new Date();
  const shard = options.shard ?? WHOLE;
  const resolution = options.resolution ?? 64;
  const scalingFactor = options.scalingFactor ?? SD_SCALING_FACTOR;
  // The upper bound keeps a typo from allocating batch × 3 × resolution² floats.
  if (!Number.isInteger(resolution) || resolution < 8 || resolution > MAX_RESOLUTION || resolution % 8 !== 0) {
    throw new EncodeError(`--resolution must be a multiple of 8 in 8..${MAX_RESOLUTION}, got ${resolution}`);
  }
  if (!Number.isFinite(scalingFactor) || scalingFactor <= 0)
    throw new EncodeError(`--scaling-factor must be a positive number, got ${scalingFactor}`);
  const batchSize = options.batchSize ?? 8;
  const textBatchSize = options.textBatchSize ?? 16;
  const concurrency = options.concurrency ?? 4;
  for (const [name, n] of [
    ['batch size', batchSize],
    ['text batch size', textBatchSize],
    ['concurrency', concurrency],
  ] as const) {
    if (!Number.isInteger(n) || n < 1) throw new EncodeError(`${name} must be a positive integer, got ${n}`);
  }
  const workers = options.workers;
  const workersProblem = workerCountProblem(workers);
  if (workersProblem !== null) throw new EncodeError(workersProblem);
  const imageParts = await listParts(dir, 'images');
  const promptParts = await listParts(dir, 'prompts');
  if (imageParts.length === 0 || promptParts.length === 0)
    throw new EncodeError(`${dir}: no images/ or prompts/ parts (run bdpo ingest first)`);
  // A damaged part late in the list fails the run before its first output, as in label.
  for (const file of [...imageParts, ...promptParts]) await checkPart(dir, file);

  // The files the user named, in order, before the default tokenizer is looked for beside --text.
  const named: Array<[string, string | undefined]> = [
    ['vae', options.vae],
    ['text', options.text],
    ['tokenizer', options.tokenizer],
  ];
  for (const [flag, path] of named) if (path !== undefined) await requireFile(flag, path);
  // Hashes recorded by an earlier run are reused for files of the same size and mtime (SD's text encoder is 0.5 GB).
  const [vaeInput, textInput, tokenizerInput] = (await describeInputs(dir, [
    options.vae,
    options.text,
    await tokenizerPath(options.text, options.tokenizer),
  ])) as [InputFile, InputFile, InputFile];
  const tokenizer = await openTokenizer(tokenizerInput);
  const sessionOptions = {
    device: options.device ?? 'auto',
    ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
  } as const;
  const vae = await createSession(options.vae, sessionOptions);
  let textModel: OnnxSession | undefined;
  const summary: EncodeSummary = {
    dir,
    shard,
    selection: '',
    provider: `${vae.provider} (${vae.providerReason})`,
    resolution,
    scalingFactor,
    latents: emptySummary(),
    text: emptySummary(),
    counts: emptyCounts(),
    seconds: 0,
    imagesPerSecond: 0,
  };
  const existing: TensorStore[] = [];
  // Workers start with the first batch of images, so a run with every latent cached spawns none.
  const pool = new ImagePool(workers);
  try {
    textModel = await createSession(options.text, sessionOptions);
    const pixelInput = vaeInputName(vae, options.vae);
    requireOutput(vae, options.vae, 'latent_mean', 'a VAE encoder');
    requireOutput(textModel, options.text, 'last_hidden_state', 'a text encoder');
    if (!textModel.inputNames.includes('input_ids'))
      throw new EncodeError(`${options.text}: a text encoder takes input_ids (inputs: ${textModel.inputNames.join(', ')})`);
    await checkSettings(dir, 'latents', {
      model: vaeInput,
      resolution,
      scalingFactor,
      preprocess: 'rgb, shortest side bicubic, centre crop, [-1, 1]',
      output: 'latent_mean',
    });
    await checkSettings(dir, 'text', {
      model: textInput,
      tokenizer: tokenizerInput,
      maxLength: tokenizer.maxLength,
      padId: tokenizer.padId,
      output: 'last_hidden_state',
    });

    const selection = await selectPairs(dir, options.rule);
    summary.selection = selection.name;
    const imagesTag = selectionTag(selection.name, selection.images);
    const promptsTag = selectionTag(selection.name, selection.prompts);
    const cachedLatents = await TensorStore.open(dir, LATENT_TABLE, { files: await reusableParts(dir, 'latents', imagesTag) });
    const cachedText = await TensorStore.open(dir, TEXT_TABLE, { files: await reusableParts(dir, 'text', promptsTag) });
    existing.push(cachedLatents, cachedText);
    const ledger = await UnitLedger.open(dir, STAGE, shard);
    const partNameOf = (file: string): string =>
      basename(file)
        .replace(/^part-/, '')
        .replace(/\.arrow$/, '');
    ledger.assign([
      ...imageParts.map((file) => `${STAGE}:latents:${imagesTag}:${partNameOf(file)}`),
      ...promptParts.map((file) => `${STAGE}:text:${promptsTag}:${partNameOf(file)}`),
      EMPTY_UNIT,
    ]);

    const unitsTotal = imageParts.length + promptParts.length + 1;
    let unitsDone = 0;
    const progress = (): void =>
      options.onProgress?.({
        unitsDone,
        unitsTotal,
        images: summary.latents.encoded,
        prompts: summary.text.encoded,
        seconds: (Date.now() - started.getTime()) / 1000,
      });
    const unitFinished = (): void => {
      unitsDone++;
      progress();
    };

    const latentContext: LatentContext = {
      vae,
      vaePath: options.vae,
      pixelInput,
      resolution,
      scale: Math.fround(scalingFactor),
      batchSize,
      pool,
      onImages: (n) => {
        summary.latents.encoded += n;
        progress();
      },
    };
    const latentJobs = async function* (): AsyncGenerator<UnitJob> {
      for (const file of imageParts) {
        const partName = basename(file)
          .replace(/^part-/, '')
          .replace(/\.arrow$/, '');
        const key = `${STAGE}:latents:${imagesTag}:${partName}`;
        // Another shard's unit: not even its input's fingerprint is looked up.
        if (!ledger.owns({ key })) {
          unitFinished();
          continue;
        }
        const inputSha256 = await partFingerprint(dir, file, imagesTag, ...(await duplicateRowsDigest(dir, file)));
        yield {
          // One unit per selection: the parts another selection wrote stay recorded, as the cache this one reuses.
          unit: { key, inputSha256 },
          skipped: (record) => {
            summary.latents.partsSkipped++;
            summary.latents.done += record.counts.taken;
          },
          run: async () => {
            const result = await encodeImagesPart(dir, file, selection.images, cachedLatents, latentContext);
            summary.latents.reused += result.reused;
            const parts: PartRecord[] = [];
            if (result.ids.length > 0) {
              summary.latents.shape = result.shape;
              parts.push(
                await writeParquetPart(
                  dir,
                  latentPartFile(partName, imagesTag),
                  LATENT_SPECS,
                  {
                    image_id: result.ids,
                    shape: result.ids.map(() => result.shape!),
                    latent: result.latents,
                  },
                  {
                    rowGroupSize: rowGroupRows(result.latents[0]!.length),
                    metadata: {
                      stage: STAGE,
                      model: basename(options.vae),
                      resolution: String(resolution),
                      scaling_factor: String(scalingFactor),
                    },
                  },
                ),
              );
              summary.latents.partsWritten++;
            }
            if (result.rejects.length > 0) {
              parts.push(await writeRowsPart(dir, 'rejects', `${STAGE}-${partName}-${imagesTag}`, result.rejects));
            }
            const counts: Counts = {
              read: result.ids.length + result.rejects.length,
              taken: result.ids.length,
              rejected: result.rejects.length,
              byReason: countReasons(result.rejects),
            };
            addCounts(summary.counts, counts);
            return { parts, counts };
          },
        };
      }
    };
    await runUnits(ledger, latentJobs(), unitFinished);

    const textContext: TextContext = {
      model: textModel,
      tokenizer,
      batchSize: textBatchSize,
      onPrompts: (n) => {
        summary.text.encoded += n;
        progress();
      },
    };
    const textJobs = async function* (): AsyncGenerator<UnitJob> {
      for (const file of promptParts) {
        const partName = basename(file)
          .replace(/^part-/, '')
          .replace(/\.arrow$/, '');
        const key = `${STAGE}:text:${promptsTag}:${partName}`;
        if (!ledger.owns({ key })) {
          unitFinished();
          continue;
        }
        const inputSha256 = await partFingerprint(dir, file, promptsTag, ...(await duplicateRowsDigest(dir, file)));
        yield {
          unit: { key, inputSha256 },
          skipped: (record) => {
            summary.text.partsSkipped++;
            summary.text.done += record.counts.taken;
          },
          run: async () => {
            const part = await readPart(dir, file);
            const ids = part.getChild('prompt_id')!;
            const texts = part.getChild('text')!;
            const todo: Array<{ id: string; text: string }> = [];
            for (let i = 0; i < part.numRows; i++) {
              const id = ids.get(i) as string;
              if (!selection.prompts.mayContain(id)) continue;
              if ((await cachedText.find(id)) !== null) {
                summary.text.reused++;
                continue;
              }
              todo.push({ id, text: texts.get(i) as string });
            }
            const parts: PartRecord[] = [];
            if (todo.length > 0) {
              const result = await encodeTexts(todo, textContext);
              summary.text.shape = result.shape;
              parts.push(
                await writeParquetPart(
                  dir,
                  textPartFile(partName, promptsTag),
                  TEXT_SPECS,
                  {
                    prompt_id: todo.map((t) => t.id),
                    shape: todo.map(() => result.shape),
                    hidden: result.hidden,
                  },
                  { rowGroupSize: rowGroupRows(result.hidden[0]!.length), metadata: { stage: STAGE, model: basename(options.text) } },
                ),
              );
              summary.text.partsWritten++;
            }
            return { parts, counts: { read: todo.length, taken: todo.length, rejected: 0, byReason: {} } };
          },
        };
      }
      // The empty prompt is a unit of its own, run by the shard its key hashes to.
      if (!ledger.owns({ key: EMPTY_UNIT })) return;
      yield {
        unit: { key: EMPTY_UNIT },
        skipped: () => {
          summary.text.partsSkipped++;
          summary.text.done++;
        },
        run: async () => {
          const result = await encodeTexts([{ id: EMPTY_PROMPT_ID, text: '' }], textContext);
          summary.text.shape = result.shape;
          const part = await writeParquetPart(
            dir,
            EMPTY_TEXT_PART,
            TEXT_SPECS,
            { prompt_id: [EMPTY_PROMPT_ID], shape: [result.shape], hidden: result.hidden },
            { metadata: { stage: STAGE, model: basename(options.text) } },
          );
          summary.text.partsWritten++;
          return { parts: [part], counts: { read: 1, taken: 1, rejected: 0, byReason: {} } };
        },
      };
    };
    await runUnits(ledger, textJobs(), unitFinished);
    if (!ledger.owns({ key: EMPTY_UNIT })) unitFinished();
  } finally {
    await pool.dispose();
    for (const store of existing) store.clear();
    await vae.dispose();
    await textModel?.dispose();
  }
  summary.seconds = (Date.now() - started.getTime()) / 1000;
  summary.imagesPerSecond = summary.seconds > 0 ? summary.latents.encoded / summary.seconds : 0;
  await recordRun(
    dir,
    runRecord(
      STAGE,
      {
        selection: summary.selection,
        rule: options.rule ?? null,
        resolution,
        scalingFactor,
        batchSize,
        textBatchSize,
        maxLength: tokenizer.maxLength,
        padId: tokenizer.padId,
      },
      [vaeInput, textInput, tokenizerInput],
      summary.counts,
      started,
      shard,
    ),
  );
  return summary;
}

function countReasons(rejects: RejectRow[]): Record<string, number> {
  const byReason: Record<string, number> = {};
  for (const r of rejects) byReason[r.reason] = (byReason[r.reason] ?? 0) + 1;
  return byReason;
}

// ---------------------------------------------------------------------------------------------------------------
// Latents of one images part

interface LatentContext {
  vae: OnnxSession;
  vaePath: string;
  pixelInput: string;
  resolution: number;
  /** float32 scaling factor. */
  scale: number;
  batchSize: number;
  pool: ImagePool;
  onImages: (n: number) => void;
}

interface ImagesPartResult {
  ids: string[];
  latents: Uint8Array[];
  shape: string | null;
  rejects: RejectRow[];
  reused: number;
}

interface ImageJob {
  id: string;
  bytes: Uint8Array;
  sourceRef: string;
}

interface PreparedImages {
  jobs: ImageJob[];
  good: number[];
  pixels: Float32Array;
  rejects: RejectRow[];
}

async function encodeImagesPart(
  dir: string,
  file: string,
  wanted: IdIndex,
  cached: TensorStore,
  context: LatentContext,
): Promise<ImagesPartResult> {
  const part = await readPart(dir, file);
  const ids = part.getChild('image_id')!;
  const bytes = part.getChild('bytes')!;
  const refs = part.getChild('source_ref')!;
  const jobs: ImageJob[] = [];
  const seen = new Set<string>();
  let reused = 0;
  for (let i = 0; i < part.numRows; i++) {
    const id = ids.get(i) as string;
    // One latent per image, whatever prompts it was stored under.
    if (seen.has(id) || !wanted.mayContain(id)) continue;
    seen.add(id);
    if ((await cached.find(id)) !== null) {
      reused++;
      continue;
    }
    jobs.push({ id, bytes: bytes.get(i) as Uint8Array, sourceRef: refs.get(i) as string });
  }
  const result: ImagesPartResult = { ids: [], latents: [], shape: null, rejects: [], reused };
  const batches: ImageJob[][] = [];
  for (let start = 0; start < jobs.length; start += context.batchSize) batches.push(jobs.slice(start, start + context.batchSize));
  let next = batches.length > 0 ? prepareImages(batches[0]!, context) : null;
  try {
    for (let b = 0; b < batches.length; b++) {
      const batch = await next!;
      // Decode the next batch while this one is in the VAE.
      next = b + 1 < batches.length ? prepareImages(batches[b + 1]!, context) : null;
      result.rejects.push(...batch.rejects);
      const n = batch.good.length;
      if (n === 0) continue;
      const r = context.resolution;
      const out = await context.vae.run({ [context.pixelInput]: { data: batch.pixels, dims: [n, 3, r, r] } }, ['latent_mean']);
      const latent = float32Output(out, 'latent_mean');
      if (latent.dims.length !== 4 || latent.dims[0] !== n) {
        throw new EncodeError(`${context.vaePath}: latent_mean has dims [${latent.dims.join(', ')}], expected [${n}, C, H, W]`);
      }
      const shape = formatShape(latent.dims.slice(1));
      if (result.shape !== null && result.shape !== shape)
        throw new EncodeError(`${context.vaePath}: latent shape changed from ${result.shape} to ${shape}`);
      result.shape = shape;
      const per = latent.data.length / n;
      const scaled = new Float32Array(per);
      for (let k = 0; k < n; k++) {
        // float32 × float32 is exact in a double; fround rounds it once, as a float32 multiply does.
        for (let j = 0; j < per; j++) scaled[j] = Math.fround(latent.data[k * per + j]! * context.scale);
        result.ids.push(batch.jobs[batch.good[k]!]!.id);
        result.latents.push(encodeFloat16(scaled));
      }
      context.onImages(n);
    }
  } catch (error) {
    // The batch being prepared is abandoned: the pool's disposal rejects its rows, and nobody awaits them any more.
    next?.catch(() => undefined);
    throw error;
  }
  return result;
}

async function prepareImages(jobs: ImageJob[], context: LatentContext): Promise<PreparedImages> {
  const r = context.resolution;
  const per = 3 * r * r;
  // Shared memory: each worker writes its rows in place.
  const all = sharedFloat32(jobs.length * per);
  const outcomes = await context.pool.preprocessRows(
    jobs.map((job) => job.bytes),
    [{ batch: all, options: { size: r, mean: HALF, std: HALF } }],
  );
  // In row order, whichever worker finished first.
  const rejects = outcomes.flatMap((failure, i) =>
    failure === null ? [] : [encodeReject(jobs[i]!.sourceRef, failure.reason, failure.message)],
  );
  const good = outcomes.flatMap((failure, i) => (failure === null ? [i] : []));
  return { jobs, good, pixels: packRows(all, good, per), rejects };
}

function encodeReject(sourceRef: string, reason: RejectReason, detail: string): RejectRow {
  return { source_ref: sourceRef, stage: STAGE, reason, detail };
}

// ---------------------------------------------------------------------------------------------------------------
// Text states

interface TextContext {
  model: OnnxSession;
  tokenizer: ClipTokenizer;
  batchSize: number;
  onPrompts: (n: number) => void;
}

async function encodeTexts(
  prompts: ReadonlyArray<{ id: string; text: string }>,
  context: TextContext,
): Promise<{ hidden: Uint8Array[]; shape: string }> {
  const hidden: Uint8Array[] = [];
  let shape = '';
  for (let start = 0; start < prompts.length; start += context.batchSize) {
    const batch = prompts.slice(start, start + context.batchSize);
    const tokens = context.tokenizer.encodeBatch(batch.map((p) => p.text));
    const out = await context.model.run(
      {
        input_ids: { data: tokens.inputIds, dims: tokens.shape },
        attention_mask: { data: tokens.attentionMask, dims: tokens.shape },
      },
      ['last_hidden_state'],
    );
    const states = float32Output(out, 'last_hidden_state');
    if (states.dims.length !== 3 || states.dims[0] !== batch.length) {
      throw new EncodeError(`text encoder: last_hidden_state has dims [${states.dims.join(', ')}], expected [${batch.length}, T, W]`);
    }
    shape = formatShape(states.dims.slice(1));
    const per = states.data.length / batch.length;
    for (let k = 0; k < batch.length; k++) hidden.push(encodeFloat16(states.data.subarray(k * per, (k + 1) * per)));
    context.onPrompts(batch.length);
  }
  return { hidden, shape };
}
