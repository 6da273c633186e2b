// `bdpo eval`: win rates of model A over model B per metric over a prompt set, from two dataset directories of
// generations (ingested with `bdpo ingest images`, scored with `bdpo label`). Images are paired by (prompt, seed);
// both sides must cover exactly the same (prompt, seed)s — a difference is an error that names what is missing,
// never a silent subset. Memory: one small record per generation and the two score tables.
import { isMissingFile, readJsonFile } from '../io/json-file.ts';
import { metricInfoLocation, readMetaJson } from '../core/dataset-meta.ts';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { listParts, readPart, readRows } from '../io/arrow-table.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { listScoredMetrics, loadScoreTable, type ScoreTable } from '../core/score-table.ts';
import type { MetricInfo } from '../core/schema.ts';
import { TOOL_VERSION } from '../core/version.ts';
import { reportJson, TopN } from './audit.ts';
import { renderEvalPage } from './html.ts';
import { collectThumbnails, type ThumbnailOptions } from './thumbnails.ts';
import { intervalWarnings, WinRateAccumulator, type CategoryWinRate, type WinRateReport } from './winrate.ts';
import { boundedText } from '../core/format.ts';

export class EvalInputError extends Error {}

/** The two sides do not hold the same (prompt, seed)s. */
export class EvalCoverageError extends EvalInputError {
  constructor(
    message: string,
    readonly missingFromB: GenerationKey[],
    readonly missingFromA: GenerationKey[],
  ) {
    super(message);
  }
}

export interface GenerationKey {
  promptId: string;
  promptIndex: number | null;
  text: string | null;
  seed: number | null;
}

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

export interface RunEvalOptions extends EvalOptions {
  out: string;
  thumbnails?: ThumbnailOptions;
}

export interface SideInfo {
  dir: string;
  /** The model name(s) recorded at ingest, joined; the folder name when there is none. */
  label: string;
  models: string[];
  images: number;
}

export interface GalleryItem {
  promptId: string;
  promptIndex: number | null;
  text: string;
  category: string | null;
  challenge: string | null;
  seed: number | null;
  imageA: string;
  imageB: string;
  /** Mean over metrics of (s_A − s_B) / sd_m, sd_m pooled over both sides: > 0 when A is ahead. */
  gap: number;
  scores: { metric: string; a: number | null; b: number | null; z: number | null }[];
}

export interface EvalReport {
  kind: 'eval';
  toolVersion: string;
  a: SideInfo;
  b: SideInfo;
  metrics: string[];
  ignoredMetrics: { metric: string; reason: string }[];
  /** (prompt, seed) comparisons, and how many seeds the prompts have. */
  comparisons: number;
  seeds: { min: number; max: number };
  /** Comparisons where the two scores are equal, over all metrics (each counts ½). */
  ties: number;
  winRate: WinRateReport;
  /** The win rate per PartiPrompts challenge (empty when the prompts have none). */
  byChallenge: CategoryWinRate[];
  gallery: GalleryItem[];
}

export interface EvalResult {
  report: EvalReport;
  files: { html: string; json: string };
  thumbnails: number;
  htmlBytes: number;
}

interface PromptInfo {
  index: number | null;
  text: string;
  category: string | null;
  challenge: string | null;
}

interface Side {
  dir: string;
  models: Set<string>;
  /** key(prompt, seed) → image_id */
  images: Map<string, string>;
  prompts: Map<string, PromptInfo>;
  duplicates: GenerationKey[];
  count: number;
}

const SEP = '\u0000';
const keyOf = (promptId: string, seed: number | null): string => `${promptId}${SEP}${seed ?? ''}`;

function splitKey(key: string): { promptId: string; seed: number | null } {
  const [promptId, seed] = key.split(SEP) as [string, string];
  return { promptId, seed: seed === '' ? null : Number(seed) };
}

async function readSide(dir: string, only?: string): Promise<Side> {
  const parts = await listParts(dir, 'images');
  if (parts.length === 0) throw new EvalInputError(`${dir}: no images/part-*.arrow (run bdpo ingest images first)`);
  const side: Side = { dir, models: new Set(), images: new Map(), prompts: new Map(), duplicates: [], count: 0 };
  const present = new Set<string>();
  for (const file of parts) {
    // The whole part is one buffer anyway; only the small columns are touched.
    const part = await readPart(dir, file);
    const ids = part.getChild('image_id')!;
    const prompts = part.getChild('prompt_id')!;
    const models = part.getChild('model');
    const seeds = part.getChild('seed');
    for (let i = 0; i < part.numRows; i++) {
      const promptId = prompts.get(i) as string;
      const seed = (seeds?.get(i) as number | null | undefined) ?? null;
      const model = (models?.get(i) as string | null | undefined) ?? null;
      if (model !== null) present.add(model);
      if (only !== undefined && model !== only) continue;
      if (model !== null) side.models.add(model);
      side.count++;
      const key = keyOf(promptId, seed);
      if (side.images.has(key)) side.duplicates.push({ promptId, promptIndex: null, text: null, seed });
      else side.images.set(key, ids.get(i) as string);
    }
  }
  if (only !== undefined && side.count === 0) {
    throw new EvalInputError(`${dir}: no images of model "${only}" (models: ${[...present].sort().join(', ') || 'none recorded'})`);
  }
  for await (const p of readRows(dir, 'prompts')) {
    if (!side.prompts.has(p.prompt_id)) {
      side.prompts.set(p.prompt_id, { index: p.prompt_index, text: p.text, category: p.category, challenge: p.challenge });
    }
  }
  return side;
}

function describeKeys(keys: readonly GenerationKey[], limit = 5): string {
  const shown = keys.slice(0, limit).map((k) => {
    const text = k.text === null ? k.promptId.slice(0, 12) : JSON.stringify(k.text.length > 40 ? `${k.text.slice(0, 39)}…` : k.text);
    return `${k.promptIndex === null ? '' : `#${k.promptIndex} `}${text} seed ${k.seed ?? '–'}`;
  });
  return `${shown.join('; ')}${keys.length > limit ? `; … ${keys.length - limit} more` : ''}`;
}

function withPrompt(key: string, a: Side, b: Side): GenerationKey {
  const { promptId, seed } = splitKey(key);
  const info = a.prompts.get(promptId) ?? b.prompts.get(promptId);
  return { promptId, promptIndex: info?.index ?? null, text: info?.text ?? null, seed };
}

/** Keys sorted by prompt index (then id), then seed, so messages and galleries read in prompt-list order. */
function orderKeys(keys: Iterable<string>, a: Side, b: Side): GenerationKey[] {
  return [...keys]
    .map((k) => withPrompt(k, a, b))
    .sort(
      (x, y) =>
        (x.promptIndex ?? Infinity) - (y.promptIndex ?? Infinity) ||
        (x.promptId < y.promptId ? -1 : x.promptId > y.promptId ? 1 : 0) ||
        (x.seed ?? -1) - (y.seed ?? -1),
    );
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
      throw new EvalInputError(`${side.dir}: images of ${side.models.size} models (${[...side.models].sort().join(', ')}); choose one with --model-a / --model-b, or give each model its own dataset directory`);
    }
    if (side.duplicates.length > 0) {
      const dups = side.duplicates.map((d) => withPrompt(keyOf(d.promptId, d.seed), a, b));
      throw new EvalInputError(`${side.dir}: ${dups.length} (prompt, seed)s have more than one image: ${describeKeys(dups)}`);
    }
  }

  const missingFromB = orderKeys([...a.images.keys()].filter((k) => !b.images.has(k)), a, b);
  const missingFromA = orderKeys([...b.images.keys()].filter((k) => !a.images.has(k)), a, b);
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
    else if (x.version !== y.version) ignoredMetrics.push({ metric: name, reason: `versions differ (A ${x.version}, B ${y.version}): not comparable` });
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
  const gallery = new TopN<GalleryItem>(top, (x, y) => (Math.abs(x.gap) !== Math.abs(y.gap) ? Math.abs(x.gap) > Math.abs(y.gap) : x.promptId < y.promptId));
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
    metrics.forEach((metric, m) => {
      const sa = tableA.score(m, imageA, k.promptId);
      const sb = tableB.score(m, imageB, k.promptId);
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

/** The evaluation of A against B into `options.out`/report.html and report.json. */
export async function runEval(dirA: string, dirB: string, options: RunEvalOptions): Promise<EvalResult> {
  const report = await buildEvalReport(dirA, dirB, options);
  const [thumbsA, thumbsB] = await Promise.all([
    collectThumbnails(dirA, report.gallery.map((g) => g.imageA), options.thumbnails),
    collectThumbnails(dirB, report.gallery.map((g) => g.imageB), options.thumbnails),
  ]);
  const page = renderEvalPage(report, { a: thumbsA, b: thumbsB });
  await mkdir(options.out, { recursive: true });
  const files = { html: join(options.out, 'report.html'), json: join(options.out, 'report.json') };
  const bytes = Buffer.from(page, 'utf8');
  await writeFileAtomic(files.html, bytes);
  await writeFileAtomic(files.json, Buffer.from(reportJson(report), 'utf8'));
  return { report, files, thumbnails: thumbsA.size + thumbsB.size, htmlBytes: bytes.byteLength };
}

const pctText = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');

/** The short text summary the CLI prints. */
export function formatEvalSummary(result: EvalResult): string {
  const r = result.report;
  const w = r.winRate;
  const width = Math.max(7, ...r.metrics.map((m) => m.length));
  const seeds = r.seeds.min === r.seeds.max ? `${r.seeds.min}` : `${r.seeds.min}–${r.seeds.max}`;
  const lines = [
    `eval A = ${r.a.label} (${r.a.dir}) vs B = ${r.b.label} (${r.b.dir}): ${w.prompts} prompts × ${seeds} seeds = ${r.comparisons} comparisons`,
    ...w.metrics.map(
      (m) =>
        `  ${m.metric.padEnd(width)} A wins ${pctText(m.winRate)} [${pctText(m.lo)}, ${pctText(m.hi)}]  (A ${m.wins} / tie ${m.ties} / B ${m.losses}${m.skipped ? `, ${m.skipped} unscored` : ''})`,
    ),
    `  ${'average'.padEnd(width)} A wins ${pctText(w.average.winRate)} [${pctText(w.average.lo)}, ${pctText(w.average.hi)}]  (${Math.round(w.level * 100)}% bootstrap over prompts, ${w.resamples} resamples)`,
  ];
  for (const warning of intervalWarnings(w, w.level)) lines.push(`  warning: ${warning}`);
  if (r.ignoredMetrics.length > 0) lines.push(`  not compared: ${r.ignoredMetrics.map((m) => `${m.metric} (${m.reason})`).join('; ')}`);
  lines.push(`  → ${result.files.html} (${(result.htmlBytes / 1024).toFixed(0)} KB, ${result.thumbnails} thumbnails), ${result.files.json}`);
  return lines.join('\n');
}
