// The one place where the files between stages are described (docs/design.md §2): table names, column names, Arrow
// types and nullability, reject codes. Writers take their layouts from here; readers name the columns they read,
// which are always ones defined here.
import { Binary, Field, Float64, Int32, Schema, Utf8, type DataType } from 'apache-arrow';
import type { ColumnSpec } from '../io/parquet.ts';

export const FORMAT_VERSION = 1;

function field(name: string, type: DataType, nullable = false): Field {
  return new Field(name, type, nullable);
}

/** prompts/part-*.arrow — one row per distinct prompt (id = hash of the normalised text). */
export const PROMPTS_SCHEMA = new Schema([
  field('prompt_id', new Utf8()),
  field('text', new Utf8()),
  field('source', new Utf8()),
  field('split', new Utf8(), true),
  field('category', new Utf8(), true),
  field('challenge', new Utf8(), true),
  field('note', new Utf8(), true),
  // Position in the prompt list a generation folder was made from (PartiPrompts, HPD benchmark lists).
  field('prompt_index', new Int32(), true),
]);

/** images/part-*.arrow — one row per distinct image (id = sha256 of its bytes), bytes as stored at the source. */
export const IMAGES_SCHEMA = new Schema([
  field('image_id', new Utf8()),
  field('prompt_id', new Utf8()),
  field('bytes', new Binary()),
  field('mime', new Utf8()),
  field('width', new Int32()),
  field('height', new Int32()),
  field('source_ref', new Utf8()),
  // Generations only: which model made it and with which seed (null for preference datasets).
  field('model', new Utf8(), true),
  field('seed', new Int32(), true),
]);

/** pairs/part-*.arrow — one row per preference pair; human_pref = P(a ≻ b) ∈ {1, 0, 0.5} or null. */
export const PAIRS_SCHEMA = new Schema([
  field('pair_id', new Utf8()),
  field('prompt_id', new Utf8()),
  field('image_a', new Utf8()),
  field('image_b', new Utf8()),
  field('human_pref', new Float64(), true),
  field('split', new Utf8(), true),
  field('source_ref', new Utf8()),
]);

/** rejects/part-*.arrow — every input row that was not taken, with a fixed reason code. */
export const REJECTS_SCHEMA = new Schema([
  field('source_ref', new Utf8()),
  field('stage', new Utf8()),
  field('reason', new Utf8()),
  field('detail', new Utf8()),
]);

export const TABLES = {
  prompts: PROMPTS_SCHEMA,
  images: IMAGES_SCHEMA,
  pairs: PAIRS_SCHEMA,
  rejects: REJECTS_SCHEMA,
} as const;
export type TableName = keyof typeof TABLES;

export interface PromptRow {
  prompt_id: string;
  text: string;
  source: string;
  split: string | null;
  category: string | null;
  challenge: string | null;
  note: string | null;
  prompt_index: number | null;
}

export interface ImageRow {
  image_id: string;
  prompt_id: string;
  bytes: Uint8Array;
  mime: string;
  width: number;
  height: number;
  source_ref: string;
  model: string | null;
  seed: number | null;
}

export interface PairRow {
  pair_id: string;
  prompt_id: string;
  image_a: string;
  image_b: string;
  human_pref: number | null;
  split: string | null;
  source_ref: string;
}

export interface RejectRow {
  source_ref: string;
  stage: string;
  reason: RejectReason;
  detail: string;
}

export interface TableRows {
  prompts: PromptRow;
  images: ImageRow;
  pairs: PairRow;
  rejects: RejectRow;
}

/** Fixed reject codes: reports group by them, so they never change meaning. */
export const REJECT_REASONS = [
  'bad_image', // bytes that do not decode as an image (corrupt, truncated, not an image)
  'empty_image', // zero bytes, or a null image cell
  'unsupported_format', // decodes, but not a format the metrics read (jpeg, png, webp, gif)
  'too_many_pixels', // width × height above the limit, found from the header before any decode
  'missing_file', // a referenced image file does not exist
  'path_outside_root', // a referenced path is absolute or climbs out of the dataset root
  'missing_prompt', // no caption/prompt, or a generation whose index is not in the prompt list
  'identical_images', // both sides of a pair are the same image
  'duplicate_pair', // the same prompt and images (same order) as an earlier row
  'bad_label', // a human label outside {1, 0, 0.5}
  'malformed_entry', // a row or entry missing required fields or of the wrong shape
  'unrecognised_name', // a generation file whose name is not <index>[_<seed>].<ext>
  'score_failed', // the label stage could not score the image
  'bad_text', // text that is not valid UTF-8 (or holds a lone surrogate): kept as is it would merge distinct prompts
  'non_finite_score', // a metric's score (or an embedding it reads) came out NaN or ±Inf; the detail names the metric
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Column names of the per-metric score files (Parquet). */
export const SCORE_COLUMNS = ['image_id', 'prompt_id', 'score', 'metric_version'] as const;

export const SOURCES = ['pickapic', 'hpd', 'parti', 'images'] as const;
export type SourceName = (typeof SOURCES)[number];

// Parquet files of the later stages (column specs for the one Parquet module).

/** scores/<metric>/part-*.parquet — one row per scored (image, prompt). */
export const SCORE_SPECS: readonly ColumnSpec[] = [
  { name: 'image_id', type: 'string', nullable: false },
  { name: 'prompt_id', type: 'string', nullable: false },
  { name: 'score', type: 'double', nullable: false },
  { name: 'metric_version', type: 'string', nullable: false },
];

/** scores/<metric>/metric.json: what consensus needs to know of a metric without its models (τ, kind, version). */
export interface MetricInfo {
  name: string;
  kind: string;
  version: string;
  score: string;
  temperature: number;
  /** What made the scores (label: model and tokenizer sha256s, preprocessing profile, options, tool version). */
  provenance?: Record<string, unknown>;
}

/** consensus/<rule>/part-*.parquet — one row per pair; the meaning of each column is in label/consensus.ts. */
export function consensusSpecs(metrics: readonly string[]): ColumnSpec[] {
  return [
    { name: 'pair_id', type: 'string', nullable: false },
    { name: 'prompt_id', type: 'string', nullable: false },
    { name: 'image_a', type: 'string', nullable: false },
    { name: 'image_b', type: 'string', nullable: false },
    { name: 'human_pref', type: 'double', nullable: true },
    { name: 'split', type: 'string', nullable: true },
    ...metrics.flatMap((m): ColumnSpec[] => [
      { name: `p_${m}`, type: 'double', nullable: true },
      { name: `vote_${m}`, type: 'int8', nullable: false },
    ]),
    { name: 'votes_a', type: 'int32', nullable: false },
    { name: 'votes_b', type: 'int32', nullable: false },
    { name: 'label', type: 'double', nullable: true },
    { name: 'soft', type: 'double', nullable: true },
    { name: 'margin', type: 'double', nullable: true },
    { name: 'disagreement', type: 'double', nullable: true },
    { name: 'kept', type: 'boolean', nullable: false },
    { name: 'tie', type: 'boolean', nullable: false },
    { name: 'reason', type: 'string', nullable: false },
  ];
}

/** latents/part-*.parquet — VAE latent mean × scaling factor, float16 little endian. */
export const LATENT_SPECS: readonly ColumnSpec[] = [
  { name: 'image_id', type: 'string', nullable: false },
  { name: 'shape', type: 'string', nullable: false },
  { name: 'latent', type: 'binary', nullable: false },
];

/** text/part-*.parquet — text-encoder hidden states per prompt, float16 little endian. */
export const TEXT_SPECS: readonly ColumnSpec[] = [
  { name: 'prompt_id', type: 'string', nullable: false },
  { name: 'shape', type: 'string', nullable: false },
  { name: 'hidden', type: 'binary', nullable: false },
];

/**
 * tables/<table>/part-*.parquet — Parquet copies of the Arrow IPC tables (`bdpo tables`), for SQL engines that read
 * no Arrow IPC. Same columns, types and nullability as the Arrow schemas; images leave out `bytes` unless asked.
 */
export function parquetTableSpecs(table: TableName, options: { imageBytes?: boolean } = {}): ColumnSpec[] {
  const specs: ColumnSpec[] = [];
  for (const f of TABLES[table].fields) {
    if (table === 'images' && f.name === 'bytes' && !options.imageBytes) continue;
    specs.push({ name: f.name, type: parquetColumnType(f.type), nullable: f.nullable });
  }
  return specs;
}

function parquetColumnType(type: DataType): ColumnSpec['type'] {
  if (type instanceof Utf8) return 'string';
  if (type instanceof Binary) return 'binary';
  if (type instanceof Int32) return 'int32';
  if (type instanceof Float64) return 'double';
  throw new Error(`no Parquet type for Arrow ${String(type)}`);
}

/** The diffusers-dpo export: the four columns the PyTorch Diffusion-DPO trainers read, then ours. */
export function exportSpecs(metrics: readonly string[]): ColumnSpec[] {
  return [
    { name: 'caption', type: 'string', nullable: false },
    { name: 'jpg_0', type: 'binary', nullable: false },
    { name: 'jpg_1', type: 'binary', nullable: false },
    { name: 'label_0', type: 'double', nullable: false },
    { name: 'label_1', type: 'double', nullable: false },
    { name: 'model_0', type: 'string', nullable: true },
    { name: 'model_1', type: 'string', nullable: true },
    { name: 'pair_id', type: 'string', nullable: false },
    { name: 'split', type: 'string', nullable: true },
    { name: 'soft', type: 'double', nullable: true },
    { name: 'margin', type: 'double', nullable: true },
    { name: 'disagreement', type: 'double', nullable: true },
    { name: 'votes_a', type: 'int32', nullable: false },
    { name: 'votes_b', type: 'int32', nullable: false },
    ...metrics.map((m): ColumnSpec => ({ name: `p_${m}`, type: 'double', nullable: true })),
  ];
}
