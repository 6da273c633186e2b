// Each metric's per-image score distribution for the audit: two streaming passes over scores/<metric>/ (the range,
// then the histogram), each (image, prompt) counted once.
import { listParts } from '../../io/arrow-table.ts';
import { join } from 'node:path';
import { openDatasetParquet, openParquet, readRowGroupVectors } from '../../io/parquet.ts';
import { Histogram, MinMax } from '../distribution.ts';
import { ImagePromptIndex, readScoreFile } from '../../core/score-table.ts';
import type { ScoreDistribution } from '../model.ts';
import { cellNumber } from './input.ts';

/** An index shared by the distributions of `metrics`, sized for the largest metric's row count. */
export async function distributionIndex(dir: string, metrics: readonly string[]): Promise<ImagePromptIndex> {
  let expected = 0;
  for (const metric of metrics) {
    let rows = 0;
    for (const file of await listParts(dir, `scores/${metric}`, '.parquet')) rows += (await openParquet(join(dir, file))).numRows;
    expected = Math.max(expected, rows);
  }
  return new ImagePromptIndex(metrics.length, expected);
}

/** The distribution of `metric`, number `m` of the shared index's metrics. */
export async function scoreDistribution(
  dir: string,
  metric: string,
  bins: number,
  seen: ImagePromptIndex,
  m: number,
): Promise<ScoreDistribution> {
  const files = await listParts(dir, `scores/${metric}`, '.parquet');
  // Each (image, prompt) once, as the score table counts them: an image scored twice under one prompt (it sits in
  // two splits) is one image of the distribution. The first pass marks the repeated rows for the second.
  const repeated = new Set<number>();
  let pass = 0;
  const each = async (visit: (x: number) => void): Promise<void> => {
    let row = 0;
    for (const file of files) {
      if (pass === 0) {
        // The score table's reader: keys parsed from the id pages, no value per id.
        const { rows, words, scores } = await readScoreFile(dir, file);
        for (let i = 0; i < rows; i++, row++) {
          if (!seen.firstFor(m, words, i * 8)) {
            repeated.add(row);
            continue;
          }
          visit(scores[i]!);
        }
        continue;
      }
      const source = await openDatasetParquet(dir, file);
      for (const group of source.rowGroups) {
        const scores = (await readRowGroupVectors(source, group, ['score'])).score!;
        for (let i = 0; i < scores.length; i++, row++) {
          if (repeated.has(row)) continue;
          visit(cellNumber(scores[i]) ?? Number.NaN);
        }
      }
    }
    pass++;
  };
  const range = new MinMax();
  let sum = 0;
  await each((x) => {
    range.add(x);
    if (Number.isFinite(x)) sum += x;
  });
  const mean = range.count > 0 ? sum / range.count : Number.NaN;
  let lo = range.min;
  let hi = range.max;
  if (range.count === 0) [lo, hi] = [0, 1];
  else if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5];
  const histogram = new Histogram(lo, hi, bins);
  let squares = 0;
  await each((x) => {
    histogram.add(x);
    if (Number.isFinite(x)) squares += (x - mean) ** 2;
  });
  return {
    metric,
    count: range.count,
    nonFinite: range.nonFinite,
    mean,
    std: range.count > 0 ? Math.sqrt(squares / range.count) : Number.NaN,
    min: range.count > 0 ? range.min : Number.NaN,
    max: range.count > 0 ? range.max : Number.NaN,
    histogram: histogram.result(),
  };
}
