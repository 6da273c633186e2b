// Small dataset directories for the report tests, written through the toolkit's own writers: prompts/images/pairs
// Arrow parts, per-metric score Parquet parts with their meta/scores/<metric>.json, and (for the audit) the consensus
// files made by runConsensus. Scores are chosen so that every metric's vote on every pair is known in advance (τ = 1, δ = 0:
// vote = sign(s_a − s_b)), which is what lets the tests check the statistics against hand-computed values.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeRowsPart } from '../../src/io/arrow-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { runConsensus, type ConsensusSummary } from '../../src/consensus/run.ts';
import { SCORE_SPECS, type MetricInfo } from '../../src/core/schema.ts';
import type { ImageRow, PairRow, PromptRow } from '../../src/core/schema.ts';

/** A prompt that would run script if it were rendered as markup (it must show as text). */
export const HOSTILE_PROMPT = 'a red car <img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script> & "quotes"';

/** Folder order is the metric order of the consensus columns. */
export const AUDIT_METRICS = ['aes', 'clip', 'hps', 'pick'] as const;
type AuditMetric = (typeof AUDIT_METRICS)[number];

type V = 1 | -1 | 0 | null;

export interface AuditPairSpec {
  n: number;
  /** Votes of aes, clip, hps, pick; null = the metric has no score for image a. */
  votes: [V, V, V, V];
  /** |s_a − s_b| for the metrics that vote (default 1). */
  weight?: number;
  human: number | null;
  split: 'train' | 'test';
  prompt: string;
}

/**
 * Eight ordinary pairs (each with its own two images), one pair with a missing aesthetic score, and one HPD ranked
 * group of three images (pairs 9–11, `test.json#0:i-j`) whose per-image scores are given directly.
 */
export const AUDIT_PAIRS: AuditPairSpec[] = [
  { n: 1, votes: [1, 1, 1, 1], human: 1, split: 'train', prompt: 'animal' },
  { n: 2, votes: [1, 1, 1, -1], human: 1, split: 'train', prompt: 'animal' },
  { n: 3, votes: [1, 1, -1, -1], weight: 3, human: 0, split: 'train', prompt: 'animal' },
  { n: 4, votes: [-1, -1, -1, -1], human: 0, split: 'train', prompt: 'vehicle' },
  { n: 5, votes: [1, -1, -1, -1], human: 1, split: 'train', prompt: 'vehicle' },
  { n: 6, votes: [0, 1, 1, -1], human: 0.5, split: 'train', prompt: 'plain' },
  { n: 7, votes: [-1, -1, 1, 1], weight: 0.5, human: null, split: 'test', prompt: 'plain' },
  { n: 8, votes: [1, 1, 1, -1], human: 0, split: 'test', prompt: 'plain' },
  { n: 12, votes: [null, 1, 1, 1], human: 1, split: 'train', prompt: 'animal' },
];

/** The ranked group: images x, y, z (positions 0, 1, 2; human ranks 1, 2, 3) and their scores per metric. */
export const GROUP_SCORES: Record<AuditMetric, [number, number, number]> = {
  aes: [3, 2, 1],
  clip: [1, 2, 3],
  hps: [2, 1, 3],
  pick: [1, 1, 0],
};
/** Pairs 9, 10, 11 = positions (0,1), (0,2), (1,2), all labelled "a preferred" (rank i < rank j). */
export const GROUP_PAIRS: [number, number, number][] = [
  [9, 0, 1],
  [10, 0, 2],
  [11, 1, 2],
];

export const PROMPTS: Record<string, { text: string; category: string | null }> = {
  animal: { text: 'a cat sleeping on a windowsill', category: 'animal' },
  vehicle: { text: HOSTILE_PROMPT, category: 'vehicle' },
  plain: { text: 'an abstract painting', category: null },
  group: { text: 'a lighthouse at night', category: null },
};

export const pairId = (n: number): string => `pair-${String(n).padStart(2, '0')}`;
export const promptId = (key: string): string => `prompt-${key}`;

function promptRow(key: string, extra: Partial<PromptRow> = {}): PromptRow {
  const p = PROMPTS[key]!;
  return {
    prompt_id: promptId(key),
    text: p.text,
    source: 'test',
    split: null,
    category: p.category,
    challenge: null,
    note: null,
    prompt_index: null,
    ...extra,
  };
}

/** A small real JPEG of colour number `n` (distinct hues) with a diagonal band, so thumbnails have something to show. */
export async function colourImage(n: number, size = 96): Promise<Buffer> {
  const hue = (n * 47) % 360;
  const [r, g, b] = hsl(hue, 0.55, 0.55);
  const band = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">` +
      `<rect width="100%" height="100%" fill="rgb(${r},${g},${b})"/>` +
      `<circle cx="${size / 2}" cy="${size / 2}" r="${size / 4}" fill="white" fill-opacity="0.5"/></svg>`,
  );
  return sharp(band).jpeg({ quality: 85 }).toBuffer();
}

function hsl(h: number, s: number, l: number): [number, number, number] {
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const x = c * (1 - Math.abs(((h / 60) % 2) - 1));
  const m = l - c / 2;
  const [r, g, b] = h < 60 ? [c, x, 0] : h < 120 ? [x, c, 0] : h < 180 ? [0, c, x] : h < 240 ? [0, x, c] : h < 300 ? [x, 0, c] : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

async function imageRow(imageId: string, prompt: string, n: number, extra: Partial<ImageRow> = {}): Promise<ImageRow> {
  return {
    image_id: imageId,
    prompt_id: prompt,
    bytes: await colourImage(n),
    mime: 'image/jpeg',
    width: 96,
    height: 96,
    source_ref: imageId,
    model: null,
    seed: null,
    ...extra,
  };
}

async function writeScores(dir: string, info: MetricInfo, rows: { image: string; prompt: string; score: number }[]): Promise<void> {
  await mkdir(join(dir, 'scores', info.name), { recursive: true });
  await mkdir(join(dir, 'meta', 'scores'), { recursive: true });
  await writeFile(join(dir, 'meta', 'scores', `${info.name}.json`), `${JSON.stringify(info, null, 2)}\n`);
  await writeParquetPart(dir, `scores/${info.name}/part-test.parquet`, SCORE_SPECS, {
    image_id: rows.map((r) => r.image),
    prompt_id: rows.map((r) => r.prompt),
    score: rows.map((r) => r.score),
    metric_version: rows.map(() => info.version),
  });
}

export interface AuditFixture {
  dir: string;
  consensus: ConsensusSummary;
}

/** The audit dataset in `dir`: 12 pairs in two pairs parts, four metrics, majority consensus (ties dropped). */
export async function writeAuditFixture(dir: string): Promise<AuditFixture> {
  await writeRowsPart(
    dir,
    'prompts',
    'test',
    Object.keys(PROMPTS).map((k) => promptRow(k)),
  );
  const images: ImageRow[] = [];
  const pairs: PairRow[] = [];
  const scores: Record<AuditMetric, { image: string; prompt: string; score: number }[]> = { aes: [], clip: [], hps: [], pick: [] };
  for (const spec of AUDIT_PAIRS) {
    const a = `img-${spec.n}a`;
    const b = `img-${spec.n}b`;
    const prompt = promptId(spec.prompt);
    images.push(await imageRow(a, prompt, 2 * spec.n), await imageRow(b, prompt, 2 * spec.n + 1));
    pairs.push({
      pair_id: pairId(spec.n),
      prompt_id: prompt,
      image_a: a,
      image_b: b,
      human_pref: spec.human,
      split: spec.split,
      source_ref: `fixture#${spec.n}`,
    });
    AUDIT_METRICS.forEach((m, i) => {
      const vote = spec.votes[i]!;
      if (vote !== null) scores[m].push({ image: a, prompt, score: vote * (spec.weight ?? 1) });
      scores[m].push({ image: b, prompt, score: 0 });
    });
  }
  const group = ['x', 'y', 'z'].map((s) => `img-group-${s}`);
  for (const [i, id] of group.entries()) {
    images.push(await imageRow(id, promptId('group'), 40 + i));
    AUDIT_METRICS.forEach((m) => scores[m].push({ image: id, prompt: promptId('group'), score: GROUP_SCORES[m][i]! }));
  }
  const rankedPairs: PairRow[] = GROUP_PAIRS.map(([n, i, j]) => ({
    pair_id: pairId(n),
    prompt_id: promptId('group'),
    image_a: group[i]!,
    image_b: group[j]!,
    human_pref: 1,
    split: 'test',
    source_ref: `test.json#0:${i}-${j}`,
  }));
  await writeRowsPart(dir, 'images', 'test', images);
  // Two parts, as ingest writes them: the consensus parts mirror them one to one.
  await writeRowsPart(dir, 'pairs', 'a-plain', pairs);
  await writeRowsPart(dir, 'pairs', 'b-ranked', rankedPairs);
  for (const m of AUDIT_METRICS) {
    await writeScores(dir, { name: m, kind: m, version: `${m}-1`, score: 'test', temperature: 1 }, scores[m]);
  }
  const consensus = await runConsensus(dir, { rule: 'majority', calibrated: false });
  return { dir, consensus };
}

// ---------------------------------------------------------------------------------------------------------------
// Generations of two models for `eval`

export interface GenerationSpec {
  model: string;
  /** (prompt index, seed) → per-metric score. */
  images: { prompt: number; seed: number | null; scores: Record<string, number> }[];
  /** Metric name → version written in its metric.json (default `<name>-1`). */
  versions?: Record<string, string>;
}

export const EVAL_PROMPTS: { text: string; category: string; challenge: string }[] = [
  { text: 'a corgi wearing a party hat', category: 'Animals', challenge: 'Basic' },
  { text: HOSTILE_PROMPT, category: 'Animals', challenge: 'Complex' },
  { text: 'a blue bicycle leaning on a wall', category: 'Vehicles', challenge: 'Basic' },
];

/** One model's generations as `bdpo ingest images` lays them out, plus score parts for each metric named. */
export async function writeGenerationsFixture(dir: string, spec: GenerationSpec): Promise<void> {
  await writeRowsPart(
    dir,
    'prompts',
    'list',
    EVAL_PROMPTS.map((p, index) => ({
      prompt_id: `gen-prompt-${index}`,
      text: p.text,
      source: 'images',
      split: null,
      category: p.category,
      challenge: p.challenge,
      note: null,
      prompt_index: index,
    })),
  );
  const offset = spec.model.length * 7;
  const rows: ImageRow[] = [];
  for (const [k, image] of spec.images.entries()) {
    const id = `${spec.model}-${image.prompt}-${image.seed ?? 'x'}-${k}`;
    rows.push(
      await imageRow(id, `gen-prompt-${image.prompt}`, offset + k, {
        model: spec.model,
        seed: image.seed,
        source_ref: `${spec.model}/${image.prompt}_${image.seed}.jpg`,
      }),
    );
  }
  await writeRowsPart(dir, 'images', 'gen', rows);
  const metrics = [...new Set(spec.images.flatMap((i) => Object.keys(i.scores)))];
  for (const m of metrics) {
    const scored = spec.images
      .map((image, k) => ({ image: rows[k]!.image_id, prompt: `gen-prompt-${image.prompt}`, score: image.scores[m] }))
      .filter((r) => r.score !== undefined);
    await writeScores(
      dir,
      { name: m, kind: m, version: spec.versions?.[m] ?? `${m}-1`, score: 'test', temperature: 1 },
      scored as { image: string; prompt: string; score: number }[],
    );
  }
}
