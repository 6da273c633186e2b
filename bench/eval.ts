// What `eval` costs against DuckDB computing its main tables on the same files in the same process. Two synthetic
// sides (default 100k prompts × 4 seeds = 400k generations each, 4 metrics, 11 categories and 5 challenges; cached
// under bench/.cache) are compared by buildEvalReport — coverage checks, win rates per metric, per category and per
// challenge with bootstrap intervals, the gallery — and by DuckDB queries for the same tables without the bootstrap:
// the (prompt, seed) anti-joins both ways, every (prompt, metric)'s tally and mean credit, the win rates per metric
// overall, per category and per challenge, each metric's pooled spread, and the 24 prompts of largest gap.
//
//   node --import tsx bench/eval.ts [--prompts 100000] [--seeds 4]
//
// Ours is timed twice, after an untimed warm-up run: with 1 resample, which leaves the bootstrap out (the part
// DuckDB's queries do not do), and as run by default (2000 resamples). CPU seconds are those of the whole process.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { sha256Hex } from '../src/core/ids.ts';
import { writeRowsPart } from '../src/io/arrow-table.ts';
import { writeParquetPart } from '../src/io/parquet.ts';
import { SCORE_SPECS, type ImageRow, type PromptRow } from '../src/core/schema.ts';
import { BENCH_METRICS, BENCH_SCALES } from './synthetic-metrics.ts';
import { buildEvalReport } from '../src/report/eval/build.ts';
import { uniformGenerator } from '../tools/onnx-builder/seeded-random.ts';

const { values } = parseArgs({
  options: {
    prompts: { type: 'string', default: '100000' },
    seeds: { type: 'string', default: '4' },
  },
});
const PROMPTS = Number(values.prompts);
const SEEDS = Number(values.seeds);
const ROWS_PER_PART = 100_000;
const METRICS = BENCH_METRICS;
const CATEGORIES = [
  'Abstract',
  'Animals',
  'Artifacts',
  'Arts',
  'Food',
  'Illustrations',
  'Indoor',
  'Outdoor',
  'People',
  'Vehicles',
  'World',
];
const CHALLENGES = ['Basic', 'Complex', 'Fine-grained Detail', 'Imagination', 'Style & Format'];
const root = resolve(`bench/.cache/eval-${PROMPTS}x${SEEDS}`);
const sides = ['a', 'b'] as const;
const sideDir = (side: string): string => join(root, side);
const duckDir = (side: string): string => join(root, `${side}-duckdb`);

const cpuSeconds = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

async function synthesise(): Promise<void> {
  const params = JSON.stringify({ prompts: PROMPTS, seeds: SEEDS, metrics: METRICS.map((m) => m.name), version: 1 });
  const ready = join(root, 'READY.json');
  if (existsSync(ready) && (await readFile(ready, 'utf8')) === params) return;
  const t = performance.now();
  await rm(root, { recursive: true, force: true });
  const random = uniformGenerator(20241201);
  const promptIds = Array.from({ length: PROMPTS }, (_, p) => sha256Hex(`eval prompt ${p}`));
  const promptRows: PromptRow[] = promptIds.map((prompt_id, p) => ({
    prompt_id,
    text: `prompt number ${p}`,
    source: 'parti',
    split: null,
    category: CATEGORIES[p % CATEGORIES.length]!,
    challenge: CHALLENGES[p % CHALLENGES.length]!,
    note: null,
    prompt_index: p,
  }));
  // Model B is a little better on average; each metric sees the difference through its own scale and noise.
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const db = await instance.connect();
  for (const [s, side] of sides.entries()) {
    const dir = sideDir(side);
    for (let start = 0, k = 0; start < PROMPTS; start += ROWS_PER_PART, k++) {
      await writeRowsPart(dir, 'prompts', `bench-${String(k).padStart(5, '0')}`, promptRows.slice(start, start + ROWS_PER_PART));
    }
    const total = PROMPTS * SEEDS;
    const imageIds = Array.from({ length: total }, (_, i) => sha256Hex(`eval ${side} image ${i}`));
    const promptOf = (i: number): string => promptIds[Math.floor(i / SEEDS)]!;
    const seedOf = (i: number): number => i % SEEDS;
    for (let start = 0, k = 0; start < total; start += ROWS_PER_PART, k++) {
      const rows: ImageRow[] = [];
      for (let i = start; i < Math.min(total, start + ROWS_PER_PART); i++) {
        rows.push({
          image_id: imageIds[i]!,
          prompt_id: promptOf(i),
          bytes: new Uint8Array(0),
          mime: 'image/png',
          width: 512,
          height: 512,
          source_ref: `bench/${side}/${i}.png`,
          model: `model-${side}`,
          seed: seedOf(i),
        });
      }
      await writeRowsPart(dir, 'images', `bench-${String(k).padStart(5, '0')}`, rows);
    }
    const quality = Float64Array.from({ length: total }, () => random() * 2 - 1 + s * 0.1);
    for (const metric of METRICS) {
      const [offset, signal, noise] = BENCH_SCALES[metric.name]!;
      for (let start = 0, k = 0; start < total; start += ROWS_PER_PART, k++) {
        const end = Math.min(total, start + ROWS_PER_PART);
        const ids = imageIds.slice(start, end);
        const score = Float64Array.from(ids, (_, i) => offset + signal * quality[start + i]! + noise * (random() * 2 - 1));
        await writeParquetPart(dir, `scores/${metric.name}/part-${String(k).padStart(5, '0')}.parquet`, SCORE_SPECS, {
          image_id: ids,
          prompt_id: ids.map((_, i) => promptOf(start + i)),
          score,
          metric_version: ids.map(() => metric.version),
        });
      }
      await mkdir(join(dir, 'meta', 'scores'), { recursive: true });
      await writeFile(join(dir, 'meta', 'scores', `${metric.name}.json`), `${JSON.stringify(metric, null, 2)}\n`);
    }
    // DuckDB reads no Arrow IPC without an extension it would download: it gets Parquet copies of the images' keys
    // and of the prompts, written by DuckDB, the form a DuckDB user would keep them in.
    await mkdir(duckDir(side), { recursive: true });
    await db.run('CREATE OR REPLACE TABLE i (image_id VARCHAR, prompt_id VARCHAR, model VARCHAR, seed INTEGER)');
    const images = await db.createAppender('i');
    for (let i = 0; i < total; i++) {
      images.appendVarchar(imageIds[i]!);
      images.appendVarchar(promptOf(i));
      images.appendVarchar(`model-${side}`);
      images.appendInteger(seedOf(i));
      images.endRow();
    }
    images.closeSync();
    await db.run(`COPY i TO '${join(duckDir(side), 'images.parquet')}' (FORMAT parquet, COMPRESSION snappy)`);
    await db.run('CREATE OR REPLACE TABLE p (prompt_id VARCHAR, prompt_index INTEGER, text VARCHAR, category VARCHAR, challenge VARCHAR)');
    const prompts = await db.createAppender('p');
    for (const row of promptRows) {
      prompts.appendVarchar(row.prompt_id);
      prompts.appendInteger(row.prompt_index!);
      prompts.appendVarchar(row.text);
      prompts.appendVarchar(row.category!);
      prompts.appendVarchar(row.challenge!);
      prompts.endRow();
    }
    prompts.closeSync();
    await db.run(`COPY p TO '${join(duckDir(side), 'prompts.parquet')}' (FORMAT parquet, COMPRESSION snappy)`);
  }
  db.closeSync();
  instance.closeSync();
  await writeFile(ready, params);
  console.log(
    `synthesised 2 × ${PROMPTS * SEEDS} generations × ${METRICS.length} metrics in ${((performance.now() - t) / 1000).toFixed(1)} s → ${root}`,
  );
}

/**
 * Eval's main tables as DuckDB queries. Only the bench holds this copy of the win rate: it is the yardstick, not the
 * product (src/report/winrate.ts is the definition).
 */
function evalSql(): string[] {
  const side = (s: string): string => {
    const scores = METRICS.map(
      (m) =>
        `LEFT JOIN (SELECT image_id, prompt_id, score AS ${m.name} FROM read_parquet('${sideDir(s)}/scores/${m.name}/*.parquet')) ${m.name}_t USING (image_id, prompt_id)`,
    );
    return `SELECT i.prompt_id, i.seed, i.image_id, ${METRICS.map((m) => `${m.name}_t.${m.name}`).join(', ')}
      FROM read_parquet('${duckDir(s)}/images.parquet') i ${scores.join(' ')}`;
  };
  const credit = (m: string): string =>
    `CASE WHEN isfinite(a.${m}) AND isfinite(b.${m}) THEN (CASE WHEN a.${m} > b.${m} THEN 1.0 WHEN a.${m} = b.${m} THEN 0.5 ELSE 0.0 END) END AS c_${m}`;
  const names = METRICS.map((m) => m.name);
  const perPrompt = `WITH a AS (${side('a')}), b AS (${side('b')}),
    c AS (SELECT a.prompt_id, ${names.map(credit).join(', ')}, ${names.map((m) => `a.${m} - b.${m} AS d_${m}`).join(', ')}
      FROM a JOIN b USING (prompt_id, seed)),
    pp AS (SELECT c.prompt_id, any_value(p.category) AS category, any_value(p.challenge) AS challenge,
      ${names
        .map(
          (m) =>
            `avg(c_${m}) AS v_${m}, sum((c_${m} = 1)::INT) AS w_${m}, sum((c_${m} = 0.5)::INT) AS t_${m}, sum((c_${m} = 0)::INT) AS l_${m}, count(*) - count(c_${m}) AS s_${m}`,
        )
        .join(', ')}
      FROM c LEFT JOIN read_parquet('${duckDir('a')}/prompts.parquet') p USING (prompt_id) GROUP BY c.prompt_id)`;
  const rates = names
    .map((m) => `avg(v_${m}) AS rate_${m}, count(v_${m}) AS prompts_${m}, sum(w_${m}), sum(t_${m}), sum(l_${m}), sum(s_${m})`)
    .join(', ');
  const coverage = (x: string, y: string): string =>
    `SELECT count(*) FROM read_parquet('${duckDir(x)}/images.parquet') x ANTI JOIN read_parquet('${duckDir(y)}/images.parquet') y USING (prompt_id, seed)`;
  const spread = names.map(
    (m) => `SELECT stddev_pop(score) FROM (SELECT score FROM read_parquet('${sideDir('a')}/scores/${m}/*.parquet')
      UNION ALL SELECT score FROM read_parquet('${sideDir('b')}/scores/${m}/*.parquet'))`,
  );
  return [
    coverage('a', 'b'),
    coverage('b', 'a'),
    `SELECT count(*) FROM (SELECT prompt_id, seed FROM read_parquet('${duckDir('a')}/images.parquet') GROUP BY ALL HAVING count(*) > 1)`,
    ...spread,
    `${perPrompt} SELECT category, count(*) AS prompts, ${rates} FROM pp GROUP BY GROUPING SETS ((category), ())`,
    `${perPrompt} SELECT challenge, count(*) AS prompts, ${rates} FROM pp GROUP BY challenge`,
    `WITH a AS (${side('a')}), b AS (${side('b')})
      SELECT a.prompt_id, max(abs(${names.map((m) => `(a.${m} - b.${m})`).join(' + ')})) AS gap
      FROM a JOIN b USING (prompt_id, seed) GROUP BY a.prompt_id ORDER BY gap DESC LIMIT 24`,
  ];
}

async function duckdbEval(): Promise<{ seconds: number; cpu: number; overall: number[] }> {
  const start = performance.now();
  const cpuStart = cpuSeconds();
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const db = await instance.connect();
  const results = [];
  for (const sql of evalSql()) results.push((await db.runAndReadAll(sql)).getRows());
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSeconds() - cpuStart;
  db.closeSync();
  instance.closeSync();
  const byCategory = results[3 + METRICS.length]!;
  const overallRow = byCategory.find((row) => row[0] === null)!;
  const overall = METRICS.map((_, m) => Number(overallRow[2 + m * 6]));
  return { seconds, cpu, overall };
}

async function ours(resamples: number) {
  const start = performance.now();
  const cpuStart = cpuSeconds();
  const report = await buildEvalReport(sideDir('a'), sideDir('b'), { resamples });
  return { seconds: (performance.now() - start) / 1000, cpu: cpuSeconds() - cpuStart, report };
}

await synthesise();
console.log(
  `${PROMPTS} prompts × ${SEEDS} seeds = ${PROMPTS * SEEDS} comparisons × ${METRICS.length} metrics; load average ${loadavg()[0]!.toFixed(2)}`,
);
// A first run warms the page cache and the compiler for both timed ones (it is not counted).
await ours(1);
const point = await ours(1);
console.log(`(b) eval, 1 resample (no bootstrap): ${point.seconds.toFixed(2)} s, ${point.cpu.toFixed(2)} CPU s`);
const full = await ours(2000);
console.log(`(b) eval, 2000 resamples: ${full.seconds.toFixed(2)} s, ${full.cpu.toFixed(2)} CPU s`);
const ourPeak = process.resourceUsage().maxRSS / 1024;
const duck = await duckdbEval();
console.log(`(c) DuckDB, eval's main tables (2 threads): ${duck.seconds.toFixed(2)} s, ${duck.cpu.toFixed(2)} CPU s`);
const mismatch = Math.max(...METRICS.map((_, i) => Math.abs(full.report.winRate.metrics[i]!.winRate - duck.overall[i]!)));
if (!(mismatch < 1e-12)) throw new Error(`win rates differ from DuckDB's by ${mismatch}`);
console.log(
  `ratio ours ÷ DuckDB: ${(full.seconds / duck.seconds).toFixed(2)} wall, ${(full.cpu / duck.cpu).toFixed(2)} CPU (with the bootstrap); ` +
    `${(point.seconds / duck.seconds).toFixed(2)} wall, ${(point.cpu / duck.cpu).toFixed(2)} CPU (without); win rates agree to ${mismatch.toExponential(1)}`,
);
console.log(`our peak RSS ${ourPeak.toFixed(0)} MB; load average after: ${loadavg()[0]!.toFixed(2)}`);
