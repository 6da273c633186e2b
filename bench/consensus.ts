// What a consensus rule and the audit cost, against reading their inputs and against DuckDB doing the same on the
// same files in the same process. A synthetic dataset (default 1M pairs over 1M images, 4 metrics; cached under
// bench/.cache) is labelled by every rule; each run is compared with (a), the time to read what every run must read
// (the score files and the pairs parts), and with (c), DuckDB's majority query; the audit with (d), DuckDB's
// queries for its main tables. CPU seconds (all threads of the process) are printed beside wall seconds.
//
//   node --import tsx bench/consensus.ts [--pairs 1000000] [--rules majority,mean-prob,…] [--skip-read]
//   node --import tsx bench/consensus.ts --build-only [--pairs N]      # build the cached dataset (and DuckDB's pairs copy)
//
// The dataset has what runConsensus reads and nothing else: pairs/part-*.arrow (100k pairs each), and per metric
// scores/<m>/part-*.parquet (250k images each) with meta/scores/<m>.json. Four images per prompt, four pairs per prompt.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pairId, sha256Hex } from '../src/core/ids.ts';
import { listParts, readPart, writeRowsPart } from '../src/io/arrow-table.ts';
import { writeParquetPart } from '../src/io/parquet.ts';
import { runConsensus } from '../src/consensus/run.ts';
import { SCORE_SPECS } from '../src/core/schema.ts';
import { BENCH_METRICS, BENCH_SCALES } from './synthetic-metrics.ts';
import { loadScoreTable } from '../src/core/score-table.ts';
import { uniformGenerator } from '../tools/onnx-builder/seeded-random.ts';
import type { PairRow } from '../src/core/schema.ts';
import { DuckDBInstance } from '@duckdb/node-api';
import { buildAuditReport } from '../src/report/audit/build.ts';

const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '1000000' },
    rules: { type: 'string', default: 'majority,mean-prob,vanilla,normalized,random,single:pick,human' },
    'build-only': { type: 'boolean', default: false },
    'duckdb-only': { type: 'boolean', default: false },
    // At 10M pairs (a) alone takes minutes: --skip-read leaves it out and compares with DuckDB only.
    'skip-read': { type: 'boolean', default: false },
  },
});
const PAIRS = Number(values.pairs);
const PAIRS_PER_PROMPT = 4;
const IMAGES_PER_PROMPT = 4;
const PAIRS_PER_PART = 100_000;
const SCORES_PER_PART = 250_000;
const METRICS = BENCH_METRICS;
const dir = resolve(`bench/.cache/consensus-${PAIRS}`);
const READY = join(dir, 'READY.json');

async function synthesise(): Promise<void> {
  const params = JSON.stringify({ pairs: PAIRS, metrics: METRICS.map((m) => m.name), version: 1 });
  if (existsSync(READY) && (await readFile(READY, 'utf8')) === params) return;
  const t = performance.now();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const random = uniformGenerator(20240601);
  const prompts = Math.ceil(PAIRS / PAIRS_PER_PROMPT);
  const imageCount = prompts * IMAGES_PER_PROMPT;
  const promptIds = Array.from({ length: prompts }, (_, p) => sha256Hex(`prompt ${p}`));
  const imageIds = Array.from({ length: imageCount }, (_, i) => sha256Hex(`image ${i}`));
  // A latent quality per image, seen by each metric through its own scale and noise.
  const quality = Float64Array.from({ length: imageCount }, () => random() * 2 - 1);
  for (const metric of METRICS) {
    const [offset, signal, noise] = BENCH_SCALES[metric.name]!;
    for (let start = 0, k = 0; start < imageCount; start += SCORES_PER_PART, k++) {
      const end = Math.min(imageCount, start + SCORES_PER_PART);
      const n = end - start;
      const ids = imageIds.slice(start, end);
      const score = new Float64Array(n);
      for (let i = 0; i < n; i++) score[i] = offset + signal * quality[start + i]! + noise * (random() * 2 - 1);
      await writeParquetPart(dir, `scores/${metric.name}/part-${String(k).padStart(5, '0')}.parquet`, SCORE_SPECS, {
        image_id: ids,
        prompt_id: ids.map((_, i) => promptIds[Math.floor((start + i) / IMAGES_PER_PROMPT)]!),
        score,
        metric_version: ids.map(() => metric.version),
      });
    }
    await mkdir(join(dir, 'meta', 'scores'), { recursive: true });
    await writeFile(join(dir, 'meta', 'scores', `${metric.name}.json`), `${JSON.stringify(metric, null, 2)}\n`);
  }
  // Pairs (0,1), (0,2), (1,3), (2,3) of each prompt's four images; human labels cycle 1, 0, ½, null.
  const within: Array<[number, number]> = [
    [0, 1],
    [0, 2],
    [1, 3],
    [2, 3],
  ];
  let rows: PairRow[] = [];
  let part = 0;
  for (let i = 0; i < PAIRS; i++) {
    const p = Math.floor(i / PAIRS_PER_PROMPT);
    const [x, y] = within[i % PAIRS_PER_PROMPT]!;
    const a = imageIds[p * IMAGES_PER_PROMPT + x]!;
    const b = imageIds[p * IMAGES_PER_PROMPT + y]!;
    rows.push({
      pair_id: pairId(promptIds[p]!, a, b),
      prompt_id: promptIds[p]!,
      image_a: a,
      image_b: b,
      human_pref: [1, 0, 0.5, null][i % 4]!,
      split: 'train',
      source_ref: `bench#${i}`,
    });
    if (rows.length === PAIRS_PER_PART || i === PAIRS - 1) {
      await writeRowsPart(dir, 'pairs', `bench-${String(part++).padStart(5, '0')}`, rows);
      rows = [];
    }
  }
  await writeFile(READY, params);
  console.log(
    `synthesised ${PAIRS} pairs, ${imageCount} images × ${METRICS.length} metrics ` +
      `in ${((performance.now() - t) / 1000).toFixed(1)} s → ${dir}`,
  );
}

/** What every consensus run reads: the score table and each pairs part's columns. */
async function readInputs(): Promise<{ scores: number; pairs: number }> {
  let t = performance.now();
  const table = await loadScoreTable(dir);
  const scores = (performance.now() - t) / 1000;
  t = performance.now();
  let n = 0;
  for (const file of await listParts(dir, 'pairs')) {
    const part = await readPart(dir, file);
    for (const name of ['pair_id', 'prompt_id', 'image_a', 'image_b']) part.getChild(name)!.toArray();
    const human = part.getChild('human_pref')!;
    for (let i = 0; i < part.numRows; i++) human.get(i);
    n += part.numRows;
  }
  if (n !== PAIRS || table.images !== Math.ceil(PAIRS / PAIRS_PER_PROMPT) * IMAGES_PER_PROMPT)
    throw new Error(`read ${n} pairs, ${table.images} images`);
  return { scores, pairs: (performance.now() - t) / 1000 };
}

// DuckDB has no reader of Arrow IPC files without an extension it would download, so it reads a Parquet copy of the
// pairs (written once, DuckDB's own snappy Parquet, beside the dataset): the form a DuckDB user would keep them in.
const duckPairs = `${dir}-duckdb-pairs`;
async function duckdbPairsCopy(): Promise<void> {
  if (existsSync(join(duckPairs, 'READY'))) return;
  await rm(duckPairs, { recursive: true, force: true });
  await mkdir(duckPairs, { recursive: true });
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const db = await instance.connect();
  for (const file of await listParts(dir, 'pairs')) {
    const part = await readPart(dir, file);
    const n = part.numRows;
    const column = (name: string): unknown[] => {
      const vector = part.getChild(name)!;
      return Array.from({ length: n }, (_, i) => vector.get(i));
    };
    const rows = { pair_id: column('pair_id'), prompt_id: column('prompt_id'), image_a: column('image_a'), image_b: column('image_b') };
    const human = column('human_pref') as Array<number | null>;
    const split = column('split') as Array<string | null>;
    await db.run(
      'CREATE OR REPLACE TABLE p (pair_id VARCHAR, prompt_id VARCHAR, image_a VARCHAR, image_b VARCHAR, human_pref DOUBLE, split VARCHAR)',
    );
    const appender = await db.createAppender('p');
    for (let i = 0; i < n; i++) {
      appender.appendVarchar(rows.pair_id[i] as string);
      appender.appendVarchar(rows.prompt_id[i] as string);
      appender.appendVarchar(rows.image_a[i] as string);
      appender.appendVarchar(rows.image_b[i] as string);
      if (human[i] === null) appender.appendNull();
      else appender.appendDouble(human[i]!);
      if (split[i] === null) appender.appendNull();
      else appender.appendVarchar(split[i]!);
      appender.endRow();
    }
    appender.closeSync();
    const name = file
      .split('/')
      .pop()!
      .replace(/\.arrow$/, '.parquet');
    await db.run(`COPY p TO '${join(duckPairs, name)}' (FORMAT parquet, COMPRESSION snappy)`);
  }
  db.closeSync();
  instance.closeSync();
  await writeFile(join(duckPairs, 'READY'), '');
}

/**
 * The majority rule (ties drop, δ 0, unit weights) as one DuckDB query over the score files and the pairs: every p,
 * vote, votes_a/b, label, soft, margin, disagreement, kept, tie and reason, written as snappy Parquet, one file per
 * pairs part as ours are. Only the bench holds this copy of the rule: it is the yardstick, not the product.
 */
function majoritySql(out: string): string {
  const M = METRICS.length;
  // One scan per metric, joined once into a wide score table, then looked up for both images of every pair.
  const scores = METRICS.map(
    (m) => `(SELECT image_id, prompt_id, score AS ${m.name} FROM read_parquet('${dir}/scores/${m.name}/*.parquet'))`,
  );
  const wide =
    `SELECT * FROM ${scores[0]} ${METRICS[0]!.name}_t ` +
    METRICS.slice(1)
      .map((m, k) => `FULL JOIN ${scores[k + 1]} ${m.name}_t USING (image_id, prompt_id)`)
      .join(' ');
  const joins =
    `LEFT JOIN s sa ON sa.image_id = p.image_a AND sa.prompt_id = p.prompt_id ` +
    `LEFT JOIN s sb ON sb.image_id = p.image_b AND sb.prompt_id = p.prompt_id`;
  const ps = METRICS.map((m) => `1 / (1 + exp(-(sa.${m.name} - sb.${m.name}) / ${m.temperature})) AS p_${m.name}`).join(', ');
  const votes = METRICS.map((m) => `coalesce(CAST(sign(p_${m.name} - 0.5) AS TINYINT), 0) AS vote_${m.name}`).join(', ');
  const count = (side: number) => METRICS.map((m) => `(vote_${m.name} = ${side})::INT`).join(' + ');
  return `COPY (
    WITH s AS (${wide}),
    probs AS (SELECT p.*, ${ps} FROM read_parquet('${duckPairs}/*.parquet', filename = true) p
${joins}),
    voted AS (SELECT *, ${votes} FROM probs),
    counted AS (SELECT *, ${count(1)} AS votes_a, ${count(-1)} AS votes_b FROM voted)
    SELECT pair_id, prompt_id, image_a, image_b, human_pref, split,
      ${METRICS.map((m) => `p_${m.name}, vote_${m.name}`).join(', ')},
      votes_a, votes_b,
      CASE WHEN votes_a > votes_b THEN 1.0 WHEN votes_a < votes_b THEN 0.0 END AS label,
      CASE WHEN votes_a + votes_b > 0 THEN votes_a / (votes_a + votes_b) END AS soft,
      abs(votes_a - votes_b) / ${M} AS margin,
      CASE WHEN votes_a + votes_b = 0 THEN NULL WHEN votes_a = 0 OR votes_b = 0 THEN 0.0 ELSE
        -(votes_a / (votes_a + votes_b) * log2(votes_a / (votes_a + votes_b))
          + votes_b / (votes_a + votes_b) * log2(votes_b / (votes_a + votes_b))) END AS disagreement,
      votes_a <> votes_b AS kept, votes_a = votes_b AS tie,
      CASE WHEN votes_a <> votes_b THEN 'decided' ELSE 'tie-dropped' END AS reason,
      regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS part
    FROM counted
  ) TO '${out}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (part), OVERWRITE_OR_IGNORE)`;
}

/**
 * The audit's main tables as DuckDB queries over the majority consensus files and the score files: per split and
 * overall, pairs, labelled pairs, ties, each rater's agreement with the human votes and every pair of raters'
 * agreement (metrics, consensus, human); and each metric's 30-bin histogram of distinct (image, prompt) scores.
 */
function auditSql(): string[] {
  const raters = [...METRICS.map((m) => `v_${m.name}`), 'cons', 'h'];
  const agreement = raters.flatMap((x, i) =>
    raters.slice(i + 1).map((y) => `sum((${x} = ${y})::INT) AS agree_${x}_${y}, count(${x} + ${y}) AS both_${x}_${y}`),
  );
  const tables = `WITH c AS (SELECT split, tie,
      CASE WHEN human_pref > 0.5 THEN 1 WHEN human_pref < 0.5 THEN -1 WHEN human_pref = 0.5 THEN 0 END AS h,
      CASE WHEN reason = 'missing' THEN NULL WHEN label IS NULL THEN 0 WHEN label > 0.5 THEN 1 WHEN label < 0.5 THEN -1 ELSE 0 END AS cons,
      ${METRICS.map((m) => `CASE WHEN p_${m.name} IS NOT NULL THEN sign(vote_${m.name}) END AS v_${m.name}`).join(', ')}
    FROM read_parquet('${dir}/consensus/majority/*.parquet'))
    SELECT split, count(*) AS pairs, count(h) AS labelled, sum(tie::INT) AS ties, ${agreement.join(', ')}
    FROM c GROUP BY GROUPING SETS ((split), ())`;
  const histograms = METRICS.map(
    (m) => `WITH s AS (SELECT DISTINCT image_id, prompt_id, score FROM read_parquet('${dir}/scores/${m.name}/*.parquet')),
      r AS (SELECT min(score) AS lo, max(score) AS hi, avg(score) AS mean, stddev_pop(score) AS std FROM s)
      SELECT least(29, floor((score - lo) / (hi - lo) * 30))::INT AS bin, count(*) AS n, any_value(mean), any_value(std)
      FROM s, r GROUP BY bin ORDER BY bin`,
  );
  return [tables, ...histograms];
}

async function duckdbAudit(): Promise<{ seconds: number; cpu: number }> {
  const start = performance.now();
  const cpuStart = cpuSeconds();
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const db = await instance.connect();
  let rows = 0;
  for (const sql of auditSql()) rows += (await db.runAndReadAll(sql)).getRows().length;
  const seconds = (performance.now() - start) / 1000;
  db.closeSync();
  instance.closeSync();
  if (rows < 2) throw new Error(`DuckDB audit returned ${rows} rows`);
  return { seconds, cpu: cpuSeconds() - cpuStart };
}

async function duckdbMajority(): Promise<{ seconds: number; cpu: number }> {
  const out = `${dir}-duckdb-out`;
  await rm(out, { recursive: true, force: true });
  const start = performance.now();
  const cpuStart = cpuSeconds();
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const db = await instance.connect();
  await db.run(majoritySql(out));
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSeconds() - cpuStart;
  const check = await db.runAndReadAll(`SELECT count(*)::INT AS n, sum(kept::INT)::INT AS kept FROM read_parquet('${out}/**/*.parquet')`);
  const [n] = check.getRows()[0] as [number, number];
  db.closeSync();
  instance.closeSync();
  if (n !== PAIRS) throw new Error(`DuckDB wrote ${n} pairs`);
  await rm(out, { recursive: true, force: true });
  return { seconds, cpu };
}

await synthesise();
await duckdbPairsCopy();
if (values['build-only']) process.exit(0);
if (values['duckdb-only']) {
  const { seconds, cpu } = await duckdbMajority();
  console.log(`DuckDB majority: ${seconds.toFixed(2)} s, ${cpu.toFixed(2)} CPU s`);
  process.exit(0);
}
console.log(`${PAIRS} pairs × ${METRICS.length} metrics; load average ${loadavg()[0]!.toFixed(2)}`);
// (a) is measured before and after the rules (other processes on the machine come and go); ratios use the mean.
const skipped = { scores: Number.NaN, pairs: Number.NaN };
const before = values['skip-read'] ? skipped : await readInputs();
console.log(
  `(a) read inputs: ${(before.scores + before.pairs).toFixed(2)} s ` +
    `(score table ${before.scores.toFixed(2)} s, pairs parts ${before.pairs.toFixed(2)} s)`,
);
/** CPU seconds of the whole process (every thread: ours, our workers', DuckDB's), which the machine's load hardly moves. */
const cpuSeconds = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};
const results: Array<{ rule: string; seconds: number; cpu: number; kept: number; tieRate: number | null; rss: number }> = [];
for (const rule of values.rules!.split(',')) {
  const start = performance.now();
  const cpuStart = cpuSeconds();
  const summary = await runConsensus(dir, { rule, ...(rule === 'random' ? { seed: 1 } : {}), calibrated: false });
  const seconds = (performance.now() - start) / 1000;
  if (summary.pairs !== PAIRS) throw new Error(`${rule}: ${summary.pairs} pairs`);
  results.push({
    rule,
    seconds,
    cpu: cpuSeconds() - cpuStart,
    kept: summary.kept / PAIRS,
    tieRate: summary.tieRate,
    rss: process.resourceUsage().maxRSS / 1024,
  });
  console.log(`    ${rule}: ${seconds.toFixed(2)} s`);
}
// The audit of the majority folder written above (its computation; no page, the bench dataset has no images).
const auditStart = performance.now();
const auditCpuStart = cpuSeconds();
const audit = await buildAuditReport(dir, { rule: 'majority' });
const auditSeconds = (performance.now() - auditStart) / 1000;
const auditCpu = cpuSeconds() - auditCpuStart;
if (audit.overall.pairs !== PAIRS) throw new Error(`audit saw ${audit.overall.pairs} pairs`);
console.log(`    audit (majority): ${auditSeconds.toFixed(2)} s`);
const auditRss = process.resourceUsage().maxRSS / 1024;
const after = values['skip-read'] ? skipped : await readInputs();
console.log(
  `(a) read inputs again: ${(after.scores + after.pairs).toFixed(2)} s ` +
    `(score table ${after.scores.toFixed(2)} s, pairs parts ${after.pairs.toFixed(2)} s)`,
);
const ourPeak = process.resourceUsage().maxRSS / 1024;
// DuckDB runs last, so that its memory (in this process) is not counted in our peak RSS.
const duck = await duckdbMajority();
console.log(`(c) DuckDB, majority as one query (2 threads): ${duck.seconds.toFixed(2)} s, ${duck.cpu.toFixed(2)} CPU s`);
const duckAudit = await duckdbAudit();
console.log(
  `(d) audit: ours ${auditSeconds.toFixed(2)} s (${auditCpu.toFixed(2)} CPU s), DuckDB's main tables ` +
    `${duckAudit.seconds.toFixed(2)} s (${duckAudit.cpu.toFixed(2)} CPU s); ratio ${(auditSeconds / duckAudit.seconds).toFixed(2)} wall, ` +
    `${(auditCpu / duckAudit.cpu).toFixed(2)} CPU; peak RSS after the audit ${auditRss.toFixed(0)} MB`,
);
const base = (before.scores + before.pairs + after.scores + after.pairs) / 2;
console.log(
  `(b) ${'rule'.padEnd(14)} ${'seconds'.padStart(8)} ${'÷ (a)'.padStart(7)} ${'÷ (c)'.padStart(7)} ${'CPU s'.padStart(7)} ` +
    `${'CPU ÷ (c)'.padStart(9)} ${'pairs/s'.padStart(10)}  kept   tie rate  peak RSS so far`,
);
for (const r of results) {
  console.log(
    `    ${r.rule.padEnd(14)} ${r.seconds.toFixed(2).padStart(8)} ${(r.seconds / base).toFixed(2).padStart(7)} ` +
      `${(r.seconds / duck.seconds).toFixed(2).padStart(7)} ${r.cpu.toFixed(1).padStart(7)} ${(r.cpu / duck.cpu).toFixed(2).padStart(9)} ` +
      `${(PAIRS / r.seconds).toFixed(0).padStart(10)}` +
      `  ${r.kept.toFixed(3)}  ${r.tieRate === null ? '   —  ' : r.tieRate.toFixed(3)}    ${r.rss.toFixed(0)} MB`,
  );
}
console.log(`(a) mean ${base.toFixed(2)} s; our peak RSS ${ourPeak.toFixed(0)} MB; load average after: ${loadavg()[0]!.toFixed(2)}`);
