// `bdpo inspect DIR`: what a dataset directory holds, from its files alone — counts by source and split, rejects by
// reason, the balance of human labels and the tie rate, and what each stage run read, took and rejected.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { listParts, readPart, readRows } from '../io/arrow-table.ts';
import { readManifest, type Counts } from '../core/manifest.ts';
import { rebuildUnitSummary } from '../core/unit-records.ts';

export interface DatasetSummary {
  dir: string;
  prompts: { total: number; bySource: Record<string, number>; byCategory: Record<string, number> };
  images: { total: number; bytes: number; byMime: Record<string, number>; byModel: Record<string, number> };
  pairs: {
    total: number;
    bySplit: Record<string, number>;
    human: { a: number; b: number; tie: number; unlabelled: number };
    /** Ties among labelled pairs. */
    tieRate: number | null;
    /** Share of decided labels that prefer image a (0.5 = balanced). */
    aRate: number | null;
  };
  rejects: { total: number; byReason: Record<string, number> };
  runs: Array<{ stage: string; shard: string; counts: Counts; finished: string }>;
  scores: string[];
  consensus: string[];
}

function bump(map: Record<string, number>, key: string | null | undefined, by = 1): void {
  const name = key ?? '(none)';
  map[name] = (map[name] ?? 0) + by;
}

export async function inspectDataset(dir: string): Promise<DatasetSummary> {
  // The manifest's units summarise the per-unit records: rebuilt here (one listing), e.g. after a killed shard.
  const manifest = (await stat(join(dir, 'manifest.json')).catch(() => null))
    ? await rebuildUnitSummary(dir).catch((error: NodeJS.ErrnoException) => {
        // A dataset on a read-only mount is inspected as it is.
        if (error.code === 'EACCES' || error.code === 'EROFS' || error.code === 'EPERM') return readManifest(dir);
        throw error;
      })
    : await readManifest(dir);
  const summary: DatasetSummary = {
    dir,
    prompts: { total: 0, bySource: {}, byCategory: {} },
    images: { total: 0, bytes: 0, byMime: {}, byModel: {} },
    pairs: { total: 0, bySplit: {}, human: { a: 0, b: 0, tie: 0, unlabelled: 0 }, tieRate: null, aRate: null },
    rejects: { total: 0, byReason: {} },
    runs: manifest.runs.map((run) => ({
      stage: run.stage,
      shard: `${run.shard.index}/${run.shard.count}`,
      counts: run.counts,
      finished: run.finished,
    })),
    scores: await subfolders(join(dir, 'scores')),
    consensus: await subfolders(join(dir, 'consensus')),
  };
  for await (const prompt of readRows(dir, 'prompts')) {
    summary.prompts.total++;
    bump(summary.prompts.bySource, prompt.source);
    if (prompt.category) bump(summary.prompts.byCategory, prompt.category);
  }
  for (const file of await listParts(dir, 'images')) {
    // Only the small columns: image bytes are never materialised as rows here.
    const part = await readPart(dir, file);
    const bytes = part.getChild('bytes')!;
    const mime = part.getChild('mime')!;
    const model = part.getChild('model')!;
    for (let i = 0; i < part.numRows; i++) {
      summary.images.total++;
      summary.images.bytes += (bytes.get(i) as Uint8Array).byteLength;
      bump(summary.images.byMime, mime.get(i) as string);
      bump(summary.images.byModel, model.get(i) as string | null);
    }
  }
  const human = summary.pairs.human;
  for await (const pair of readRows(dir, 'pairs')) {
    summary.pairs.total++;
    bump(summary.pairs.bySplit, pair.split);
    if (pair.human_pref === null) human.unlabelled++;
    else if (pair.human_pref === 1) human.a++;
    else if (pair.human_pref === 0) human.b++;
    else human.tie++;
  }
  const labelled = human.a + human.b + human.tie;
  summary.pairs.tieRate = labelled > 0 ? human.tie / labelled : null;
  summary.pairs.aRate = human.a + human.b > 0 ? human.a / (human.a + human.b) : null;
  for await (const rejected of readRows(dir, 'rejects')) {
    summary.rejects.total++;
    bump(summary.rejects.byReason, rejected.reason);
  }
  return summary;
}

async function subfolders(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}
