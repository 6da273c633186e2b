// `bdpo export --format diffusers-dpo`: the kept pairs of one consensus rule in the column layout of Pick-a-Pic v2,
// which the public PyTorch Diffusion-DPO trainers read: caption, jpg_0, jpg_1 (the images' original bytes, never
// re-encoded), label_0 (1: image 0 = a preferred, 0: image 1 preferred, 0.5: a tie kept by the `half` policy),
// label_1 = 1 − label_0, then the consensus columns (pair_id, split, soft, margin, disagreement, votes_a, votes_b,
// p_<metric>) for filtering by confidence.
//
// Memory stays bounded: the Parquet writer takes whole columns, so the export is a folder of part files
// (part-00000.parquet, …), each holding at most `rowsPerPart` pairs or ≈ `maxPartBytes` of image bytes, in row
// groups of ≤ 256 rows; HF datasets, pandas, DuckDB and Spark read such a folder as one table. The folder is built
// beside the target and renamed into place, so a reader never sees half an export. An `--out` ending in .parquet
// asks for a single file instead: it is built whole in memory, so it is refused once the export outgrows
// `maxPartBytes` (pass a folder then).
//
// Images are joined by id: an index of every images part (image_id → part, row; ≈ 16 bytes an image) is built
// first, then the pairs are read a consensus row group at a time and their images copied out of the images parts,
// the most recently used two of which stay loaded (pairs and the images they reference come from the same ingest
// unit, so consecutive pairs mostly need the same part).
import { mkdir, readdir, realpath } from 'node:fs/promises';
import { replaceFolder } from '../io/atomic.ts';
import { basename, dirname, join, resolve } from 'node:path';
import type { Table } from 'apache-arrow';
import { listParts, readPart, readRows } from '../io/arrow-table.ts';
import { openDatasetParquet, openParquet, readRowGroupColumns, writeParquetPart, type ColumnSpec, type ParquetCell } from '../io/parquet.ts';
import { readManifest, runRecord, recordRun, updateManifest } from '../manifest.ts';
import { WHOLE } from '../shard.ts';
import { IdIndex, listParquetParts } from './loader.ts';
import { exportSpecs } from '../schema.ts';

export const EXPORT_FORMATS = ['diffusers-dpo'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export class ExportError extends Error {
  override name = 'ExportError';
}

export interface ExportOptions {
  /** Folder under consensus/. */
  rule: string;
  /** A folder of part files, or a single file when it ends in .parquet. */
  out: string;
  format?: ExportFormat;
  /** Only pairs of these splits (default: every split). */
  splits?: readonly string[];
  /** Rows per row group (default and maximum 256). */
  rowGroupSize?: number;
  /** Pairs per part file (default 4096). */
  rowsPerPart?: number;
  /** Image bytes per part file before it is written (default 256 MiB). */
  maxPartBytes?: number;
  onProgress?: (progress: { pairs: number; bytes: number }) => void;
}

export interface ExportSummary {
  dir: string;
  rule: string;
  format: ExportFormat;
  out: string;
  /** Written files, relative to `out` (or the file itself). */
  files: string[];
  pairs: number;
  /** Pairs by label_0: "1", "0", "0.5". */
  byLabel: Record<string, number>;
  metrics: string[];
  imageBytes: number;
  seconds: number;
}

const MAX_ROW_GROUP = 256;
const EXPORT_SOURCE = 'balanced-dpo export';
const PART_NAME = /^part-\d{5}\.parquet$/;

/** The real path of `path`, or of its nearest existing ancestor with the rest appended. */
async function realPathOf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    const parent = dirname(path);
    return parent === path ? path : join(await realPathOf(parent), basename(path));
  }
}

/**
 * An export folder holds part files only, each tagged by its metadata as written by this command: such a folder (or
 * an empty one) may be replaced; anything else may hold the user's files.
 */
async function isOwnExport(folder: string): Promise<boolean> {
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    if (!entry.isFile() || !PART_NAME.test(entry.name)) return false;
    const source = await openParquet(join(folder, entry.name)).catch(() => null);
    const tag = source?.metadata.key_value_metadata?.find((kv) => kv.key === 'source')?.value;
    if (tag !== EXPORT_SOURCE) return false;
  }
  return true;
}


interface PendingPair {
  pairId: string;
  promptId: string;
  imageA: string;
  imageB: string;
  label: number;
  split: string | null;
  soft: number | null;
  margin: number | null;
  disagreement: number | null;
  votesA: number;
  votesB: number;
  p: Array<number | null>;
}

/** Image bytes by id, read from the images parts through an index and a two-part cache. */
class ImageSource {
  private readonly loaded = new Map<number, Table>();

  private constructor(
    private readonly dir: string,
    private readonly parts: readonly string[],
    private readonly index: IdIndex,
  ) {}

  static async open(dir: string): Promise<ImageSource> {
    const parts = await listParts(dir, 'images');
    if (parts.length === 0) throw new ExportError(`${dir}: no images/part-*.arrow (run bdpo ingest first)`);
    const builder = IdIndex.builder();
    for (const [p, file] of parts.entries()) {
      const ids = (await readPart(dir, file)).getChild('image_id')!;
      for (let i = 0; i < ids.length; i++) builder.add(ids.get(i) as string, p, i);
    }
    return new ImageSource(dir, parts, builder.build());
  }

  /** A copy of the image's bytes (the part they come from may be released). */
  async bytes(id: string): Promise<Uint8Array | null> {
    for (const { file, row } of this.index.candidates(id)) {
      const part = await this.part(file);
      if (part.getChild('image_id')!.get(row) === id) return (part.getChild('bytes')!.get(row) as Uint8Array).slice();
    }
    return null;
  }

  private async part(p: number): Promise<Table> {
    const hit = this.loaded.get(p);
    if (hit) {
      this.loaded.delete(p);
      this.loaded.set(p, hit);
      return hit;
    }
    const table = await readPart(this.dir, this.parts[p]!);
    this.loaded.set(p, table);
    if (this.loaded.size > 2) this.loaded.delete(this.loaded.keys().next().value!);
    return table;
  }
}

const num = (cell: ParquetCell): number | null => (typeof cell === 'number' ? cell : typeof cell === 'bigint' ? Number(cell) : null);

export async function runExport(dir: string, options: ExportOptions): Promise<ExportSummary> {
  const started = new Date();
  const format = options.format ?? 'diffusers-dpo';
  if (!EXPORT_FORMATS.includes(format)) throw new ExportError(`unknown format "${String(format)}" (formats: ${EXPORT_FORMATS.join(', ')})`);
  const rowGroupSize = options.rowGroupSize ?? MAX_ROW_GROUP;
  if (!Number.isInteger(rowGroupSize) || rowGroupSize < 1 || rowGroupSize > MAX_ROW_GROUP) {
    throw new ExportError(`row group size must be an integer in 1..${MAX_ROW_GROUP}, got ${rowGroupSize}`);
  }
  const rowsPerPart = options.rowsPerPart ?? 4096;
  const maxPartBytes = options.maxPartBytes ?? 256 * 2 ** 20;
  if (!Number.isInteger(rowsPerPart) || rowsPerPart < 1) throw new ExportError(`rows per part must be a positive integer, got ${rowsPerPart}`);
  if (!/^[a-z0-9][a-z0-9_.=-]*$/i.test(options.rule)) throw new ExportError(`--rule must be a folder name under consensus/, got "${options.rule}"`);
  // The manifest is updated at the end: a bad one must fail the run before --out is written.
  await readManifest(dir);
  const consensusFiles = await listParquetParts(dir, `consensus/${options.rule}`);
  if (consensusFiles.length === 0) throw new ExportError(`${dir}: no consensus/${options.rule}/part-*.parquet (run bdpo consensus first)`);
  const out = resolve(options.out);
  const realOut = await realPathOf(out);
  const realDir = await realPathOf(resolve(dir));
  if (realOut === realDir || realOut.startsWith(`${realDir}/`)) {
    // Inside the dataset it would look like a table of it to every later stage.
    throw new ExportError(`--out must be outside the dataset directory ${dir}`);
  }
  if (realDir.startsWith(`${realOut}/`)) {
    throw new ExportError(`--out ${out} holds the dataset directory ${dir}: name a new folder (or a .parquet file) for the export`);
  }
  const single = out.endsWith('.parquet');
  const splits = options.splits && options.splits.length > 0 ? new Set(options.splits) : null;

  const captions = new Map<string, string>();
  for await (const prompt of readRows(dir, 'prompts')) captions.set(prompt.prompt_id, prompt.text);
  const images = await ImageSource.open(dir);

  const first = await openDatasetParquet(dir, consensusFiles[0]!);
  const metrics = first.columns.filter((c) => c.startsWith('p_')).map((c) => c.slice(2));
  const specs = exportSpecs(metrics);
  const summary: ExportSummary = {
    dir,
    rule: options.rule,
    format,
    out,
    files: [],
    pairs: 0,
    byLabel: {},
    metrics,
    imageBytes: 0,
    seconds: 0,
  };

  let staging = dirname(out);
  let columns = emptyColumns(metrics);
  let partBytes = 0;
  const flush = async (): Promise<void> => {
    const rows = columns.caption.length;
    if (rows === 0) return;
    const name = single ? basename(out) : `part-${String(summary.files.length).padStart(5, '0')}.parquet`;
    const data: Record<string, ArrayLike<unknown>> = { ...columns, votes_a: Int32Array.from(columns.votes_a), votes_b: Int32Array.from(columns.votes_b) };
    await writeParquetPart(staging, name, specs, data, {
      rowGroupSize,
      metadata: { format, rule: options.rule, source: EXPORT_SOURCE },
    });
    summary.files.push(name);
    columns = emptyColumns(metrics);
    partBytes = 0;
  };

  const build = async (): Promise<void> => {
    for (const file of consensusFiles) {
      const source = await openDatasetParquet(dir, file);
      const missing = metrics.filter((m) => !source.columns.includes(`p_${m}`));
      if (missing.length > 0) throw new ExportError(`${file}: no column p_${missing[0]} (the rule's parts disagree on their metrics)`);
      const wanted = ['pair_id', 'prompt_id', 'image_a', 'image_b', 'label', 'split', 'soft', 'margin', 'disagreement', 'votes_a', 'votes_b', 'kept', ...metrics.map((m) => `p_${m}`)];
      for (const group of source.rowGroups) {
        const c = await readRowGroupColumns(source, group, wanted);
        const pending: PendingPair[] = [];
        for (let i = 0; i < group.numRows; i++) {
          const label = num(c.label![i]!);
          const split = c.split![i];
          if (c.kept![i] !== true || label === null) continue;
          if (splits && !(typeof split === 'string' && splits.has(split))) continue;
          pending.push({
            pairId: String(c.pair_id![i]),
            promptId: String(c.prompt_id![i]),
            imageA: String(c.image_a![i]),
            imageB: String(c.image_b![i]),
            label,
            split: typeof split === 'string' ? split : null,
            soft: num(c.soft![i]!),
            margin: num(c.margin![i]!),
            disagreement: num(c.disagreement![i]!),
            votesA: num(c.votes_a![i]!) ?? 0,
            votesB: num(c.votes_b![i]!) ?? 0,
            p: metrics.map((m) => num(c[`p_${m}`]![i]!)),
          });
        }
        for (const pair of pending) {
          const caption = captions.get(pair.promptId);
          if (caption === undefined) throw new ExportError(`pair ${pair.pairId}: prompt ${pair.promptId} is not in prompts/`);
          const jpg0 = await images.bytes(pair.imageA);
          const jpg1 = await images.bytes(pair.imageB);
          if (jpg0 === null || jpg1 === null) {
            throw new ExportError(`pair ${pair.pairId}: image ${jpg0 === null ? pair.imageA : pair.imageB} is not in images/`);
          }
          columns.caption.push(caption);
          columns.jpg_0.push(jpg0);
          columns.jpg_1.push(jpg1);
          columns.label_0.push(pair.label);
          columns.label_1.push(1 - pair.label);
          columns.pair_id.push(pair.pairId);
          columns.split.push(pair.split);
          columns.soft.push(pair.soft);
          columns.margin.push(pair.margin);
          columns.disagreement.push(pair.disagreement);
          columns.votes_a.push(pair.votesA);
          columns.votes_b.push(pair.votesB);
          metrics.forEach((m, j) => columns[`p_${m}`]!.push(pair.p[j]!));
          summary.pairs++;
          summary.byLabel[String(pair.label)] = (summary.byLabel[String(pair.label)] ?? 0) + 1;
          const bytes = jpg0.length + jpg1.length;
          summary.imageBytes += bytes;
          partBytes += bytes;
          options.onProgress?.({ pairs: summary.pairs, bytes: summary.imageBytes });
          if (single) {
            if (partBytes > maxPartBytes) {
              throw new ExportError(`the export outgrew ${maxPartBytes} bytes of images: a single .parquet file is built in memory; pass a folder as --out`);
            }
          } else if (columns.caption.length >= rowsPerPart || partBytes >= maxPartBytes) {
            await flush();
          }
        }
      }
    }
    await flush();
    if (summary.pairs === 0) throw new ExportError(`consensus/${options.rule} has no kept pair${splits ? ` in split ${[...splits].join(', ')}` : ''}: nothing to export`);
  };
  if (single) {
    await mkdir(staging, { recursive: true });
    await build();
  } else {
    await replaceFolder(out, async (folder) => {
      staging = folder;
      await build();
    }, {
      isOurs: isOwnExport,
      refuse: (target, why) => new ExportError(`--out ${target}: ${why}, so not an export to replace: name a new or empty folder`),
    });
  }
  summary.seconds = (Date.now() - started.getTime()) / 1000;
  await recordRun(
    dir,
    runRecord(
        'export',
        { rule: options.rule, format, out, splits: splits ? [...splits] : null, rowGroupSize, rowsPerPart, files: summary.files.length },
        [],
        { read: summary.pairs, taken: summary.pairs, rejected: 0, byReason: {} },
        started,
        WHOLE,
      ),
  );
  return summary;
}

interface ExportColumns {
  caption: string[];
  jpg_0: Uint8Array[];
  jpg_1: Uint8Array[];
  label_0: number[];
  label_1: number[];
  pair_id: string[];
  split: Array<string | null>;
  soft: Array<number | null>;
  margin: Array<number | null>;
  disagreement: Array<number | null>;
  votes_a: number[];
  votes_b: number[];
  [pColumn: `p_${string}`]: Array<number | null>;
}

function emptyColumns(metrics: readonly string[]): ExportColumns {
  const columns: ExportColumns = {
    caption: [],
    jpg_0: [],
    jpg_1: [],
    label_0: [],
    label_1: [],
    pair_id: [],
    split: [],
    soft: [],
    margin: [],
    disagreement: [],
    votes_a: [],
    votes_b: [],
  };
  for (const m of metrics) columns[`p_${m}`] = [];
  return columns;
}
