// Reliability of the label stage and of every command's inputs: numeric options that must never hang or surface as
// internal errors, model outputs of the wrong shape or not finite, captions of any length, sizes in config files.
// Real files throughout: the bundled Pick-a-Pic sample ingested, tiny real ONNX models, real CLI processes where a
// defect would hang the process that runs it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, mock, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readRows, writeRowsPart } from '../../src/io/arrow-table.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { main } from '../../src/cli/main.ts';
import { parseMetricSpec } from '../../src/models/metric-spec.ts';
import { runLabel } from '../../src/label/run.ts';
import { ClipTokenizer } from '../../src/models/tokenizer.ts';
import { GraphBuilder } from '../../tools/onnx-builder/graph.ts';
import { tinyClipVisionModel } from '../../tools/onnx-builder/tiny-models.ts';
import { runAudit } from '../../src/report/audit.ts';
import { runEncode } from '../../src/encode/encode.ts';
import { parseTrainConfig } from '../../src/train/config.ts';
import type { PromptRow, RejectRow } from '../../src/core/schema.ts';
import { clipTokenizerPath, SPLIT_CLIP, writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { PROMPTS, promptId, writeAuditFixture } from '../support/report-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BIN = join(REPO, 'bin/bdpo.js');
const BASE = { device: 'cpu', intraOpNumThreads: 1 } as const;

let root: string;
let fx: MetricsFixture;
let sample: string;

before(async () => {
  root = await makeTempDir('bdpo-reliability-label-');
  fx = await writeMetricsFixture(join(root, 'models'));
  sample = join(root, 'sample');
  await ingestPickapic([join(REPO, 'data/pickapic')], { out: sample });
});

after(async () => {
  if (root) await removeDir(root);
});

let copies = 0;
async function copyOfSample(): Promise<string> {
  const dir = join(root, `copy-${copies++}`);
  await cp(sample, dir, { recursive: true });
  return dir;
}

interface Run {
  code: number | null;
  stderr: string;
  timedOut: boolean;
}

/** A separate node process (a defect that hangs must not hang the test runner), killed after `timeoutMs`. */
function runNode(args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, BDPO_DEBUG: '' },
      cwd: REPO,
    });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stderr, timedOut });
    });
  });
}

/** `bdpo …` in this process (argument errors come before any work), with what it wrote to stderr. */
async function bdpoInProcess(args: string[]): Promise<{ code: number; stderr: string }> {
  const lines: string[] = [];
  const errorMock = mock.method(console, 'error', (...parts: unknown[]) => void lines.push(parts.map(String).join(' ')));
  const logMock = mock.method(console, 'log', () => undefined);
  try {
    const code = await main(args);
    return { code, stderr: lines.join('\n') };
  } finally {
    errorMock.mock.restore();
    logMock.mock.restore();
  }
}

// ---- item 6: numeric options -------------------------------------------------------------------------------------

describe('numeric options', () => {
  test('bdpo label --batch-size 0 and -1 end at once with a usage error naming the flag and the value', async () => {
    const dir = await copyOfSample();
    const runs = await Promise.all(
      // parseArgs takes a value starting with '-' only in the --flag=value form.
      ['0', '-1'].map((value) =>
        runNode([BIN, 'label', dir, '--metrics', fx.metrics.aesthetic, `--batch-size=${value}`, '--device', 'cpu'], 30_000),
      ),
    );
    for (const [i, run] of runs.entries()) {
      const value = ['0', '-1'][i]!;
      assert.equal(run.timedOut, false, `--batch-size ${value} did not end within 30 s`);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, new RegExp(`--batch-size must be an integer .*got "${value}"`));
    }
    assert.equal((await readManifest(dir)).runs.filter((r) => r.stage === 'label').length, 0, 'no label run recorded');
  });

  test('runLabel rejects a batch size or concurrency that could never finish, before reading anything', async () => {
    // In a child process: on a defective build this loops forever without yielding.
    const dir = await copyOfSample();
    const script =
      `
      const { runLabel } = await import(${JSON.stringify(join(REPO, 'src/label/run.ts'))});
      const cases = [{ batchSize: 0 }, { batchSize: -3 }, { batchSize: 2.5 }, { batchSize: Number.NaN }, ` +
      `{ concurrency: 0 }, { concurrency: -1 }];
      for (const extra of cases) {
        try {
          await runLabel(${JSON.stringify(dir)}, { metrics: [${JSON.stringify(fx.metrics.aesthetic)}], ` +
      `device: 'cpu', intraOpNumThreads: 1, ...extra });
          console.error('accepted ' + JSON.stringify(extra));
        } catch (error) {
          console.error('refused: ' + error.message);
        }
      }`;
    const run = await runNode(['--import', 'tsx', '--input-type=module', '-e', script], 60_000);
    assert.equal(run.timedOut, false, 'runLabel did not end within 60 s');
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 6, run.stderr);
    for (const line of lines) assert.match(line, /^refused: (batchSize|concurrency) must be an integer ≥ 1, got (0|-3|2\.5|NaN|-1)$/);
  });

  test('every numeric option of every command is checked in the CLI: exit 2, the flag and the bad value named', async () => {
    const nowhere = join(root, 'no-such-dataset');
    const metric = fx.metrics.aesthetic;
    const cases: Array<[string[], string, string]> = [
      [['label', nowhere, '--metrics', metric, '--batch-size', '0'], 'batch-size', '0'],
      [['label', nowhere, '--metrics', metric, '--batch-size', '1.5'], 'batch-size', '1.5'],
      [['label', nowhere, '--metrics', metric, '--batch-size', ''], 'batch-size', ''],
      [['label', nowhere, '--metrics', metric, '--batch-size', '0x10'], 'batch-size', '0x10'],
      [['label', nowhere, '--metrics', metric, '--batch-size', '100000000'], 'batch-size', '100000000'],
      [['label', nowhere, '--metrics', metric, '--threads', '0'], 'threads', '0'],
      [['label', nowhere, '--metrics', metric, '--threads=-2'], 'threads', '-2'],
      [['label', nowhere, '--metrics', metric, '--shards', 'x'], 'shards', 'x'],
      [['label', nowhere, '--metrics', metric, '--shard', '5/2'], 'shard', '5/2'],
      [['ingest', 'parti', join(root, 'x.tsv'), '--out', join(root, 'o'), '--max-pixels', '0'], 'max-pixels', '0'],
      [['ingest', 'parti', join(root, 'x.tsv'), '--out', join(root, 'o'), '--max-pixels', '2.5'], 'max-pixels', '2.5'],
      [['encode', nowhere, '--vae', 'v.onnx', '--text', 't.onnx', '--batch-size', '0'], 'batch-size', '0'],
      [['encode', nowhere, '--vae', 'v.onnx', '--text', 't.onnx', '--resolution', '100000'], 'resolution', '100000'],
      [['encode', nowhere, '--vae', 'v.onnx', '--text', 't.onnx', '--resolution', '12'], 'resolution', '12'],
      [['encode', nowhere, '--vae', 'v.onnx', '--text', 't.onnx', '--scaling-factor=-1'], 'scaling-factor', '-1'],
      [['export', nowhere, '--rule', 'majority', '--out', join(root, 'e'), '--rows-per-part', '0'], 'rows-per-part', '0'],
      [['audit', nowhere, '--out', join(root, 'r'), '--bins', '1e9'], 'bins', '1e9'],
      [['audit', nowhere, '--out', join(root, 'r'), '--top=-1'], 'top', '-1'],
      [['eval', '--a', nowhere, '--b', nowhere, '--out', join(root, 'r'), '--resamples', '1e12'], 'resamples', '1e12'],
      [['eval', '--a', nowhere, '--b', nowhere, '--out', join(root, 'r'), '--seed', '1.5'], 'seed', '1.5'],
      [['train', nowhere, '--rule', 'm', '--out', join(root, 't'), '--config', 'c.json', '--steps=-1'], 'steps', '-1'],
      [['consensus', nowhere, '--margin', '0.7'], 'margin', '0.7'],
      [['consensus', nowhere, '--margin', 'abc'], 'margin', 'abc'],
      [['consensus', nowhere, '--seed=-3'], 'seed', '-3'],
    ];
    const wrong: string[] = [];
    for (const [args, flag, value] of cases) {
      const { code, stderr } = await bdpoInProcess(args);
      const named = stderr.includes(`--${flag}`) && stderr.includes(`"${value}"`);
      if (code !== 2 || !named) wrong.push(`${args.join(' ')} → exit ${code}: ${stderr}`);
    }
    assert.deepEqual(wrong, []);
  });
});

// ---- item 7: model output shapes and finiteness ------------------------------------------------------------------

/** An aesthetic head over [n, 16] embeddings whose output the caller builds from the input. */
function headModel(build: (g: GraphBuilder, x: { name: string }) => { name: string }, outDims: (string | number)[]): Uint8Array {
  const g = new GraphBuilder('head');
  const x = g.input('embedding', 'float32', ['batch_size', SPLIT_CLIP.embedDim!]);
  g.output(build(g, x), 'float32', outDims, 'score');
  return g.toBytes();
}

async function aestheticWithHead(file: string, head: Uint8Array, extra: Record<string, unknown> = {}): Promise<string> {
  await writeFile(join(fx.dir, `${file}.onnx`), head);
  return fx.writeMetric(`${file}.json`, {
    name: file,
    kind: 'aesthetic',
    version: `${file}-1`,
    vision_model: 'clip-vision.onnx',
    head_model: `${file}.onnx`,
    image_size: SPLIT_CLIP.imageSize,
    ...extra,
  });
}

async function scoreCount(dir: string, metric: string): Promise<number> {
  const duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  const db = await duck.connect();
  try {
    const rows = (
      await db.runAndReadAll(
        'SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE NOT isfinite(score))::INTEGER AS bad ' +
          `FROM read_parquet('${join(dir, 'scores', metric, '*.parquet')}')`,
      )
    ).getRowObjectsJS();
    const { n, bad } = rows[0] as { n: number; bad: number };
    assert.equal(bad, 0, `${metric}: non-finite scores were written`);
    return n;
  } finally {
    db.closeSync();
    duck.closeSync();
  }
}

async function scoreValues(dir: string, metric: string): Promise<number[]> {
  const duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  const db = await duck.connect();
  try {
    const rows = (
      await db.runAndReadAll(`SELECT score FROM read_parquet('${join(dir, 'scores', metric, '*.parquet')}')`)
    ).getRowObjectsJS();
    return rows.map((r) => Number(r.score));
  } finally {
    db.closeSync();
    duck.closeSync();
  }
}

async function labelRejects(dir: string): Promise<RejectRow[]> {
  const rows: RejectRow[] = [];
  for await (const row of readRows(dir, 'rejects')) if (row.stage === 'label') rows.push(row);
  return rows;
}

describe('model outputs', () => {
  test('NaN and ±Inf scores are rejects with reason non_finite_score naming the metric, never scores', async () => {
    const dir = await copyOfSample();
    // The first component of each image's unit embedding, scored by a probe head; log(x₀ − c) with c between two of
    // them is then finite for the images above c and NaN (or −Inf) for the others.
    const onehot = (g: GraphBuilder): { name: string } =>
      g.const(
        Float32Array.from({ length: SPLIT_CLIP.embedDim! }, (_, j) => (j === 0 ? 1 : 0)),
        [SPLIT_CLIP.embedDim!],
      );
    const first = (g: GraphBuilder, x: { name: string }): { name: string } =>
      g.op('ReduceSum', [g.op('Mul', [x, onehot(g)]), g.ints([1])], { keepdims: 1 });
    const probeDir = await copyOfSample();
    await runLabel(probeDir, { ...BASE, metrics: [await aestheticWithHead('probe', headModel(first, ['batch_size', 1]))] });
    const firsts = (await scoreValues(probeDir, 'probe')).sort((x, y) => x - y);
    assert.equal(firsts.length, 34);
    const c = Math.fround((firsts[16]! + firsts[17]!) / 2);
    const above = firsts.filter((x) => x > c).length;
    assert.ok(above > 0 && above < 34);
    const logHead = headModel((g, x) => g.op('Log', [g.op('Sub', [first(g, x), g.scalar(c)])]), ['batch_size', 1]);
    // x / 0: ±Inf (or NaN where x is 0) for every image.
    const divHead = headModel(
      (g, x) => g.op('Div', [g.op('ReduceSum', [x, g.ints([1])], { keepdims: 1 }), g.scalar(0)]),
      ['batch_size', 1],
    );
    const nanHead = headModel(
      (g, x) => g.op('Mul', [g.op('ReduceSum', [x, g.ints([1])], { keepdims: 0 }), g.scalar(Number.NaN)]),
      ['batch_size'],
    );
    const metrics = [
      await aestheticWithHead('loghead', logHead),
      await aestheticWithHead('divhead', divHead),
      await aestheticWithHead('nanhead', nanHead),
    ];
    const summary = await runLabel(dir, { ...BASE, metrics, batchSize: 8 });
    const rejects = await labelRejects(dir);
    const manifest = await readManifest(dir);
    const scored: Record<string, number> = {};
    for (const m of summary.metrics) {
      scored[m.name] = await scoreCount(dir, m.name);
      assert.equal(m.scored, scored[m.name]);
      const units = Object.values(manifest.units).filter((u) => u.stage === 'label' && u.version?.startsWith(`${m.name}-1 [`));
      const read = units.reduce((s, u) => s + u.counts.read, 0);
      const taken = units.reduce((s, u) => s + u.counts.taken, 0);
      const rejected = units.reduce((s, u) => s + u.counts.rejected, 0);
      assert.equal(read, 34);
      assert.equal(taken, scored[m.name]);
      assert.equal(read, taken + rejected, `${m.name}: read = taken + rejected`);
      const own = rejects.filter((r) => r.reason === 'non_finite_score' && r.detail.includes(`metric ${m.name}:`));
      assert.equal(own.length, rejected, `${m.name}: one non_finite_score reject per image not scored`);
    }
    assert.equal(scored.divhead, 0);
    assert.equal(scored.nanhead, 0);
    assert.equal(scored.loghead, above, 'log head: the images above c are scored, the others rejected');
    assert.equal(summary.counts.read, summary.counts.taken + summary.counts.rejected);
    assert.equal(summary.counts.rejected, 34, 'every image failed at least one metric');
  });

  test('a NaN image embedding is a reject of every metric reading it, not a score', async () => {
    const dir = await copyOfSample();
    const g = new GraphBuilder('nan_vision');
    const pixels = g.input('pixel_values', 'float32', ['batch_size', 3, SPLIT_CLIP.imageSize!, SPLIT_CLIP.imageSize!]);
    const pooled = g.op('ReduceMean', [pixels], { axes: [2, 3], keepdims: 0 });
    const weight = g.initializer('proj', new Float32Array(3 * SPLIT_CLIP.embedDim!).fill(Number.NaN), [3, SPLIT_CLIP.embedDim!]);
    g.output(g.op('MatMul', [pooled, weight]), 'float32', ['batch_size', SPLIT_CLIP.embedDim!], 'image_embeds');
    await writeFile(join(fx.dir, 'nan-vision.onnx'), g.toBytes());
    const metric = await fx.writeMetric('nan-clip.json', {
      name: 'nanclip',
      kind: 'clip',
      version: 'nanclip-1',
      text_model: 'clip-text.onnx',
      vision_model: 'nan-vision.onnx',
      tokenizer: fx.tokenizer,
      image_size: SPLIT_CLIP.imageSize,
    });
    const summary = await runLabel(dir, { ...BASE, metrics: [metric] });
    assert.equal(await scoreCount(dir, 'nanclip'), 0);
    assert.equal(summary.metrics[0]!.scored, 0);
    assert.deepEqual(summary.counts.byReason, { non_finite_score: 34 });
    const rejects = await labelRejects(dir);
    assert.equal(rejects.length, 34);
    assert.ok(
      rejects.every((r) => r.reason === 'non_finite_score' && r.detail.startsWith('metric nanclip:')),
      rejects[0]?.detail,
    );
  });

  test('an aesthetic head of output [n, 3] is refused naming the model file and the shape', async () => {
    const dir = await copyOfSample();
    const wide = headModel(
      (g, x) => g.op('MatMul', [x, g.initializer('w', new Float32Array(SPLIT_CLIP.embedDim! * 3).fill(0.1), [SPLIT_CLIP.embedDim!, 3])]),
      ['batch_size', 3],
    );
    const metric = await aestheticWithHead('widehead', wide);
    await assert.rejects(runLabel(dir, { ...BASE, metrics: [metric], batchSize: 4 }), /widehead\.onnx: .*\[4, 3\].*\[n\] or \[n, 1\]/);
  });

  test('image embeddings whose width differs from the text tower are refused naming both models and shapes', async () => {
    const dir = await copyOfSample();
    await writeFile(join(fx.dir, 'vision-8.onnx'), tinyClipVisionModel({ ...SPLIT_CLIP, embedDim: 8 }));
    const metric = await fx.writeMetric('narrow.json', {
      name: 'narrow',
      kind: 'clip',
      text_model: 'clip-text.onnx',
      vision_model: 'vision-8.onnx',
      tokenizer: fx.tokenizer,
      image_size: SPLIT_CLIP.imageSize,
    });
    await assert.rejects(
      runLabel(dir, { ...BASE, metrics: [metric], batchSize: 4 }),
      /vision-8\.onnx.*\[4, 8\].*clip-text\.onnx.*\[\d+, 16\]/,
    );
  });
});

// ---- item 14: captions of any length -----------------------------------------------------------------------------

describe('long captions', () => {
  let tokenizer: ClipTokenizer;
  let pair: ClipTokenizer;
  before(async () => {
    tokenizer = await ClipTokenizer.fromFile(clipTokenizerPath());
    // The two-file layout, as the tokenizer reference tests read it from the repository's fixtures.
    const clipDir = resolve(REPO, 'test', 'fixtures', 'clip');
    pair = await ClipTokenizer.fromVocabMerges(join(clipDir, 'vocab.json'), join(clipDir, 'merges.txt'));
  });

  /** Words joined by assorted separators, with the characters whose handling depends on what surrounds them. */
  function caption(words: number, seed: number): string {
    const vocabulary = [
      'a',
      'photo',
      'of',
      'ΟΔΟΣ',
      'Σ',
      'café',
      'e\u0301',
      '\u0301x',
      '2024',
      "it's",
      '<|endoftext|>',
      '😀',
      'naïve',
      '東京タワー',
      'x1y2',
      'foo.bar',
      'A.Σ',
      "don't",
      '...',
      'ﬁne',
    ];
    const separators = [' ', ' ', ' ', '  ', '\t', '\n', '\u00a0', ' \u3000 ', '\r\n', ''];
    let state = seed;
    const next = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state % n;
    };
    let text = '';
    for (let i = 0; i < words; i++) text += vocabulary[next(vocabulary.length)]! + separators[next(separators.length)]!;
    return text;
  }

  test('a long caption gives the ids of the whole text cut to 77, for both tokenizer layouts', () => {
    for (const [seed, words] of [
      [1, 4000],
      [2, 6000],
      [3, 9000],
      [4, 20_000],
    ] as const) {
      const text = caption(words, seed);
      assert.ok(text.length > 8192, `caption ${seed} is long (${text.length} chars)`);
      for (const tok of [tokenizer, pair]) {
        const whole = tok.tokenIds(text);
        const { ids, untruncatedLength } = tok.encode(text);
        assert.deepEqual(ids, [tok.bosId, ...whole.slice(0, 75), tok.eosId], `caption ${seed}`);
        assert.ok(untruncatedLength > 77);
        const batch = tok.encodeBatch([text]);
        assert.deepEqual(Array.from(batch.inputIds, Number), [tok.bosId, ...whole.slice(0, 75), tok.eosId]);
      }
    }
  });

  test('captions cut at every length around the bound give the same ids as the whole text', () => {
    const text = caption(4000, 7);
    for (let length = 3000; length < 9000; length += 97) {
      const cut = text.slice(0, length);
      const whole = tokenizer.tokenIds(cut);
      assert.deepEqual(tokenizer.encode(cut).ids, [tokenizer.bosId, ...whole.slice(0, 75), tokenizer.eosId], `length ${length}`);
    }
    // A run of separators and non-letters long enough that the first 77 tokens lie far in.
    const sparse = `${'\u00a0 '.repeat(40_000)}${caption(200, 9)}`;
    const whole = tokenizer.tokenIds(sparse);
    assert.deepEqual(tokenizer.encode(sparse).ids, [tokenizer.bosId, ...whole.slice(0, 75), tokenizer.eosId]);
  });

  test('a 1 MB caption tokenizes in well under a second', () => {
    const text = caption(200_000, 5).slice(0, 1 << 20);
    const started = performance.now();
    const { ids } = tokenizer.encode(text);
    const elapsed = performance.now() - started;
    assert.equal(ids.length, 77);
    assert.ok(elapsed < 1000, `took ${elapsed.toFixed(0)} ms`);
  });

  test('the audit report shows a long caption as a bounded prefix, an ellipsis and its full length', async () => {
    const dataDir = join(root, 'audit-long');
    await writeAuditFixture(dataDir);
    const long = `${'a very long prompt about a red car '.repeat(6000)}end`;
    const rows: PromptRow[] = Object.entries(PROMPTS).map(([key, p]) => ({
      prompt_id: promptId(key),
      text: key === 'vehicle' ? long : p.text,
      source: 'test',
      split: null,
      category: p.category,
      challenge: null,
      note: null,
      prompt_index: null,
    }));
    await writeRowsPart(dataDir, 'prompts', 'test', rows);
    const out = join(root, 'audit-long-report');
    await runAudit(dataDir, { out, top: 4 });
    const json = await readFile(join(out, 'report.json'), 'utf8');
    const html = await readFile(join(out, 'report.html'), 'utf8');
    assert.ok(!json.includes(long.slice(0, 5000)), 'report.json holds the whole caption');
    assert.ok(!html.includes(long.slice(0, 5000)), 'report.html holds the whole caption');
    const shown = `… (${long.length.toLocaleString('en-US')} characters)`;
    assert.ok(json.includes(shown), 'report.json names the full length');
    assert.ok(html.includes(shown), 'report.html names the full length');
    assert.ok(json.includes(long.slice(0, 200)), 'report.json shows the start');
  });
});

// ---- item 16: sizes in config files ------------------------------------------------------------------------------

describe('sizes in config files', () => {
  test('metric JSON image_size, image_std and pad_token_id out of range are MetricSpecErrors naming the file and the field', () => {
    const base = { name: 'x', kind: 'hps', text_model: 't.onnx', vision_model: 'v.onnx', tokenizer: 'tokenizer.json' };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ image_size: 100_000 }, /big\.json: "image_size" must be an integer in 8\.\.2048, got 100000/],
      [{ image_size: 2 ** 40 }, /big\.json: "image_size" must be an integer in 8\.\.2048/],
      [{ image_std: [0, 1, 1] }, /big\.json: "image_std" must be three numbers > 0/],
      [{ pad_token_id: -1 }, /big\.json: "pad_token_id" must be an integer ≥ 0/],
      [{ pad_token_id: 1.5 }, /big\.json: "pad_token_id" must be an integer ≥ 0/],
    ];
    for (const [extra, pattern] of cases) assert.throws(() => parseMetricSpec({ ...base, ...extra }, '/m/big.json'), pattern);
    assert.equal(parseMetricSpec({ ...base, image_size: 336 }, '/m/ok.json').image.size, 336);
  });

  test('runLabel with "image_size": 100000 is a clear error naming the file, not an internal one', async () => {
    const dir = await copyOfSample();
    const metric = await fx.writeMetric('huge.json', {
      name: 'huge',
      kind: 'aesthetic',
      vision_model: 'clip-vision.onnx',
      head_model: 'aesthetic-mlp.onnx',
      image_size: 100_000,
    });
    await assert.rejects(runLabel(dir, { ...BASE, metrics: [metric] }), /huge\.json: "image_size" must be an integer in 8\.\.2048/);
  });

  test('encode resolution out of range is an EncodeError naming the field', async () => {
    await assert.rejects(
      runEncode(join(root, 'nowhere'), { vae: 'v.onnx', text: 't.onnx', resolution: 100_000 }),
      /resolution must be a multiple of 8 in 8\.\.4096, got 100000/,
    );
    await assert.rejects(
      runEncode(join(root, 'nowhere'), { vae: 'v.onnx', text: 't.onnx', concurrency: 0 }),
      /concurrency must be a positive integer, got 0/,
    );
  });

  test('training config sizes out of range are ConfigErrors naming the file and the key', async () => {
    const tiny = JSON.parse(await readFile(join(REPO, 'data/train/tiny.json'), 'utf8')) as Record<string, unknown>;
    const model = tiny.model as Record<string, unknown>;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ model: { ...model, latentSize: 100_000 } }, /train\.json: model\.latentSize must be an integer in 1\.\.1024, got 100000/],
      [{ model: { ...model, width: 2 ** 30 } }, /train\.json: model\.width must be an integer in 1\.\.16384/],
      [{ model: { ...model, depth: 100_000 } }, /train\.json: model\.depth must be an integer in 1\.\.1024/],
      [{ model: { ...model, timeFreqDim: 1e9 } }, /train\.json: model\.timeFreqDim must be an integer in 2\.\.16384/],
      [{ batchSize: 1e9 }, /train\.json: batchSize must be an integer in 1\.\.65536/],
      [{ shuffleBuffer: 1e12 }, /train\.json: shuffleBuffer must be an integer in 0\.\.16777216/],
      [{ validationPairs: 1e12 }, /train\.json: validationPairs must be an integer in 0\.\.16777216/],
    ];
    for (const [extra, pattern] of cases) assert.throws(() => parseTrainConfig({ ...tiny, ...extra }, '/c/train.json'), pattern);
    assert.equal(parseTrainConfig(tiny, 'tiny.json').model.latentSize, 8);
  });
});
