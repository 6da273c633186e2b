// `bdpo compact DIR`: rewrites the ingest parts without the rows the dataset reader drops (io/part-dedupe.ts), so that
// engines reading the raw parts (DuckDB, Spark) see each prompt, image and pair once. A dropped pair becomes the
// `duplicate_pair` reject the reader already showed, in its unit's rejects part. Unit by unit: parts, then the id
// list, then the unit's record, each written atomically. Only later copies are ever removed, never the first, so a
// compaction that stops half way leaves the same first copies, and running it again finishes the job; a unit killed
// between its part and its record reads as damaged until `bdpo compact` or `bdpo ingest` runs again.
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { droppedRows, partRows, readPartAsWritten, writeRowsPart } from '../io/arrow-table.ts';
import { DUPLICATE_PAIR_DETAIL, KEYED_TABLES, type KeyedTable, withoutRows } from '../io/part-dedupe.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { resolveInside } from '../io/paths.ts';
import { parseJsonText } from '../io/json-file.ts';
import { sha256Hex } from '../core/ids.ts';
import { emptyCounts, recordRun, runRecord, type Counts, type PartRecord, type UnitRecord } from '../core/manifest.ts';
import { listUnitRecords, writeUnitRecord } from '../core/unit-records.ts';
import { WHOLE } from '../core/shard.ts';
import type { RejectRow, TableName } from '../core/schema.ts';

export interface CompactSummary {
  dir: string;
  unitsRewritten: number;
  /** Rows dropped per table; the dropped pairs are now rejects. */
  dropped: Record<KeyedTable, number>;
  counts: Counts;
}

const STAGE = 'ingest';

function partNameOf(file: string): string {
  return file
    .split('/')
    .at(-1)!
    .replace(/^part-/, '')
    .replace(/\.arrow$/, '');
}

export async function compactDataset(dir: string): Promise<CompactSummary> {
  const started = new Date();
  const summary: CompactSummary = { dir, unitsRewritten: 0, dropped: { prompts: 0, images: 0, pairs: 0 }, counts: emptyCounts() };
  const records = await listUnitRecords(dir, STAGE);
  // Decided once, before anything is rewritten: rewriting a part changes which rows are later copies of what.
  const plan = new Map<string, number[]>();
  for (const [, record] of records) {
    for (const part of record.parts) {
      const rows = await droppedRows(dir, part.file);
      if (rows.length > 0) plan.set(part.file, rows);
    }
  }
  for (const [key, record] of records) {
    if (!record.parts.some((part) => plan.has(part.file))) continue;
    await compactUnit(dir, key, record, plan, summary);
    summary.unitsRewritten++;
  }
  const dropped = summary.dropped.pairs;
  summary.counts = { read: dropped, taken: 0, rejected: dropped, byReason: dropped > 0 ? { duplicate_pair: dropped } : {} };
  await recordRun(dir, runRecord('compact', { dropped: summary.dropped }, [], summary.counts, started, WHOLE));
  return summary;
}

async function compactUnit(
  dir: string,
  key: string,
  record: UnitRecord,
  plan: Map<string, number[]>,
  summary: CompactSummary,
): Promise<void> {
  const parts: PartRecord[] = [];
  const newRejects: RejectRow[] = [];
  const statePart = record.parts.find((part) => part.file.startsWith(`.state/${STAGE}/`));
  const state = statePart
    ? (parseJsonText(await readFile(join(dir, statePart.file), 'utf8'), join(dir, statePart.file)) as Record<string, unknown>)
    : null;
  let rejectsPart: PartRecord | undefined;
  for (const part of record.parts) {
    const table = part.file.split('/')[0] as TableName;
    const drop = plan.get(part.file);
    if (table === 'rejects') {
      rejectsPart = part;
      continue;
    }
    if (drop === undefined || !(KEYED_TABLES as readonly string[]).includes(table)) {
      if (part !== statePart) parts.push(part);
      continue;
    }
    const keyed = table as KeyedTable;
    const written = await readPartAsWritten(dir, part.file);
    if (keyed === 'pairs') {
      const refs = written.getChild('source_ref')!;
      for (const row of drop) {
        newRejects.push({ source_ref: refs.get(row) as string, stage: STAGE, reason: 'duplicate_pair', detail: DUPLICATE_PAIR_DETAIL });
      }
    }
    summary.dropped[keyed] += drop.length;
    const kept = [...partRows<typeof keyed>(withoutRows(written, drop))];
    if (state && Array.isArray(state[keyed])) {
      const dropped = new Set(drop);
      state[keyed] = (state[keyed] as unknown[]).filter((_id, row) => !dropped.has(row));
    }
    // A part of later copies only is no part any more.
    if (kept.length > 0) parts.push(await writeRowsPart(dir, keyed, partNameOf(part.file), kept as never[]));
    else await rm(resolveInside(dir, part.file), { force: true });
  }
  if (rejectsPart !== undefined || newRejects.length > 0) {
    const earlier = rejectsPart ? [...partRows<'rejects'>(await readPartAsWritten(dir, rejectsPart.file))] : [];
    const name = partNameOf(rejectsPart?.file ?? record.parts.find((p) => !p.file.startsWith('.state/'))!.file);
    parts.push(newRejects.length === 0 ? rejectsPart! : await writeRowsPart(dir, 'rejects', name, [...earlier, ...newRejects]));
  }
  if (statePart && state) {
    const bytes = Buffer.from(JSON.stringify(state));
    await writeFileAtomic(resolveInside(dir, statePart.file), bytes);
    parts.push({ file: statePart.file, rows: 0, bytes: bytes.byteLength, sha256: sha256Hex(bytes) });
  }
  const withTimes = await Promise.all(parts.map(async (part) => ({ ...part, mtimeMs: (await stat(join(dir, part.file))).mtimeMs })));
  const counts: Counts = {
    ...record.counts,
    taken: record.counts.taken - newRejects.length,
    rejected: record.counts.rejected + newRejects.length,
    byReason: { ...record.counts.byReason },
  };
  if (newRejects.length > 0) counts.byReason.duplicate_pair = (counts.byReason.duplicate_pair ?? 0) + newRejects.length;
  await writeUnitRecord(dir, key, { ...record, parts: withTimes, counts });
}
