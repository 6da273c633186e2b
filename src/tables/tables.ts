// `bdpo tables`: Parquet copies of the Arrow IPC tables (prompts, pairs, rejects, images), one Parquet part per Arrow
// part, for the engines that read Parquet but no Arrow IPC (DuckDB without its downloaded extension, Spark, most
// SQL tools), so captions, pairs and consensus labels join in plain SQL. Each copy records the sha256 of the Arrow
// part it was made from: a re-run skips the parts whose copy is current and redoes the others.
import { writeDatasetCard } from '../core/dataset-card.ts';
import { readdir, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { duplicatePairRejects, duplicateRowsDigest, listParts, readPart } from '../io/arrow-table.ts';
import { sha256Hex } from '../core/ids.ts';
import { openParquet, writeParquetPart } from '../io/parquet.ts';
import { resolveInside } from '../io/paths.ts';
import { recordedPart, sha256OfFile } from '../core/manifest.ts';
import { runSelfRecordedUnits, type SelfRecordedJob } from '../core/units.ts';
import { parquetTableSpecs, TABLES, type TableName } from '../core/schema.ts';
import { InputError } from '../core/errors.ts';

export interface TablesOptions {
  /** Folder of the copies (default DIR/tables). */
  out?: string;
  /** Keep the JPEG/PNG bytes in images (default: metadata only). */
  imageBytes?: boolean;
}

export interface TableCopySummary {
  parts: number;
  written: number;
  skipped: number;
  /** Copies whose Arrow part no longer exists, removed so that `folder/*` reads what the dataset holds. */
  removed: number;
  /** Rows of the parts written in this run (each equals its Arrow part's rows). */
  rowsWritten: number;
}

export interface TablesSummary {
  dir: string;
  out: string;
  imageBytes: boolean;
  tables: Record<TableName, TableCopySummary>;
}

const SOURCE_SHA = 'bdpo.source_sha256';
/** tables/rejects/: the reader's duplicate_pair rows, which no Arrow part holds. */
const DUPLICATES_COPY = 'part-duplicate-pairs.parquet';
const WITH_BYTES = 'bdpo.image_bytes';

/** The recorded source sha and bytes flag of an existing copy; null when there is none or it is unreadable. */
async function recordedSource(path: string): Promise<{ sha: string; bytes: string } | null> {
  try {
    const source = await openParquet(path);
    const meta = new Map((source.metadata.key_value_metadata ?? []).map((kv) => [kv.key, kv.value ?? '']));
    return { sha: meta.get(SOURCE_SHA) ?? '', bytes: meta.get(WITH_BYTES) ?? '' };
  } catch {
    // Missing or damaged (an interrupted writer leaves only temp files, but a copy may be damaged by hand): redo it.
    return null;
  }
}

export async function runTables(dir: string, options: TablesOptions = {}): Promise<TablesSummary> {
  const out = options.out ?? join(dir, 'tables');
  const imageBytes = options.imageBytes === true;
  const tables = {} as Record<TableName, TableCopySummary>;
  for (const table of Object.keys(TABLES) as TableName[]) {
    const summary: TableCopySummary = { parts: 0, written: 0, skipped: 0, removed: 0, rowsWritten: 0 };
    tables[table] = summary;
    const specs = parquetTableSpecs(table, { imageBytes });
    const flag = table === 'images' ? String(imageBytes) : '';
    const wanted = new Set<string>();
    const files = await listParts(dir, table);
    const jobs = files.map((file): SelfRecordedJob => {
      const name = basename(file).replace(/\.arrow$/, '.parquet');
      wanted.add(name);
      const target = resolveInside(out, join(table, name));
      let sha = '';
      return {
        current: async () => {
          // The sha256 ingest recorded (no re-read of a large images part); a part written by hand is hashed. Which of
          // its rows the reader drops (another part holds them first) is part of what the copy is made from.
          sha = (await recordedPart(dir, file))?.sha256 ?? (await sha256OfFile(join(dir, file)));
          sha = [sha, ...(await duplicateRowsDigest(dir, file))].join('+');
          const recorded = await recordedSource(target);
          return recorded !== null && recorded.sha === sha && recorded.bytes === flag;
        },
        run: async () => {
          const part = await readPart(dir, file);
          const columns: Record<string, unknown[]> = {};
          for (const spec of specs) {
            const vector = part.getChild(spec.name);
            if (vector === null) throw new InputError(`${join(dir, file)}: no column ${spec.name}`);
            // Row by row: toArray() of a nullable Int32 column gives 0 for null.
            columns[spec.name] = Array.from({ length: part.numRows }, (_, i) => vector.get(i) ?? null);
          }
          await writeParquetPart(out, join(table, name), specs, columns, { metadata: { [SOURCE_SHA]: sha, [WITH_BYTES]: flag } });
          summary.rowsWritten += part.numRows;
        },
      };
    });
    if (table === 'rejects') {
      // The duplicate_pair rejects the reader adds for pairs an earlier part holds too (none after `bdpo compact`).
      const duplicates = await duplicatePairRejects(dir);
      if (duplicates.length > 0) {
        const name = DUPLICATES_COPY;
        wanted.add(name);
        const sha = sha256Hex(JSON.stringify(duplicates));
        const target = resolveInside(out, join(table, name));
        jobs.push({
          current: async () => (await recordedSource(target))?.sha === sha,
          run: async () => {
            const columns: Record<string, unknown[]> = {};
            for (const spec of specs) columns[spec.name] = duplicates.map((row) => row[spec.name as keyof typeof row] ?? null);
            await writeParquetPart(out, join(table, name), specs, columns, { metadata: { [SOURCE_SHA]: sha, [WITH_BYTES]: flag } });
            summary.rowsWritten += duplicates.length;
          },
        });
      }
    }
    const done = await runSelfRecordedUnits(jobs);
    summary.parts = files.length;
    summary.written = done.written;
    summary.skipped = done.skipped;
    const present = await readdir(join(out, table)).catch(() => [] as string[]);
    for (const name of present) {
      if (name.startsWith('part-') && name.endsWith('.parquet') && !wanted.has(name)) {
        await rm(resolveInside(out, join(table, name)));
        summary.removed++;
      }
    }
  }
  // Copies inside the dataset directory are tables of it: the card lists them as configs.
  if (resolve(out) === resolve(dir, 'tables')) await writeDatasetCard(dir);
  return { dir, out, imageBytes, tables };
}
