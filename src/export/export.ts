// `bdpo export --format diffusers-dpo`: the kept pairs of one consensus rule in the column layout of Pick-a-Pic v2,
// which the public PyTorch Diffusion-DPO trainers read: caption, jpg_0, jpg_1 (the images' original bytes, never
// re-encoded), label_0 (1: image 0 = a preferred, 0: image 1 preferred), label_1 = 1 − label_0, model_0, model_1
// (the images' generating models, null where unknown: DiffusionDPO's --dreamlike_pairs_only reads them), then the
// consensus columns (pair_id, split, soft, margin, disagreement, votes_a, votes_b, p_<metric>) for filtering.
//
// Ties (label_0 = 0.5, kept by the `half` policy) are left out unless `keepTies` asks for them: both trainers flip a
// pair only when label_0 == 0, so they would train every tie as "jpg_0 wins".
//
// The folder follows HF datasets' split-from-file-name convention, so held-out pairs never land in `train`:
// data/<split>-<k:05d>-of-<n:05d>.parquet, one split per file group, and a dataset card README.md whose `configs:`
// block lists each split's files. Memory stays bounded: the Parquet writer takes whole columns, so each file holds at
// most `rowsPerPart` pairs or ≈ `maxPartBytes` of image bytes, in row groups of ≤ 256 rows. The folder is built
// beside the target and renamed into place, so a reader never sees half an export. An `--out` ending in .parquet
// asks for a single file of every split instead: it is built whole in memory, so it is refused once the export
// outgrows `maxPartBytes` (pass a folder then).
//
// Images are joined by id: an index of every images part (image_id → part, row; ≈ 16 bytes an image) is built
// first, then the pairs are read a consensus row group at a time and their images copied out of the images parts,
// the most recently used two of which stay loaded (pairs and the images they reference come from the same ingest
// unit, so consecutive pairs mostly need the same part).
import { mkdir, readdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { replaceFolder } from '../io/atomic.ts';
import { basename, dirname, join, resolve } from 'node:path';
import type { Table } from 'apache-arrow';
import { listParts, readPart, readRows } from '../io/arrow-table.ts';
import { openDatasetParquet, openParquet, readRowGroupColumns, writeParquetPart, type ParquetCell } from '../io/parquet.ts';
import { readManifest, runRecord, recordRun } from '../core/manifest.ts';
import { WHOLE } from '../core/shard.ts';
import { IdIndex } from '../core/id-index.ts';
import { listParquetParts } from '../io/tensor-store.ts';
import { exportSpecs } from '../core/schema.ts';
import { safeName } from '../io/paths.ts';
import { BdpoError } from '../core/errors.ts';

export const EXPORT_FORMATS = ['diffusers-dpo'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export class ExportError extends BdpoError {
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
  /** Export tied pairs (label_0 = 0.5) too; the trainers read them as "jpg_0 wins" (default: left out). */
  keepTies?: boolean;
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
  /** Pairs by label_0: "1", "0", "0.5" (only with keepTies). */
  byLabel: Record<string, number>;
  /** Exported pairs by split file name (folder exports: data/<name>-*.parquet). */
  bySplit: Record<string, number>;
  /** Kept tied pairs not exported (keepTies off). */
  tiesLeftOut: number;
  metrics: string[];
  imageBytes: number;
  seconds: number;
}

const MAX_ROW_GROUP = 256;
const EXPORT_SOURCE = 'balanced-dpo export';
// Exports before the split layout: part files at the top of the folder.
const LEGACY_PART_NAME = /^part-\d{5}\.parquet$/;
const DATA_FOLDER = 'data';
const DATA_NAME = /^[A-Za-z0-9._~-]+-\d{5}-of-\d{5}\.parquet$/;
const CARD_NAME = 'README.md';
const CARD_MARK = `<!-- source: ${EXPORT_SOURCE} -->`;
const MAX_CARD_BYTES = 1 << 20;
// HF needs a split name for every file: pairs whose consensus row has none go under this one.
const NO_SPLIT = 'unsplit';

/** The real path of `path`, or of its nearest existing ancestor with the rest appended. */
async function realPathOf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    const parent = dirname(path);
    return parent === path ? path : join(await realPathOf(parent), basename(path));
  }
}

async function isTaggedPart(file: string): Promise<boolean> {
  const source = await openParquet(file).catch(() => null);
  return source?.metadata.key_value_metadata?.find((kv) => kv.key === 'source')?.value === EXPORT_SOURCE;
}

async function isOwnCard(file: string): Promise<boolean> {
  const size = await stat(file).then(
    (s) => s.size,
    () => Infinity,
  );
  return size <= MAX_CARD_BYTES && (await readFile(file, 'utf8')).includes(CARD_MARK);
}

/**
 * An export folder holds only files this command writes — data/<split>-…parquet and the card README.md, or the part
 * files of earlier exports — each tagged (Parquet metadata, a mark in the card): such a folder (or an empty one) may
 * be replaced; anything else may hold the user's files.
 */
async function isOwnExport(folder: string): Promise<boolean> {
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isFile() && LEGACY_PART_NAME.test(entry.name)) {
      if (!(await isTaggedPart(path))) return false;
    } else if (entry.isFile() && entry.name === CARD_NAME) {
      if (!(await isOwnCard(path))) return false;
    } else if (entry.isDirectory() && entry.name === DATA_FOLDER) {
      for (const data of await readdir(path, { withFileTypes: true })) {
        if (!data.isFile() || !DATA_NAME.test(data.name) || !(await isTaggedPart(join(path, data.name)))) return false;
      }
    } else {
      return false;
    }
  }
  return true;
}

/**
 * The dataset card: its `configs:` block tells HF datasets which files make each split. A split whose name is the
 * start of another's followed by `-` would catch that split's files with a glob, so its files are listed instead.
 */
function datasetCard(rule: string, files: ReadonlyMap<string, readonly string[]>): string {
  const names = [...files.keys()];
  const lines = ['---', 'configs:', '- config_name: default', '  data_files:'];
  for (const [name, paths] of files) {
    lines.push(`  - split: ${name}`);
    if (names.some((other) => other !== name && other.startsWith(`${name}-`))) {
      lines.push('    path:', ...paths.map((p) => `    - ${p}`));
    } else {
      lines.push(`    path: ${DATA_FOLDER}/${name}-*.parquet`);
    }
  }
  lines.push(
    '---',
    '',
    CARD_MARK,
    '',
    `Preference pairs of consensus rule \`${rule}\`, written by \`bdpo export\` in Pick-a-Pic v2's columns.`,
    '',
  );
  return lines.join('\n');
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

  /** A copy of the image's bytes (the part they come from may be released) and its model. */
  async image(id: string): Promise<{ bytes: Uint8Array; model: string | null } | null> {
    for (const { file, row } of this.index.candidates(id)) {
      const part = await this.part(file);
      if (part.getChild('image_id')!.get(row) === id) {
        const model: unknown = part.getChild('model')?.get(row);
        return { bytes: (part.getChild('bytes')!.get(row) as Uint8Array).slice(), model: typeof model === 'string' ? model : null };
      }
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
  if (!Number.isInteger(rowsPerPart) || rowsPerPart < 1)
    throw new ExportError(`rows per part must be a positive integer, got ${rowsPerPart}`);
  if (!/^[a-z0-9][a-z0-9_.=-]*$/i.test(options.rule))
    throw new ExportError(`--rule must be a folder name under consensus/, got "${options.rule}"`);
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
    bySplit: {},
    tiesLeftOut: 0,
    metrics,
    imageBytes: 0,
    seconds: 0,
  };

  let staging = dirname(out);
  // One buffer per split (a data file holds one split); a single .parquet file takes every split into one.
  const buffers = new Map<string, { columns: ExportColumns; bytes: number }>();
  const written = new Map<string, string[]>();
  const splitOfName = new Map<string, string | null>();
  let bufferedBytes = 0;
  const fileGroup = (split: string | null): string => {
    if (single) return '';
    const name = safeName(split ?? NO_SPLIT);
    const earlier = splitOfName.get(name);
    if (earlier !== undefined && earlier !== split) {
      throw new ExportError(
        `splits ${JSON.stringify(earlier)} and ${JSON.stringify(split)} would share the file name data/${name}-*.parquet`,
      );
    }
    splitOfName.set(name, split);
    return name;
  };
  const flush = async (group: string): Promise<void> => {
    const buffer = buffers.get(group);
    if (!buffer) return;
    buffers.delete(group);
    bufferedBytes -= buffer.bytes;
    const { columns } = buffer;
    const files = written.get(group) ?? [];
    const name = single ? basename(out) : `${DATA_FOLDER}/${group}-${String(files.length).padStart(5, '0')}.parquet`;
    const data: Record<string, ArrayLike<unknown>> = {
      ...columns,
      votes_a: Int32Array.from(columns.votes_a),
      votes_b: Int32Array.from(columns.votes_b),
    };
    await writeParquetPart(staging, name, specs, data, {
      rowGroupSize,
      metadata: { format, rule: options.rule, source: EXPORT_SOURCE },
    });
    files.push(name);
    written.set(group, files);
  };
  const largestBuffer = (): string => [...buffers].reduce((x, y) => (y[1].bytes > x[1].bytes ? y : x))[0];

  const build = async (): Promise<void> => {
    for (const file of consensusFiles) {
      const source = await openDatasetParquet(dir, file);
      const missing = metrics.filter((m) => !source.columns.includes(`p_${m}`));
      if (missing.length > 0) throw new ExportError(`${file}: no column p_${missing[0]} (the rule's parts disagree on their metrics)`);
      const wanted = [
        'pair_id',
        'prompt_id',
        'image_a',
        'image_b',
        'label',
        'split',
        'soft',
        'margin',
        'disagreement',
        'votes_a',
        'votes_b',
        'kept',
        ...metrics.map((m) => `p_${m}`),
      ];
      for (const group of source.rowGroups) {
        const c = await readRowGroupColumns(source, group, wanted);
        const pending: PendingPair[] = [];
        for (let i = 0; i < group.numRows; i++) {
          const label = num(c.label![i]!);
          const split = c.split![i];
          if (c.kept![i] !== true || label === null) continue;
          if (splits && !(typeof split === 'string' && splits.has(split))) continue;
          if (label === 0.5 && options.keepTies !== true) {
            summary.tiesLeftOut++;
            continue;
          }
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
          const image0 = await images.image(pair.imageA);
          const image1 = await images.image(pair.imageB);
          if (image0 === null || image1 === null) {
            throw new ExportError(`pair ${pair.pairId}: image ${image0 === null ? pair.imageA : pair.imageB} is not in images/`);
          }
          const groupName = fileGroup(pair.split);
          let buffer = buffers.get(groupName);
          if (!buffer) {
            buffer = { columns: emptyColumns(metrics), bytes: 0 };
            buffers.set(groupName, buffer);
          }
          const { columns } = buffer;
          columns.caption.push(caption);
          columns.jpg_0.push(image0.bytes);
          columns.jpg_1.push(image1.bytes);
          columns.label_0.push(pair.label);
          columns.label_1.push(1 - pair.label);
          columns.model_0.push(image0.model);
          columns.model_1.push(image1.model);
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
          if (!single) summary.bySplit[groupName] = (summary.bySplit[groupName] ?? 0) + 1;
          const bytes = image0.bytes.length + image1.bytes.length;
          summary.imageBytes += bytes;
          buffer.bytes += bytes;
          bufferedBytes += bytes;
          options.onProgress?.({ pairs: summary.pairs, bytes: summary.imageBytes });
          if (single) {
            if (bufferedBytes > maxPartBytes) {
              throw new ExportError(
                `the export outgrew ${maxPartBytes} bytes of images: a single .parquet file is built in memory; pass a folder as --out`,
              );
            }
          } else if (columns.caption.length >= rowsPerPart || buffer.bytes >= maxPartBytes) {
            await flush(groupName);
          } else if (bufferedBytes >= maxPartBytes) {
            // Several splits buffered at once: memory stays bounded by closing the biggest file early.
            await flush(largestBuffer());
          }
        }
      }
    }
    for (const group of [...buffers.keys()]) await flush(group);
    if (summary.pairs === 0) {
      const where = splits ? ` in split ${[...splits].join(', ')}` : '';
      const ties = summary.tiesLeftOut > 0 ? ` (${summary.tiesLeftOut} tied pairs left out: --keep-ties exports them)` : '';
      throw new ExportError(`consensus/${options.rule} has no kept pair${where}${ties}: nothing to export`);
    }
    if (single) {
      summary.files = written.get('') ?? [];
      return;
    }
    // Only now is each split's file count known: HF's name pattern needs it in every name.
    const final = new Map<string, string[]>();
    for (const group of [...written.keys()].sort()) {
      const files = written.get(group)!;
      const n = String(files.length).padStart(5, '0');
      const names: string[] = [];
      for (const file of files) {
        const name = file.replace(/\.parquet$/, `-of-${n}.parquet`);
        await rename(join(staging, file), join(staging, name));
        names.push(name);
      }
      final.set(group, names);
    }
    await writeFile(join(staging, CARD_NAME), datasetCard(options.rule, final));
    summary.files = [...[...final.values()].flat(), CARD_NAME];
  };
  if (single) {
    await mkdir(staging, { recursive: true });
    await build();
  } else {
    await replaceFolder(
      out,
      async (folder) => {
        staging = folder;
        await build();
      },
      {
        isOurs: isOwnExport,
        refuse: (target, why) => new ExportError(`--out ${target}: ${why}, so not an export to replace: name a new or empty folder`),
      },
    );
  }
  summary.seconds = (Date.now() - started.getTime()) / 1000;
  await recordRun(
    dir,
    runRecord(
      'export',
      {
        rule: options.rule,
        format,
        out,
        splits: splits ? [...splits] : null,
        keepTies: options.keepTies === true,
        rowGroupSize,
        rowsPerPart,
        files: summary.files.length,
      },
      [],
      {
        read: summary.pairs + summary.tiesLeftOut,
        taken: summary.pairs,
        rejected: summary.tiesLeftOut,
        byReason: summary.tiesLeftOut > 0 ? { tie_left_out: summary.tiesLeftOut } : {},
      },
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
  model_0: Array<string | null>;
  model_1: Array<string | null>;
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
    model_0: [],
    model_1: [],
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
