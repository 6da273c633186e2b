// Bad files a stage reads (a dataset's Arrow parts and manifest, safetensors, tokenizer.json, checkpoints, JSON
// side files) fail with an error that names the file and what is wrong, before the stage writes anything.
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Int32, Table, Utf8, makeData, RecordBatch, Struct, Field, Schema, tableToIPC, vectorFromArray } from 'apache-arrow';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { listParts, readPart, readRows, writeRowsPart } from '../../src/io/arrow-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { runCalibrate, runConsensus } from '../../src/consensus/run.ts';
import { runLabel, type LabelOptions } from '../../src/label/run.ts';
import { loadMetricSpec } from '../../src/models/metric-spec.ts';
import { loadScoreTable } from '../../src/core/score-table.ts';
import { readPromptList } from '../../src/ingest/prompt-list.ts';
import { readTrainConfig } from '../../src/train/config.ts';
import { ClipTokenizer } from '../../src/models/tokenizer.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { SCORE_SPECS, type MetricInfo } from '../../src/core/schema.ts';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.ts';
import { runExport } from '../../src/export/export.ts';
import { readSafetensors, writeSafetensors, type TensorDict } from '../../src/io/safetensors.ts';
import { clipTokenizerPath, writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { makeTempDir, removeDir, tempDir } from '../support/tmp.ts';
import { tinyConfig } from '../train/helpers.ts';

const PICKAPIC = new URL('../../data/pickapic', import.meta.url).pathname;

let root: string;
/** The bundled Pick-a-Pic sample, ingested once; each test works on its own copy. */
let sample: string;

before(async () => {
  root = await makeTempDir('bdpo-errors-');
  sample = join(root, 'sample');
  await ingestPickapic([PICKAPIC], { out: sample });
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

/** Every file under `dir` with its size, to show that a failed stage wrote nothing. */
async function listing(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  const out: string[] = [];
  for (const entry of entries.sort()) {
    const info = await stat(join(dir, entry));
    if (info.isFile()) out.push(`${entry} ${info.size}`);
  }
  return out;
}

async function rejectsWith(action: Promise<unknown>, ...patterns: RegExp[]): Promise<Error> {
  let caught: unknown = null;
  try {
    await action;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof Error, 'expected an error');
  for (const pattern of patterns) assert.match(caught.message, pattern);
  assert.doesNotMatch(caught.message, /Cannot read properties|undefined|is not a function/);
  return caught;
}

const literal = (text: string): RegExp => new RegExp(text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));

/** One hand-made score file per metric for every image of the sample, so consensus can run. */
async function writeScores(dir: string): Promise<void> {
  const keys = new Set<string>();
  for await (const pair of readRows(dir, 'pairs')) {
    keys.add(`${pair.image_a}:${pair.prompt_id}`);
    keys.add(`${pair.image_b}:${pair.prompt_id}`);
  }
  const list = [...keys].map((key) => key.split(':') as [string, string]);
  for (const [n, metric] of ['aes', 'pick'].entries()) {
    await writeParquetPart(dir, `scores/${metric}/part-x.parquet`, SCORE_SPECS, {
      image_id: list.map(([image]) => image),
      prompt_id: list.map(([, prompt]) => prompt),
      score: list.map((_, i) => ((i * (n + 3)) % 7) / 7),
      metric_version: list.map(() => `${metric}-1`),
    });
    const info: MetricInfo = { name: metric, kind: 'aesthetic', version: `${metric}-1`, score: 'mlp', temperature: 1 };
    await writeFile(join(dir, 'scores', metric, 'metric.json'), JSON.stringify(info));
  }
}

describe('Arrow parts', () => {
  test('readPart: a truncated part is named and called truncated', async (t) => {
    const dir = await tempDir(t);
    const written = await writeRowsPart(dir, 'rejects', 'x', [{ source_ref: 'a', stage: 's', reason: 'bad_image', detail: 'd' }]);
    await truncate(join(dir, written.file), written.bytes - 40);
    await rejectsWith(readPart(dir, written.file), literal(join(dir, written.file)), /truncated/);
  });

  test('readPart: a file that is not Arrow IPC is named and called so', async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'pairs'));
    await writeFile(join(dir, 'pairs/part-x.arrow'), '{"this": "is json"}');
    await rejectsWith(readPart(dir, 'pairs/part-x.arrow'), literal(join(dir, 'pairs/part-x.arrow')), /not an Arrow IPC file/);
  });

  test('readRows: a part whose column type differs from schema.ts names the file and the column', async (t) => {
    const dir = await tempDir(t);
    // prompts with prompt_index as text instead of Int32.
    const fields = [
      new Field('prompt_id', new Utf8()),
      new Field('text', new Utf8()),
      new Field('source', new Utf8()),
      new Field('split', new Utf8(), true),
      new Field('category', new Utf8(), true),
      new Field('challenge', new Utf8(), true),
      new Field('note', new Utf8(), true),
      new Field('prompt_index', new Utf8(), true),
    ];
    const values: Record<string, (string | null)[]> = {
      prompt_id: ['p'],
      text: ['a cat'],
      source: ['parti'],
      split: [null],
      category: [null],
      challenge: [null],
      note: [null],
      prompt_index: ['7'],
    };
    const children = fields.map((f) => vectorFromArray(values[f.name]!, f.type).data[0]!);
    const data = makeData({ type: new Struct(fields), length: 1, nullCount: 0, children });
    await mkdir(join(dir, 'prompts'));
    await writeFile(join(dir, 'prompts/part-bad.arrow'), tableToIPC(new Table([new RecordBatch(new Schema(fields), data)]), 'file'));
    const rows = async (): Promise<void> => {
      for await (const row of readRows(dir, 'prompts')) void row;
    };
    await rejectsWith(rows(), literal(join(dir, 'prompts/part-bad.arrow')), /prompt_index/, /Int32/);
  });

  test('readRows: a part without a column of schema.ts names the file and the column', async (t) => {
    const dir = await tempDir(t);
    const fields = [new Field('prompt_id', new Utf8()), new Field('prompt_index', new Int32(), true)];
    const children = [vectorFromArray(['p'], new Utf8()).data[0]!, vectorFromArray([1], new Int32()).data[0]!];
    const data = makeData({ type: new Struct(fields), length: 1, nullCount: 0, children });
    await mkdir(join(dir, 'prompts'));
    await writeFile(join(dir, 'prompts/part-bad.arrow'), tableToIPC(new Table([new RecordBatch(new Schema(fields), data)]), 'file'));
    await rejectsWith(readPart(dir, 'prompts/part-bad.arrow'), literal(join(dir, 'prompts/part-bad.arrow')), /no column "text"/);
  });
});

describe('label with a bad input', () => {
  let fx: MetricsFixture;
  before(async () => {
    fx = await writeMetricsFixture(join(root, 'models'));
  });
  const labelOptions = (): LabelOptions => ({ metrics: [fx.metrics.aesthetic], device: 'cpu', intraOpNumThreads: 1 });

  test('a truncated images part (not the first) fails naming it before any score is written', async () => {
    const dir = await copyOfSample();
    const parts = await listParts(dir, 'images');
    assert.ok(parts.length >= 2, 'the sample has two images parts');
    const last = parts[parts.length - 1]!;
    const size = (await stat(join(dir, last))).size;
    await truncate(join(dir, last), Math.floor(size / 2));
    const before = await listing(dir);
    await rejectsWith(runLabel(dir, labelOptions()), literal(join(dir, last)), /truncated/);
    assert.deepEqual(await listing(dir), before, 'nothing written');
  });

  test('a bad manifest.json fails naming it before metric.json or any score is written', async () => {
    const dir = await copyOfSample();
    await writeFile(join(dir, 'manifest.json'), '{"format": 1, "tool": "balanced-dpo", "runs": [], "units": {"k": {"parts": 3}}}');
    const before = await listing(dir);
    await rejectsWith(runLabel(dir, labelOptions()), literal(join(dir, 'manifest.json')), /parts/);
    assert.deepEqual(await listing(dir), before, 'nothing written');
  });
});

describe('manifest.json', () => {
  test('readManifest: a JSON syntax error names the file and the position, and quotes nothing', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'manifest.json'), '{\n  "format": 1,\n  "tool": hunter2-secret\n}\n');
    const error = await rejectsWith(readManifest(dir), literal(join(dir, 'manifest.json')), /line 3 column 11/);
    assert.doesNotMatch(error.message, /hunter2/);
  });

  test('readManifest: a wrong shape names the file and the field', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ format: 1, tool: 'balanced-dpo', runs: {}, units: {} }));
    await rejectsWith(readManifest(dir), literal(join(dir, 'manifest.json')), /"runs" is not an array/);
    await writeFile(join(dir, 'manifest.json'), '[]');
    await rejectsWith(readManifest(dir), literal(join(dir, 'manifest.json')), /not an object/);
  });

  test('consensus: a bad manifest fails before the consensus folder is built or swapped in', async () => {
    const dir = await copyOfSample();
    await writeScores(dir);
    await runConsensus(dir, { rule: 'majority' });
    const built = await listing(join(dir, 'consensus'));
    const good = await readFile(join(dir, 'manifest.json'), 'utf8');
    await writeFile(join(dir, 'manifest.json'), good.slice(0, good.length / 2));
    await rejectsWith(runConsensus(dir, { rule: 'majority', ties: 'half' }), literal(join(dir, 'manifest.json')), /not valid JSON/);
    await rejectsWith(runConsensus(dir, { rule: 'majority' }), literal(join(dir, 'manifest.json')), /not valid JSON/);
    assert.deepEqual(await listing(join(dir, 'consensus')), built, 'the consensus folder is as it was, and no other was made');
  });

  test('export: a bad manifest fails before --out is written', async () => {
    const dir = await copyOfSample();
    await writeScores(dir);
    await runConsensus(dir, { rule: 'majority' });
    await writeFile(join(dir, 'manifest.json'), '{"tool": "balanced-dpo"');
    const out = join(root, `export-${copies++}`);
    await rejectsWith(runExport(dir, { rule: 'majority', out }), literal(join(dir, 'manifest.json')));
    await assert.rejects(stat(out), { code: 'ENOENT' });
    const siblings = await readdir(root);
    assert.ok(!siblings.some((name) => name.startsWith(`.export-`)), 'no staging folder left');
  });

  test('ingest: a bad manifest fails naming it before any part is written', async () => {
    const dir = join(root, `ingest-${copies++}`);
    await mkdir(dir);
    await writeFile(join(dir, 'manifest.json'), '{"format": 1, "tool": "balanced-dpo", "runs": [], "units": []}');
    await rejectsWith(ingestPickapic([PICKAPIC], { out: dir }), literal(join(dir, 'manifest.json')), /"units" is not an object/);
    assert.deepEqual(await readdir(dir), ['manifest.json']);
  });

  test('consensus: a bad calibration.json is an error naming it, not silently ignored', async () => {
    const dir = await copyOfSample();
    await writeScores(dir);
    await runCalibrate(dir);
    await writeFile(join(dir, 'calibration.json'), '{"metrics": {"aes": {"tau": 0.5,}}}');
    await rejectsWith(runConsensus(dir, { rule: 'majority' }), literal(join(dir, 'calibration.json')), /line 1 column/);
    await assert.rejects(stat(join(dir, 'consensus')), { code: 'ENOENT' });
  });
});

describe('safetensors headers', () => {
  const tensors: TensorDict = new Map([
    ['a.weight', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
    ['b.bias', { shape: [2], data: Float32Array.from([7, 8]) }],
  ]);

  /** A valid file whose JSON header is replaced by `header` (same byte layout otherwise). */
  type Header = Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  async function withHeader(path: string, edit: (header: Header) => void): Promise<void> {
    await writeSafetensors(path, tensors);
    const bytes = await readFile(path);
    const length = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Header;
    edit(header);
    const json = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    await writeFile(path, Buffer.concat([prefix, json, bytes.subarray(8 + length)]));
  }

  test('a header length beyond the file names the file', async (t) => {
    const path = join(await tempDir(t), 'model.safetensors');
    await writeSafetensors(path, tensors);
    const bytes = await readFile(path);
    bytes.writeBigUInt64LE(1n << 40n, 0);
    await writeFile(path, bytes);
    await rejectsWith(readSafetensors(path), literal(path), /header length/);
  });

  test('a header that is not JSON names the file and the position, without quoting it', async (t) => {
    const path = join(await tempDir(t), 'model.safetensors');
    await writeSafetensors(path, tensors);
    const bytes = await readFile(path);
    bytes.write('{"zz-secret', 8, 'latin1');
    await writeFile(path, bytes);
    const error = await rejectsWith(readSafetensors(path), literal(path), /not JSON/, /column/);
    assert.doesNotMatch(error.message, /zz-secret/);
  });

  test('offsets outside the data name the file and the tensor', async (t) => {
    const path = join(await tempDir(t), 'model.safetensors');
    await withHeader(path, (header) => {
      header['b.bias']!.data_offsets = [24, 4000];
    });
    await rejectsWith(readSafetensors(path), literal(path), /b\.bias/, /outside the data/);
  });

  test('a dtype other than F32 and a shape that does not fit its bytes name the file and the tensor', async (t) => {
    const path = join(await tempDir(t), 'model.safetensors');
    await withHeader(path, (header) => {
      header['a.weight']!.dtype = 'F16';
    });
    await rejectsWith(readSafetensors(path), literal(path), /a\.weight/, /F16/);
    await withHeader(path, (header) => {
      header['a.weight']!.shape = [3, 3];
    });
    await rejectsWith(readSafetensors(path), literal(path), /a\.weight/, /shape/);
  });
});

describe('tokenizer.json', () => {
  test('a syntax error names the file and the position and never echoes the content', async (t) => {
    const dir = await tempDir(t);
    const text = (await readFile(clipTokenizerPath(), 'utf8')).replace('"model"', 'PRIVATE-CONTENT "model"');
    await writeFile(join(dir, 'tokenizer.json'), text);
    const path = join(dir, 'tokenizer.json');
    const error = await rejectsWith(ClipTokenizer.fromDirectory(dir), literal(path), /not valid JSON/, /line \d+ column \d+/);
    assert.doesNotMatch(error.message, /PRIVATE-CONTENT|vocab|merges/);
    assert.ok(error.message.length < 300, 'a short message');
  });

  test('valid JSON that is not a tokenizer names the file', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: 'PRIVATE-CONTENT' } }));
    const error = await rejectsWith(ClipTokenizer.fromFile(join(dir, 'tokenizer.json')), literal(join(dir, 'tokenizer.json')));
    assert.doesNotMatch(error.message, /PRIVATE-CONTENT/);
  });

  test('a bad tokenizer_config.json and a bad vocab.json name their file', async (t) => {
    const dir = await tempDir(t);
    await cp(clipTokenizerPath(), join(dir, 'tokenizer.json'));
    await writeFile(join(dir, 'tokenizer_config.json'), '{"pad_token": "!" "x"}');
    await rejectsWith(ClipTokenizer.fromDirectory(dir), literal(join(dir, 'tokenizer_config.json')), /line 1 column 19/);
    const other = await tempDir(t);
    await writeFile(join(other, 'vocab.json'), '{"a": 1,');
    await writeFile(join(other, 'merges.txt'), '#version: 0.2\n');
    await rejectsWith(ClipTokenizer.fromDirectory(other), literal(join(other, 'vocab.json')), /unexpected end/);
  });
});

describe('checkpoints', () => {
  const state = () => ({
    step: 3,
    rng: [1, 2, 3, 4] as const,
    model: new Map([['w', { shape: [4], data: Float32Array.from([0.5, -1, 2, 0.25]) }]]),
    reference: null,
    optimizer: {
      step: 3,
      moments: new Map([
        ['m.w', { shape: [4], data: new Float32Array(4) }],
        ['v.w', { shape: [4], data: new Float32Array(4) }],
      ]),
    },
  });

  test('a flipped bit in a weight of model.safetensors is an error naming the file on load', async (t) => {
    const dir = await tempDir(t);
    await saveCheckpoint(dir, { config: tinyConfig, options: { seed: 1, learningRate: 1e-3 }, state: state() });
    assert.equal((await loadCheckpoint(dir)).state.step, 3, 'an intact checkpoint loads');
    const path = join(dir, 'model.safetensors');
    const bytes = await readFile(path);
    // The exponent of the last float: still a valid file, a weight 2^128 times larger.
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0x40, bytes.length - 1);
    await writeFile(path, bytes);
    await rejectsWith(loadCheckpoint(dir), literal(path), /sha256/);
  });

  test('files the run wrote into the checkpoint before it (run.json) are verified too', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'run.json'), '{"format": "x", "step": 3}\n');
    await saveCheckpoint(dir, { config: tinyConfig, options: { seed: 1, learningRate: 1e-3 }, state: state() });
    await writeFile(join(dir, 'run.json'), '{"format": "x", "step": 9}\n');
    await rejectsWith(loadCheckpoint(dir), literal(join(dir, 'run.json')), /sha256/);
  });
});

describe('other JSON files a stage reads', () => {
  const BROKEN = '{\n  "name": "x",\n  "secret": SECRET-CONTENT\n}\n';
  const expectNamed = async (action: Promise<unknown>, path: string): Promise<void> => {
    const error = await rejectsWith(action, literal(path), /line 3 column 13/);
    assert.doesNotMatch(error.message, /SECRET-CONTENT/);
  };

  test('a metric JSON, a training config and a prompt list with a syntax error name the file and the position only', async (t) => {
    const dir = await tempDir(t);
    for (const name of ['metric.json', 'train.json', 'prompts.json']) await writeFile(join(dir, name), BROKEN);
    await expectNamed(loadMetricSpec(join(dir, 'metric.json')), join(dir, 'metric.json'));
    await expectNamed(readTrainConfig(join(dir, 'train.json')), join(dir, 'train.json'));
    await expectNamed(readPromptList(join(dir, 'prompts.json')), join(dir, 'prompts.json'));
  });

  test('a scores/<metric>/metric.json that is not JSON is called so (not "missing") and named', async () => {
    const dir = await copyOfSample();
    await writeScores(dir);
    await writeFile(join(dir, 'scores/aes/metric.json'), BROKEN);
    await expectNamed(loadScoreTable(dir), join(dir, 'scores/aes/metric.json'));
  });
});

test('consensus: a damaged pairs part fails naming it and leaves no staging folder behind', async () => {
  const dir = await copyOfSample();
  await writeScores(dir);
  const parts = await listParts(dir, 'pairs');
  const last = parts[parts.length - 1]!;
  await truncate(join(dir, last), 100);
  await rejectsWith(runConsensus(dir, { rule: 'majority' }), literal(join(dir, last)), /truncated/);
  assert.deepEqual(await readdir(join(dir, 'consensus')).catch(() => []), []);
});
