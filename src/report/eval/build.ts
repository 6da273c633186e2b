// Computing the eval: win rates of model A over model B per metric over a prompt set, from two dataset directories
// of generations (ingested with `bdpo ingest images`, scored with `bdpo label`). Images are paired by (prompt, seed);
// both sides must cover exactly the same (prompt, seed)s — a difference is an error that names what is missing,
// never a silent subset. Memory: one small record per generation and the two score tables.
import { basename, resolve } from 'node:path';
import { metricInfoLocation, readMetaJson } from '../../core/dataset-meta.ts';
import { boundedText } from '../../core/format.ts';
import type { MetricInfo } from '../../core/schema.ts';
import { listScoredMetrics, loadScoreTable, type ScoreTable } from '../../core/score-table.ts';
import { TOOL_VERSION } from '../../core/version.ts';
import { isMissingFile } from '../../io/json-file.ts';
import type { EvalReport, GalleryItem, SideInfo } from '../model.ts';
import { TopN } from '../top-n.ts';
import { WinRateAccumulator } from '../winrate.ts';
import { describeKeys, EvalCoverageError, EvalInputError, keyOf, orderKeys, readSide, withPrompt, type Side } from './sides.ts';

export interface EvalOptions {
  /** Prompts shown in the gallery (default 24). */
  top?: number;
  /** Bootstrap resamples (default 2000), seed (default 0), coverage (default 0.95). */
  resamples?: number;
  seed?: number;
  level?: number;
  /** Only the images of this model on side A / B (a dataset holding several models, e.g. HPD's benchmark). */
  modelA?: string;
  modelB?: string;
}

async function metricInfos(dir: string): Promise<Map<string, MetricInfo | null>> {
  const infos = new Map<string, MetricInfo | null>();
  for (const name of await listScoredMetrics(dir)) {
    try {
      infos.set(name, (await readMetaJson(metricInfoLocation(dir, name))) as MetricInfo);
    } catch (error) {
      // No meta/scores/<metric>.json: the metric is listed as ignored, with that reason; a damaged one is an error.
      if (!isMissingFile(error)) throw error;
      infos.set(name, null);
    }
  }
  return infos;
}

function pooledSd(x: ScoreTable['stats'][string] | undefined, y: ScoreTable['stats'][string] | undefined): number {
  if (!x || !y) return Number.NaN;
  const n = x.count + y.count;
  if (n === 0) return Number.NaN;
  const mean = (x.count * x.mean + y.count * y.mean) / n;
  const second = (x.count * (x.std ** 2 + x.mean ** 2) + y.count * (y.std ** 2 + y.mean ** 2)) / n;
  return Math.sqrt(Math.max(0, second - mean * mean));
}

/** Every number of the evaluation; no file is written. */
export async function buildEvalReport(dirA: string, dirB: string, options: EvalOptions = {}): Promise<EvalReport> {
  const top = options.top ?? 24;
  if (!Number.isInteger(top) || top < 0) throw new EvalInputError(`--top must be a non-negative integer, got ${top}`);
  const [a, b] = await Promise.all([readSide(dirA, options.modelA), readSide(dirB, options.modelB)]);
  for (const side of [a, b]) {
    if (side.models.size > 1) {
      throw new EvalInputError(
        `${side.dir}: images of ${side.models.size} models (${[...side.models].sort().join(', ')}); ` +
          'choose one with --model-a / --model-b, or give each model its own dataset directory',
      );
    }
    if (side.duplicates.length > 0) {
      const dups = side.duplicates.map((d) => withPrompt(keyOf(d.promptId, d.seed), a, b));
      throw new EvalInputError(`${side.dir}: ${dups.length} (prompt, seed)s have more than one image: ${describeKeys(dups)}`);
    }
  }

  const missingFromB = orderKeys(
    [...a.images.keys()].filter((k) => !b.images.has(k)),
    a,
    b,
  );
  const missingFromA = orderKeys(
    [...b.images.keys()].filter((k) => !a.images.has(k)),
    a,
    b,
  );
  if (missingFromA.length + missingFromB.length > 0) {
    const lines = [`A (${dirA}) and B (${dirB}) do not cover the same (prompt, seed)s:`];
    if (missingFromB.length > 0) lines.push(`${missingFromB.length} in A are missing from B: ${describeKeys(missingFromB)}`);
    if (missingFromA.length > 0) lines.push(`${missingFromA.length} in B are missing from A: ${describeKeys(missingFromA)}`);
    throw new EvalCoverageError(lines.join('\n  '), missingFromB, missingFromA);
  }

  const [infosA, infosB] = await Promise.all([metricInfos(dirA), metricInfos(dirB)]);
  const metrics: string[] = [];
  const ignoredMetrics: EvalReport['ignoredMetrics'] = [];
  for (const name of [...new Set([...infosA.keys(), ...infosB.keys()])].sort()) {
    const x = infosA.get(name);
    const y = infosB.get(name);
    if (x === undefined) ignoredMetrics.push({ metric: name, reason: 'scored on B only' });
    else if (y === undefined) ignoredMetrics.push({ metric: name, reason: 'scored on A only' });
    else if (x === null || y === null) ignoredMetrics.push({ metric: name, reason: 'no meta/scores/<metric>.json' });
    else if (x.version !== y.version)
      ignoredMetrics.push({ metric: name, reason: `versions differ (A ${x.version}, B ${y.version}): not comparable` });
    else metrics.push(name);
  }
  if (metrics.length === 0) {
    throw new EvalInputError(
      `no metric is scored on both sides (A: ${[...infosA.keys()].join(', ') || 'none'}; B: ${[...infosB.keys()].join(', ') || 'none'})${
        ignoredMetrics.length > 0 ? `: ${ignoredMetrics.map((m) => `${m.metric} ${m.reason}`).join('; ')}` : ''
      }`,
    );
  }
  const [tableA, tableB] = await Promise.all([loadScoreTable(dirA, metrics), loadScoreTable(dirB, metrics)]);
  const sd = metrics.map((m) => pooledSd(tableA.stats[m], tableB.stats[m]));

  const byCategory = new WinRateAccumulator(metrics);
  const byChallenge = new WinRateAccumulator(metrics);
  const gallery = new TopN<GalleryItem>(top, (x, y) =>
    Math.abs(x.gap) !== Math.abs(y.gap) ? Math.abs(x.gap) > Math.abs(y.gap) : x.promptId < y.promptId,
  );
  const seedsPerPrompt = new Map<string, number>();
  let ties = 0;
  let best: GalleryItem | null = null;
  const keys = orderKeys(a.images.keys(), a, b);
  keys.forEach((k, index) => {
    const key = keyOf(k.promptId, k.seed);
    const imageA = a.images.get(key)!;
    const imageB = b.images.get(key)!;
    const info = a.prompts.get(k.promptId) ?? b.prompts.get(k.promptId);
    const category = info?.category ?? null;
    const challenge = info?.challenge ?? null;
    seedsPerPrompt.set(k.promptId, (seedsPerPrompt.get(k.promptId) ?? 0) + 1);
    const scores: GalleryItem['scores'] = [];
    let zSum = 0;
    let zCount = 0;
    const rowA = tableA.rowOf(imageA, k.promptId);
    const rowB = tableB.rowOf(imageB, k.promptId);
    metrics.forEach((metric, m) => {
      const sa = tableA.scoreAt(m, rowA);
      const sb = tableB.scoreAt(m, rowB);
      const finiteA = Number.isFinite(sa) ? sa : null;
      const finiteB = Number.isFinite(sb) ? sb : null;
      byCategory.add(k.promptId, metric, finiteA, finiteB, category);
      byChallenge.add(k.promptId, metric, finiteA, finiteB, challenge);
      if (finiteA !== null && finiteA === finiteB) ties++;
      const z = finiteA !== null && finiteB !== null && sd[m]! > 0 ? (finiteA - finiteB) / sd[m]! : null;
      if (z !== null) {
        zSum += z;
        zCount++;
      }
      scores.push({ metric, a: finiteA, b: finiteB, z });
    });
    // One gallery entry per prompt: its comparison with the largest |gap| over seeds.
    if (zCount > 0) {
      const item: GalleryItem = {
        promptId: k.promptId,
        promptIndex: info?.index ?? null,
        text: info?.text === null || info?.text === undefined ? k.promptId : boundedText(info.text),
        category,
        challenge,
        seed: k.seed,
        imageA,
        imageB,
        gap: zSum / zCount,
        scores,
      };
      if (best === null || best.promptId !== item.promptId) best = item;
      else if (Math.abs(item.gap) > Math.abs(best.gap)) best = item;
    }
    const next = keys[index + 1];
    if (best !== null && (next === undefined || next.promptId !== k.promptId)) {
      if (best.promptId === k.promptId) gallery.push(best);
      best = null;
    }
  });

  const bootstrap = {
    ...(options.resamples === undefined ? {} : { resamples: options.resamples }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.level === undefined ? {} : { level: options.level }),
  };
  const winRate = byCategory.result(bootstrap);
  const seedCounts = [...seedsPerPrompt.values()];
  const sideInfo = (side: Side): SideInfo => ({
    dir: side.dir,
    label: side.models.size > 0 ? [...side.models].sort().join('+') : basename(resolve(side.dir)),
    models: [...side.models].sort(),
    images: side.count,
  });
  return {
    kind: 'eval',
    toolVersion: TOOL_VERSION,
    a: sideInfo(a),
    b: sideInfo(b),
    metrics,
    ignoredMetrics,
    comparisons: keys.length,
    seeds: { min: seedCounts.length > 0 ? Math.min(...seedCounts) : 0, max: seedCounts.length > 0 ? Math.max(...seedCounts) : 0 },
    ties,
    winRate,
    byChallenge: byChallenge.result(bootstrap).byCategory,
    gallery: gallery.sorted(),
  };
}
