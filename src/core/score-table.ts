// The cached scores of every metric, joined by (image, prompt): what consensus, calibration and the reports read.
// Memory grows with the number of distinct scored images (≈ 150 bytes each plus 8 per metric), not with pairs.
import { readdir } from 'node:fs/promises';
import { JsonFileError } from '../io/json-file.ts';
import { metricInfoLocation, readMetaJson } from './dataset-meta.ts';
import { join } from 'node:path';
import { listParts } from '../io/arrow-table.ts';
import { openDatasetParquet, readRowGroupColumns } from '../io/parquet.ts';
import { MetricStatsAccumulator, type MetricStats } from './stats.ts';
import type { MetricInfo } from './schema.ts';
import { InputError } from './errors.ts';

export interface ScoreTable {
  metrics: MetricInfo[];
  /** Score of metric m for an image under a prompt; NaN when it was not scored. */
  score(metric: number, imageId: string, promptId: string): number;
  /** Dataset-level statistics of each metric's image scores (the `normalized` rule's z-scores). */
  stats: Record<string, MetricStats>;
  images: number;
}

export async function listScoredMetrics(dir: string): Promise<string[]> {
  const entries = await readdir(join(dir, 'scores'), { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

export async function loadScoreTable(dir: string, names?: readonly string[]): Promise<ScoreTable> {
  const metricNames = names && names.length > 0 ? [...names] : await listScoredMetrics(dir);
  if (metricNames.length === 0) throw new InputError(`${dir}: no scores/ (run bdpo label first)`);
  const metrics: MetricInfo[] = [];
  for (const name of metricNames) {
    try {
      metrics.push((await readMetaJson(metricInfoLocation(dir, name))) as MetricInfo);
    } catch (error) {
      if (error instanceof JsonFileError) throw error;
      const known = (await listScoredMetrics(dir)).join(', ') || 'none';
      throw new InputError(`${dir}: metric "${name}" has no meta/scores/${name}.json (known: ${known})`);
    }
  }
  const index = new ImagePromptIndex();
  let columns: Float64Array[] = metricNames.map(() => new Float64Array(1024).fill(Number.NaN));
  const stats: Record<string, MetricStats> = {};
  for (const [m, name] of metricNames.entries()) {
    for (const file of await listParts(dir, `scores/${name}`, '.parquet')) {
      const source = await openDatasetParquet(dir, file);
      for (const group of source.rowGroups) {
        const data = await readRowGroupColumns(source, group, ['image_id', 'prompt_id', 'score']);
        const imageIds = data.image_id!;
        const promptIds = data.prompt_id!;
        const scores = data.score!;
        for (let i = 0; i < group.numRows; i++) {
          const row = index.rowOf(imageIds[i] as string, promptIds[i] as string, true);
          if (row >= columns[0]!.length) columns = columns.map((c) => grow(c));
          columns[m]![row] = Number(scores[i]);
        }
      }
    }
    // Over the table's cells, not the files' rows: an image scored twice under one prompt (it sits in two splits)
    // is one image of the distribution, not two.
    const accumulator = new MetricStatsAccumulator();
    const column = columns[m]!;
    for (let row = 0; row < index.size; row++) accumulator.add(column[row]!);
    stats[name] = accumulator.stats();
  }
  const frozen = columns;
  return {
    metrics,
    stats,
    images: index.size,
    score(metric, imageId, promptId) {
      const row = index.rowOf(imageId, promptId, false);
      return row < 0 ? Number.NaN : frozen[metric]![row]!;
    },
  };
}

/**
 * Rows by (image, prompt), keyed by the image id alone: an image almost always belongs to one prompt, so a plain
 * string key (no concatenation, no garbage) finds it, and the rare image scored under several prompts chains its
 * rows (bench/consensus.ts measures the table's load time).
 */
class ImagePromptIndex {
  private readonly first = new Map<string, number>();
  private prompts: string[] = [];
  private next = new Int32Array(1024).fill(-1);

  get size(): number {
    return this.prompts.length;
  }

  rowOf(imageId: string, promptId: string, insert: boolean): number {
    const head = this.first.get(imageId);
    let row = head ?? -1;
    while (row >= 0 && this.prompts[row] !== promptId) row = this.next[row]!;
    if (row >= 0 || !insert) return row;
    row = this.prompts.length;
    this.prompts.push(promptId);
    if (row >= this.next.length) {
      const bigger = new Int32Array(this.next.length * 2).fill(-1);
      bigger.set(this.next);
      this.next = bigger;
    }
    if (head === undefined) this.first.set(imageId, row);
    else {
      this.next[row] = this.next[head]!;
      this.next[head] = row;
    }
    return row;
  }
}

function grow(column: Float64Array): Float64Array {
  const bigger = new Float64Array(column.length * 2).fill(Number.NaN);
  bigger.set(column);
  return bigger;
}
