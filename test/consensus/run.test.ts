// runConsensus and runCalibrate over the bundled Pick-a-Pic sample (26 pairs in two pairs parts, human labels 1, 0,
// ½ and null) with hand-made score files for four metrics. Every consensus file is read back by DuckDB and each of
// its rows is recomputed here from the score files (read by DuckDB), the pairs and each metric.json, following
// the column definitions in the header of src/label/consensus.ts.
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readRows } from '../../src/io/arrow-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { randomMetricIndex } from '../../src/consensus/consensus.ts';
import { CALIBRATION_FILE, runCalibrate, runConsensus, type ConsensusRunOptions, type ConsensusSummary } from '../../src/consensus/run.ts';
import { SCORE_SPECS, type MetricInfo } from '../../src/core/schema.ts';
import type { TemperatureFit } from '../../src/consensus/calibrate.ts';
import type { PairRow } from '../../src/core/schema.ts';
import { BdpoError } from '../../src/core/errors.ts';
import { seededRandom } from '../support/pickapic-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

/** Metric order of the output columns is the folders' sorted order. */
const METRICS = ['aes', 'clip', 'hps', 'pick'] as const;
type Metric = (typeof METRICS)[number];
const INFO: Record<Metric, MetricInfo> = {
  aes: { name: 'aes', kind: 'aesthetic', version: 'aes-1', score: 'mlp', temperature: 1 },
  clip: { name: 'clip', kind: 'clip', version: 'clip-1', score: 'cos', temperature: 0.01 },
  hps: { name: 'hps', kind: 'hps', version: 'hps-2.1', score: 'cos', temperature: 0.01 },
  pick: { name: 'pick', kind: 'pickscore', version: 'pick-1', score: 'logit-scale-cos', temperature: 1 },
};
const TOL = 1e-12;

let root: string;
let dir: string;
let duck: DuckDBInstance;
let db: DuckDBConnection;
let pairs: PairRow[];
/** Scores as DuckDB reads them back: metric → "image:prompt" → score. */
let scores: Map<Metric, Map<string, number>>;
/** The image whose aesthetic score is left out (a missing score). */
let unscored: string;

const sql = (text: string): string => `'${text.replaceAll("'", "''")}'`;
async function query(text: string): Promise<Record<string, unknown>[]> {
  return (await db.runAndReadAll(text)).getRowObjectsJS() as Record<string, unknown>[];
}

before(async () => {
  root = await makeTempDir('bdpo-consensus-');
  dir = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: dir });
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
  pairs = [];
  for await (const row of readRows(dir, 'pairs')) pairs.push(row);
  await writeScores();
  scores = new Map();
  for (const m of METRICS) {
    const rows = await query(`SELECT image_id, prompt_id, score FROM read_parquet(${sql(join(dir, 'scores', m, '*.parquet'))})`);
    scores.set(m, new Map(rows.map((r) => [`${r.image_id}:${r.prompt_id}`, r.score as number])));
  }
});

after(async () => {
  db?.closeSync();
  duck?.closeSync();
  if (root) await removeDir(root);
});

/**
 * Scores built around a latent quality h that follows the human labels along each prompt's chain of pairs
 * (a ≻ b → h_b = h_a − 1): pick agrees with humans through noise, hps a little, clip sits on a coarse grid (equal
 * scores, so abstentions), aes is anti-correlated and misses one image.
 */
async function writeScores(): Promise<void> {
  const latent = new Map<string, number>();
  const random = seededRandom(2024);
  for (const p of pairs) {
    const ha = latent.get(`${p.image_a}:${p.prompt_id}`) ?? 0;
    latent.set(`${p.image_a}:${p.prompt_id}`, ha);
    const step = p.human_pref === null ? random() * 2 - 1 : p.human_pref === 1 ? -1 : p.human_pref === 0 ? 1 : 0;
    latent.set(`${p.image_b}:${p.prompt_id}`, ha + step);
  }
  const keys = [...latent.keys()];
  assert.equal(keys.length, 34);
  const noise = (scale: number) => (random() * 2 - 1) * scale;
  const values: Record<Metric, number[]> = {
    pick: keys.map((k) => 20 + 2 * latent.get(k)! + noise(2.5)),
    hps: keys.map((k) => 0.27 + 0.004 * latent.get(k)! + noise(0.012)),
    clip: keys.map(() => Math.round(30 + noise(1.5)) / 100),
    aes: keys.map((k) => 5.5 - 0.5 * latent.get(k)! + noise(0.6)),
  };
  const split = (k: string) => k.split(':') as [string, string];
  // One pair where pick and hps disagree gets equal clip scores and loses its first image's aesthetic score: a 1–1
  // tie that clip, as a tie-break metric, cannot resolve.
  const index = new Map(keys.map((k, i) => [k, i]));
  const contested = pairs.find((p) => {
    const [a, b] = [index.get(`${p.image_a}:${p.prompt_id}`)!, index.get(`${p.image_b}:${p.prompt_id}`)!];
    return Math.sign(values.pick[a]! - values.pick[b]!) * Math.sign(values.hps[a]! - values.hps[b]!) < 0;
  })!;
  const [ca, cb] = [index.get(`${contested.image_a}:${contested.prompt_id}`)!, index.get(`${contested.image_b}:${contested.prompt_id}`)!];
  values.clip[cb] = values.clip[ca]!;
  const skip = ca;
  unscored = contested.image_a;

  // pick in two parts, aes and clip in one, all through the toolkit's writer; hps written by DuckDB.
  const write = async (m: Metric, file: string, from: number, to: number, skip = -1) => {
    const idx = Array.from({ length: to - from }, (_, i) => from + i).filter((i) => i !== skip);
    await writeParquetPart(dir, `scores/${m}/${file}`, SCORE_SPECS, {
      image_id: idx.map((i) => split(keys[i]!)[0]),
      prompt_id: idx.map((i) => split(keys[i]!)[1]),
      score: idx.map((i) => values[m][i]!),
      metric_version: idx.map(() => INFO[m].version),
    });
  };
  await write('pick', 'part-a.parquet', 0, 20);
  await write('pick', 'part-b.parquet', 20, keys.length);
  await write('clip', 'part-a.parquet', 0, keys.length);
  await write('aes', 'part-a.parquet', 0, keys.length, skip);
  await db.run('CREATE TABLE hps (image_id VARCHAR, prompt_id VARCHAR, score DOUBLE, metric_version VARCHAR)');
  const appender = await db.createAppender('hps');
  keys.forEach((k, i) => {
    appender.appendVarchar(split(k)[0]);
    appender.appendVarchar(split(k)[1]);
    appender.appendDouble(values.hps[i]!);
    appender.appendVarchar(INFO.hps.version);
    appender.endRow();
  });
  appender.closeSync();
  await mkdir(join(dir, 'scores/hps'), { recursive: true });
  await db.run(`COPY hps TO ${sql(join(dir, 'scores/hps/part-duckdb.parquet'))} (FORMAT parquet, COMPRESSION zstd)`);
  for (const m of METRICS) await writeFile(join(dir, 'scores', m, 'metric.json'), `${JSON.stringify(INFO[m], null, 2)}\n`);
}

// ---- the independent recomputation ------------------------------------------------------------------------------

interface Row {
  pair_id: string;
  human_pref: number | null;
  p: (number | null)[];
  vote: number[];
  votes_a: number;
  votes_b: number;
  label: number | null;
  soft: number | null;
  margin: number | null;
  disagreement: number | null;
  kept: boolean;
  tie: boolean;
  reason: string;
}

const sigma = (x: number): number => 1 / (1 + Math.exp(-x));
const entropy = (a: number, b: number): number | null => {
  if (a + b === 0) return null;
  const q = a / (a + b);
  return q === 0 || q === 1 ? 0 : -(q * Math.log2(q) + (1 - q) * Math.log2(1 - q));
};

interface Setting {
  rule: string;
  ties: string;
  taus: Record<Metric, number>;
  seed?: number;
  /** Population std of each metric's image scores (the `normalized` rule). */
  stds?: Record<Metric, number>;
}

function expectedRow(pair: PairRow, s: Setting): Row {
  const score = (m: Metric, image: string) => scores.get(m)!.get(`${image}:${pair.prompt_id}`);
  const diffs = METRICS.map((m) => {
    const a = score(m, pair.image_a);
    const b = score(m, pair.image_b);
    return a === undefined || b === undefined ? null : a - b;
  });
  const p = diffs.map((d, j) => (d === null ? null : sigma(d / s.taus[METRICS[j]!])));
  const vote = p.map((x) => (x === null || x === 0.5 ? 0 : x > 0.5 ? 1 : -1));
  const votesA = vote.filter((v) => v === 1).length;
  const votesB = vote.filter((v) => v === -1).length;
  const h = pair.human_pref;
  const base = { pair_id: pair.pair_id, human_pref: h, p, vote, votes_a: votesA, votes_b: votesB, disagreement: entropy(votesA, votesB) };
  const missing = (): Row => ({ ...base, label: null, soft: null, margin: null, kept: false, tie: false, reason: 'missing' });

  let dir: number;
  let soft: number | null;
  let margin: number;
  const rule = s.rule;
  if (rule === 'majority') {
    if (p.every((x) => x === null)) return missing();
    soft = votesA + votesB > 0 ? votesA / (votesA + votesB) : null;
    dir = Math.sign(votesA - votesB);
    margin = Math.abs(votesA - votesB) / METRICS.length;
  } else if (rule === 'mean-prob') {
    const present = p.filter((x): x is number => x !== null);
    if (present.length === 0) return missing();
    const c = present.reduce((t, x) => t + (x - 0.5), 0) / present.length;
    soft = 0.5 + c;
    margin = 2 * Math.abs(c);
    dir = Math.sign(c);
  } else if (rule === 'vanilla' || rule === 'normalized') {
    if (diffs.some((d) => d === null)) return missing();
    const sum = diffs.reduce((t: number, d, j) => t + d! / (rule === 'normalized' ? s.stds![METRICS[j]!] : 1), 0);
    soft = sigma(sum);
    margin = Math.abs(2 * soft - 1);
    dir = Math.sign(sum);
  } else if (rule === 'random' || rule.startsWith('single:')) {
    const k = rule === 'random' ? randomMetricIndex(s.seed ?? 0, pair.pair_id, METRICS.length) : METRICS.indexOf(rule.slice(7) as Metric);
    const pk = p[k]!;
    if (pk === null) return missing();
    soft = pk;
    margin = 2 * Math.abs(pk - 0.5);
    dir = vote[k]!;
  } else if (rule === 'human') {
    if (h === null) return missing();
    soft = h;
    margin = Math.abs(2 * h - 1);
    dir = Math.sign(h - 0.5);
  } else {
    throw new Error(`no reference for rule ${rule}`);
  }
  if (dir !== 0) return { ...base, label: dir > 0 ? 1 : 0, soft, margin, kept: true, tie: false, reason: 'decided' };
  const tied = { ...base, soft, margin: 0, tie: true };
  if (s.ties === 'drop') return { ...tied, label: null, kept: false, reason: 'tie-dropped' };
  if (s.ties === 'half') return { ...tied, label: 0.5, kept: true, reason: 'tie-half' };
  if (s.ties === 'human') {
    return h === 1 || h === 0
      ? { ...tied, label: h, kept: true, reason: 'tie-human' }
      : { ...tied, label: null, kept: false, reason: 'tie-unresolved' };
  }
  const v = vote[METRICS.indexOf(s.ties as Metric)]!;
  return v !== 0
    ? { ...tied, label: v > 0 ? 1 : 0, kept: true, reason: 'tie-metric' }
    : { ...tied, label: null, kept: false, reason: 'tie-unresolved' };
}

async function consensusRows(folder: string): Promise<Row[]> {
  const columns = [...METRICS.flatMap((m) => [`p_${m}`, `vote_${m}`])].join(', ');
  const rows = await query(
    `SELECT pair_id, human_pref, ${columns}, votes_a, votes_b, label, soft, margin, disagreement, kept, tie, reason
     FROM read_parquet(${sql(join(dir, 'consensus', folder, '*.parquet'))})`,
  );
  return rows.map((r) => ({
    pair_id: r.pair_id as string,
    human_pref: r.human_pref as number | null,
    p: METRICS.map((m) => r[`p_${m}`] as number | null),
    vote: METRICS.map((m) => r[`vote_${m}`] as number),
    votes_a: r.votes_a as number,
    votes_b: r.votes_b as number,
    label: r.label as number | null,
    soft: r.soft as number | null,
    margin: r.margin as number | null,
    disagreement: r.disagreement as number | null,
    kept: r.kept as boolean,
    tie: r.tie as boolean,
    reason: r.reason as string,
  }));
}

function assertNear(actual: number | null, expected: number | null, what: string): void {
  if (expected === null || actual === null) {
    assert.equal(actual, expected, what);
    return;
  }
  assert.ok(Math.abs(actual - expected) <= TOL, `${what}: ${actual} vs ${expected}`);
}

const defaultTaus = (): Record<Metric, number> => ({ aes: 1, clip: 0.01, hps: 0.01, pick: 1 });

/** Runs a rule, then checks every row of its file against the reference and the summary against DuckDB. */
async function checkRule(
  options: ConsensusRunOptions,
  setting: Omit<Setting, 'rule' | 'ties'>,
): Promise<{ summary: ConsensusSummary; rows: Row[] }> {
  const summary = await runConsensus(dir, options);
  const folder = summary.output.replace(/^consensus\//, '');
  const rows = await consensusRows(folder);
  assert.equal(rows.length, pairs.length);
  const byId = new Map(rows.map((r) => [r.pair_id, r]));
  assert.equal(byId.size, pairs.length);
  const s: Setting = { rule: options.rule, ties: options.ties ?? 'drop', ...setting };
  for (const pair of pairs) {
    const got = byId.get(pair.pair_id)!;
    const want = expectedRow(pair, s);
    const what = `${options.rule}/${s.ties} ${pair.source_ref}`;
    assert.equal(got.human_pref, want.human_pref, `${what} human_pref`);
    want.p.forEach((x, j) => assertNear(got.p[j]!, x, `${what} p_${METRICS[j]}`));
    assert.deepEqual(got.vote, want.vote, `${what} votes`);
    assert.deepEqual([got.votes_a, got.votes_b], [want.votes_a, want.votes_b], `${what} votes_a/b`);
    assertNear(got.disagreement, want.disagreement, `${what} disagreement`);
    assertNear(got.soft, want.soft, `${what} soft`);
    assertNear(got.margin, want.margin, `${what} margin`);
    assert.deepEqual(
      { label: got.label, kept: got.kept, tie: got.tie, reason: got.reason },
      { label: want.label, kept: want.kept, tie: want.tie, reason: want.reason },
      what,
    );
  }
  await checkSummary(summary, folder);
  return { summary, rows };
}

async function checkSummary(summary: ConsensusSummary, folder: string): Promise<void> {
  const from = `FROM read_parquet(${sql(join(dir, 'consensus', folder, '*.parquet'))})`;
  const [totals] = await query(
    `SELECT count(*) AS pairs, count(*) FILTER (WHERE tie) AS ties, count(*) FILTER (WHERE kept) AS kept,
            count(*) FILTER (WHERE reason <> 'missing') AS voted,
            avg(CASE WHEN label = human_pref THEN 1 ELSE 0 END) ` +
      `FILTER (WHERE kept AND label IN (0, 1) AND human_pref IN (0, 1) AND reason <> 'tie-human') AS agree,
            count(*) FILTER (WHERE kept AND label IN (0, 1) AND human_pref IN (0, 1) AND reason = 'tie-human') AS excluded
     ${from}`,
  );
  assert.equal(summary.pairs, Number(totals!.pairs));
  assert.equal(summary.tiesCount, Number(totals!.ties));
  assert.equal(summary.kept, Number(totals!.kept));
  assert.equal(summary.tieRate, Number(totals!.voted) > 0 ? Number(totals!.ties) / Number(totals!.voted) : null);
  assertNear(summary.humanAgreement, totals!.agree === null ? null : Number(totals!.agree), 'humanAgreement');
  assert.equal(summary.humanAgreementExcluded, Number(totals!.excluded));
  const reasons = await query(`SELECT reason, count(*) AS n ${from} GROUP BY reason`);
  assert.deepEqual(summary.byReason, Object.fromEntries(reasons.map((r) => [r.reason as string, Number(r.n)])));
}

// ---- tests ------------------------------------------------------------------------------------------------------

test('the hand-made scores give what these tests need: ties, abstentions, a missing score, both directions', async () => {
  const rows = pairs.map((p) => expectedRow(p, { rule: 'majority', ties: 'drop', taus: defaultTaus() }));
  const splits = new Set(rows.map((r) => `${r.votes_a}-${r.votes_b}`));
  assert.ok(rows.filter((r) => r.tie).length >= 3, `ties: ${rows.filter((r) => r.tie).length}`);
  assert.ok(rows.some((r) => r.label === 1) && rows.some((r) => r.label === 0));
  assert.ok(
    rows.some((r) => r.vote[METRICS.indexOf('clip')] === 0 && r.p[METRICS.indexOf('clip')] === 0.5),
    'an abstention on equal scores',
  );
  assert.ok(
    rows.some((r) => r.p[METRICS.indexOf('aes')] === null),
    'a missing aesthetic score',
  );
  assert.ok(splits.size >= 4, [...splits].join(' '));
  assert.ok(pairs.some((p) => p.human_pref === null) && pairs.some((p) => p.human_pref === 0.5));
  assert.ok(pairs.some((p) => p.image_a === unscored || p.image_b === unscored));
});

test('consensus files have the documented columns, in order, with types DuckDB reads', async () => {
  const summary = await runConsensus(dir, { rule: 'majority' });
  assert.equal(summary.output, 'consensus/majority');
  assert.deepEqual(summary.metrics, [...METRICS]);
  const columns = await query(`DESCRIBE SELECT * FROM read_parquet(${sql(join(dir, 'consensus/majority/*.parquet'))})`);
  assert.deepEqual(
    columns.map((c) => `${c.column_name} ${c.column_type}`),
    [
      'pair_id VARCHAR',
      'prompt_id VARCHAR',
      'image_a VARCHAR',
      'image_b VARCHAR',
      'human_pref DOUBLE',
      'split VARCHAR',
      ...METRICS.flatMap((m) => [`p_${m} DOUBLE`, `vote_${m} TINYINT`]),
      'votes_a INTEGER',
      'votes_b INTEGER',
      'label DOUBLE',
      'soft DOUBLE',
      'margin DOUBLE',
      'disagreement DOUBLE',
      'kept BOOLEAN',
      'tie BOOLEAN',
      'reason VARCHAR',
    ],
  );
  // One consensus part per pairs part, named after it; the options that made them are in meta/ (only Parquet here).
  const pairsParts = (await readdir(join(dir, 'pairs'))).filter((f) => f.endsWith('.arrow')).map((f) => f.replace(/\.arrow$/, '.parquet'));
  assert.deepEqual((await readdir(join(dir, 'consensus/majority'))).sort(), pairsParts.sort());
  assert.deepEqual(await readdir(join(dir, 'meta/consensus')), ['majority.json']);
  // Ids and splits pass through from the pairs table.
  const ids = await query(
    `SELECT pair_id, prompt_id, image_a, image_b, split FROM read_parquet(${sql(join(dir, 'consensus/majority/*.parquet'))})`,
  );
  const key = (r: { pair_id: unknown; prompt_id: unknown; image_a: unknown; image_b: unknown; split: unknown }) =>
    `${r.pair_id} ${r.prompt_id} ${r.image_a} ${r.image_b} ${r.split}`;
  assert.deepEqual(ids.map((r) => key(r as never)).sort(), pairs.map((p) => key(p)).sort());
});

describe('every rule and tie policy matches the recomputation from the score files', () => {
  for (const ties of ['drop', 'half', 'human', 'hps', 'clip']) {
    test(`majority, ties ${ties}`, async () => {
      const { summary, rows } = await checkRule({ rule: 'majority', ties, calibrated: false }, { taus: defaultTaus() });
      assert.equal(summary.ties, ties);
      // Variants of a rule get their own folders, so they never overwrite each other.
      assert.equal(summary.output, ties === 'drop' ? 'consensus/majority' : `consensus/majority.ties-${ties}`);
      if (ties === 'clip')
        assert.ok(
          rows.some((r) => r.reason === 'tie-unresolved'),
          'clip abstains on some tie',
        );
      if (ties === 'half') assert.ok(rows.some((r) => r.label === 0.5));
    });
  }

  test('mean-prob', async () => {
    await checkRule({ rule: 'mean-prob', calibrated: false }, { taus: defaultTaus() });
  });

  test('vanilla: raw score sums; the pair with a missing score is dropped as missing', async () => {
    const { summary } = await checkRule({ rule: 'vanilla', calibrated: false }, { taus: defaultTaus() });
    assert.ok((summary.byReason.missing ?? 0) > 0);
  });

  test('normalized: z-scores with the population std of each metric over its scored images', async () => {
    const perMetric = METRICS.map((m) => `SELECT '${m}' AS m, score FROM read_parquet(${sql(join(dir, 'scores', m, '*.parquet'))})`);
    const rows = await query(`SELECT m, stddev_pop(score) AS s FROM (${perMetric.join(' UNION ALL ')}) GROUP BY m`);
    const stds = Object.fromEntries(rows.map((r) => [r.m as string, r.s as number])) as Record<Metric, number>;
    await checkRule({ rule: 'normalized', calibrated: false }, { taus: defaultTaus(), stds });
  });

  test('random: seeded, the same seed gives the same file, another seed draws other metrics', async () => {
    const seven = await checkRule({ rule: 'random', seed: 7, calibrated: false }, { taus: defaultTaus(), seed: 7 });
    assert.equal(seven.summary.output, 'consensus/random.seed-7');
    await runConsensus(dir, { rule: 'random', seed: 7, calibrated: false });
    const again = await consensusRows('random.seed-7');
    assert.deepEqual(again, seven.rows);
    const eight = await checkRule({ rule: 'random', seed: 8, calibrated: false }, { taus: defaultTaus(), seed: 8 });
    const drawn = (seed: number) => pairs.map((p) => randomMetricIndex(seed, p.pair_id, METRICS.length));
    assert.notDeepEqual(drawn(7), drawn(8));
    assert.ok(new Set(drawn(7)).size >= 3, 'the draw spreads over the metrics');
    assert.notDeepEqual(
      eight.rows.map((r) => r.soft),
      seven.rows.map((r) => r.soft),
    );
  });

  test('single:<metric> follows that metric alone; its folder is named single-<metric>', async () => {
    const { summary } = await checkRule({ rule: 'single:hps', calibrated: false }, { taus: defaultTaus() });
    assert.equal(summary.output, 'consensus/single-hps');
    await checkRule({ rule: 'single:aes', ties: 'half', calibrated: false }, { taus: defaultTaus() });
  });

  test('human: the human label, ½ handled by the tie policy, null missing', async () => {
    const { summary } = await checkRule({ rule: 'human', ties: 'half', calibrated: false }, { taus: defaultTaus() });
    assert.equal(summary.humanAgreement, 1);
    assert.equal(summary.byReason.missing, pairs.filter((p) => p.human_pref === null).length);
  });
});

describe('calibrate, then consensus with the fitted temperatures', () => {
  let fits: Record<string, TemperatureFit>;

  before(async () => {
    await runCalibrate(dir);
    fits = (JSON.parse(await readFile(join(dir, CALIBRATION_FILE), 'utf8')) as { metrics: Record<string, TemperatureFit> }).metrics;
  });

  test('calibration.json: each fitted τ solves the likelihood equation Σ d (y − σ(d/τ)) = 0 over the labelled pairs', () => {
    assert.deepEqual(Object.keys(fits).sort(), [...METRICS]);
    assert.equal(fits.aes!.status, 'anti-correlated');
    assert.equal(fits.aes!.tau, null);
    for (const m of ['pick', 'hps'] as const) {
      const fit = fits[m]!;
      assert.equal(fit.status, 'ok', m);
      // calibrate fits on the train split by default, so the test pairs stay out of sample.
      const used = pairs.filter((p) => p.human_pref !== null && p.split === 'train');
      const labelled = pairs.filter((p) => p.human_pref !== null).length;
      assert.ok(used.length > 0 && used.length < labelled, 'the sample has train and other splits');
      assert.equal(fit.n, used.length, `${m}: labelled train pairs`);
      let equation = 0;
      let scale = 0;
      for (const p of used) {
        const d = scores.get(m)!.get(`${p.image_a}:${p.prompt_id}`)! - scores.get(m)!.get(`${p.image_b}:${p.prompt_id}`)!;
        equation += d * (p.human_pref! - sigma(d / fit.tau!));
        scale += Math.abs(d);
      }
      assert.ok(Math.abs(equation) <= 1e-9 * scale, `${m}: score equation ${equation} (scale ${scale})`);
      assert.equal(fit.defaultTau, INFO[m].temperature);
    }
    // The aesthetic score misses one image: its pairs are not in the fit.
    const withoutAes = pairs.filter(
      (p) => p.human_pref !== null && p.split === 'train' && p.image_a !== unscored && p.image_b !== unscored,
    ).length;
    assert.equal(fits.aes!.n, withoutAes);
  });

  test('consensus uses the calibrated τ where the fit is ok and the metric.json τ elsewhere', async () => {
    const taus = defaultTaus();
    for (const m of METRICS) if (fits[m]!.status === 'ok') taus[m] = fits[m]!.tau!;
    const { summary } = await checkRule({ rule: 'majority', ties: 'half' }, { taus });
    assert.equal(summary.output, 'consensus/majority.ties-half');
    for (const m of METRICS) {
      const expected =
        fits[m]!.status === 'ok' ? { tau: fits[m]!.tau!, source: 'calibrated' } : { tau: INFO[m].temperature, source: 'metric' };
      assert.deepEqual(summary.temperatures[m], expected, m);
    }
    assert.equal(summary.temperatures.pick!.source, 'calibrated');
    assert.equal(summary.temperatures.aes!.source, 'metric');
    const optionsText = await readFile(join(dir, 'meta', `${summary.output}.json`), 'utf8');
    const options = JSON.parse(optionsText) as { temperatures: unknown; ties: string };
    assert.deepEqual(options.temperatures, summary.temperatures);
    assert.equal(options.ties, 'half');
  });

  test('calibrated: false ignores calibration.json', async () => {
    const { summary } = await checkRule({ rule: 'mean-prob', calibrated: false }, { taus: defaultTaus() });
    assert.ok(Object.values(summary.temperatures).every((t) => t.source === 'metric'));
  });
});

test('re-running a rule replaces its folder whole: no staging or old folders left', async () => {
  await runConsensus(dir, { rule: 'vanilla' });
  await runConsensus(dir, { rule: 'vanilla' });
  const entries = await readdir(join(dir, 'consensus'));
  assert.ok(
    entries.every((e) => !e.startsWith('.') && !e.endsWith('.old')),
    entries.join(', '),
  );
});

test('worker threads write the same parts, byte for byte, and the same summary as labelling in this thread', async () => {
  for (const rule of ['majority', 'random', 'normalized']) {
    const inThread = await runConsensus(dir, { rule, seed: 3, calibrated: false, name: `${rule}-in-thread`, workers: 1 });
    const inWorkers = await runConsensus(dir, { rule, seed: 3, calibrated: false, name: `${rule}-in-workers`, workers: 2 });
    const strip = ({ output, seconds, ...rest }: ConsensusSummary) => rest;
    assert.deepEqual(strip(inWorkers), strip(inThread));
    assert.deepEqual(Object.keys(inWorkers.byReason), Object.keys(inThread.byReason), 'reasons in the same order');
    const files = (await readdir(join(dir, 'consensus', `${rule}-in-thread`))).sort();
    assert.equal(files.length, 2, 'one Parquet part per pairs part');
    assert.deepEqual((await readdir(join(dir, 'consensus', `${rule}-in-workers`))).sort(), files);
    for (const file of files) {
      const a = await readFile(join(dir, 'consensus', `${rule}-in-thread`, file));
      const b = await readFile(join(dir, 'consensus', `${rule}-in-workers`, file));
      assert.ok(a.equals(b), `${rule}/${file} differs`);
    }
  }
});

test('workers must be a whole number ≥ 1', async () => {
  await assert.rejects(runConsensus(dir, { rule: 'majority', workers: 0 }), /workers must be an integer ≥ 1, got 0/);
});

test('a pairs part damaged after it was written stops a run in worker threads with the one-line error that names it', async () => {
  const copy = join(root, 'damaged');
  await cp(dir, copy, { recursive: true });
  const [part] = (await readdir(join(copy, 'pairs'))).filter((f) => f.endsWith('.arrow')).sort();
  const path = join(copy, 'pairs', part!);
  const bytes = await readFile(path);
  // A byte in the middle: the framing and schema still read, only the recorded sha256 no longer matches.
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  await writeFile(path, bytes);
  await assert.rejects(runConsensus(copy, { rule: 'majority', workers: 2 }), (error: Error) => {
    assert.ok(error instanceof BdpoError, `${error.name}: ${error.message} is a BdpoError`);
    assert.equal(error.exitCode, 1);
    assert.match(error.message, new RegExp(`${part}: sha256 .* differs`));
    return true;
  });
});
