// runTrain end to end on a hand-made dataset directory: consensus/pref written with the consensus stage's column
// specs, latents/ and text/ caches written as `bdpo encode` lays them out (float16 Parquet + encoder.json). The
// preference is learning.test.ts's prompt-conditional brightness task: each prompt has a base latent and random text
// states; an image is base + a uniform brightness offset + noise; for even prompts the brighter image wins, for odd
// prompts the darker. A drift that ignores the prompt scores ½, so held-out accuracy well above ½ needs the text.
import assert from 'node:assert/strict';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { formatTrainSummary, trainCommand } from '../../src/cli/train.ts';
import { UsageError } from '../../src/cli/args.ts';
import { sha256Hex } from '../../src/core/ids.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { consensusSpecs } from '../../src/core/schema.ts';
import { selectBackend } from '../../src/train/backend.ts';
import { ConfigError, parseTrainConfig, readTrainConfig, type TrainConfig } from '../../src/train/config.ts';
import { createDit } from '../../src/train/dit.ts';
import { LATENT_SPECS, TEXT_SPECS } from '../../src/core/schema.ts';
import { encodeFloat16 } from '../../src/io/float16-bytes.ts';
import { createRng, type Rng } from '../../src/train/rng.ts';
import { runTrain, type TrainSummary } from '../../src/train/run.ts';
import { readSafetensors } from '../../src/io/safetensors.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';
import { normalArray } from './helpers.ts';

await selectBackend();

const PROMPTS = 8;
const TRAIN_PAIRS = 192;
const HELD_OUT_PAIRS = 128;
const TEXT_LENGTH = 4;
const TEXT_WIDTH = 16;
const LATENT = [4, 8, 8] as const;
const SAMPLE = LATENT[0] * LATENT[1] * LATENT[2];
const RULE = 'pref';

let root: string;
let data: string;
let tiny: TrainConfig;

const imageIdOf = (i: number): string => sha256Hex(`image ${i}`);
const promptIdOf = (j: number): string => sha256Hex(`prompt ${j}`);

interface Pair {
  prompt: number;
  a: number;
  b: number;
  label: number | null;
  kept: boolean;
  split: string;
}

async function writeDataset(dir: string): Promise<void> {
  const rng = createRng(11);
  const bases = Array.from({ length: PROMPTS }, () => normalArray(rng, SAMPLE, 0.5));
  const texts = Array.from({ length: PROMPTS }, () => normalArray(rng, TEXT_LENGTH * TEXT_WIDTH));
  const latents: Uint8Array[] = [];
  const image = (r: Rng, prompt: number, brightness: number): number => {
    const jitter = normalArray(r, SAMPLE, 0.1);
    const values = new Float32Array(SAMPLE);
    for (let i = 0; i < SAMPLE; i++) values[i] = bases[prompt]![i]! + brightness + jitter[i]!;
    latents.push(encodeFloat16(values));
    return latents.length - 1;
  };
  const pairs: Pair[] = [];
  const addPairs = (count: number, split: string): void => {
    for (let k = 0; k < count; k++) {
      const prompt = k % PROMPTS;
      const brightA = 2 * rng.uniform() - 1;
      const brightB = 2 * rng.uniform() - 1;
      const a = image(rng, prompt, brightA);
      const b = image(rng, prompt, brightB);
      const aWins = brightA > brightB === (prompt % 2 === 0);
      pairs.push({ prompt, a, b, label: aWins ? 1 : 0, kept: true, split });
    }
  };
  addPairs(TRAIN_PAIRS, 'train');
  addPairs(HELD_OUT_PAIRS, 'validation_unique');
  // Ties the rule dropped: present in the file, never trained on.
  for (let k = 0; k < 6; k++) pairs.push({ prompt: k % PROMPTS, a: k, b: k + 1, label: null, kept: false, split: 'train' });

  await writeParquetPart(
    dir,
    `consensus/${RULE}/part-00000.parquet`,
    consensusSpecs(['m1']),
    {
      pair_id: pairs.map((_, i) => sha256Hex(`pair ${i}`)),
      prompt_id: pairs.map((p) => promptIdOf(p.prompt)),
      image_a: pairs.map((p) => imageIdOf(p.a)),
      image_b: pairs.map((p) => imageIdOf(p.b)),
      human_pref: pairs.map(() => null),
      split: pairs.map((p) => p.split),
      p_m1: pairs.map((p) => p.label),
      vote_m1: Int32Array.from(pairs, (p) => (p.label === null ? 0 : p.label === 1 ? 1 : -1)),
      votes_a: Int32Array.from(pairs, (p) => (p.label === 1 ? 1 : 0)),
      votes_b: Int32Array.from(pairs, (p) => (p.label === 0 ? 1 : 0)),
      label: pairs.map((p) => p.label),
      soft: pairs.map((p) => p.label),
      margin: pairs.map(() => 0),
      disagreement: pairs.map(() => 0),
      kept: pairs.map((p) => p.kept),
      tie: pairs.map((p) => p.label === null),
      reason: pairs.map((p) => (p.kept ? 'decided' : 'tie-dropped')),
    },
    { rowGroupSize: 64 },
  );
  await writeParquetPart(
    dir,
    'latents/part-0.parquet',
    LATENT_SPECS,
    {
      image_id: latents.map((_, i) => imageIdOf(i)),
      shape: latents.map(() => LATENT.join('x')),
      latent: latents,
    },
    { rowGroupSize: 128 },
  );
  await writeParquetPart(dir, 'text/part-0.parquet', TEXT_SPECS, {
    prompt_id: ['', ...texts.map((_, j) => promptIdOf(j))],
    shape: ['', ...texts].map(() => `${TEXT_LENGTH}x${TEXT_WIDTH}`),
    hidden: [encodeFloat16(new Float32Array(TEXT_LENGTH * TEXT_WIDTH)), ...texts.map((t) => encodeFloat16(t))],
  });
  await writeFile(join(dir, 'latents/encoder.json'), JSON.stringify({ resolution: 64, scalingFactor: 0.18215, output: 'latent_mean' }));
  await writeFile(join(dir, 'text/encoder.json'), JSON.stringify({ maxLength: TEXT_LENGTH, output: 'last_hidden_state' }));
}

before(async () => {
  root = await makeTempDir('bdpo-run-');
  data = join(root, 'data');
  await writeDataset(data);
  tiny = await readTrainConfig(new URL('../../data/train/tiny.json', import.meta.url).pathname);
});

after(async () => {
  if (root) await removeDir(root);
});

function configWith(overrides: Record<string, unknown>): TrainConfig {
  return parseTrainConfig({ ...tiny, ...overrides }, 'test config');
}

type Line = Record<string, unknown> & { phase: string; step: number };

async function metrics(out: string): Promise<Line[]> {
  const text = await readFile(join(out, 'metrics.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Line);
}

async function weights(checkpoint: string, file = 'model.safetensors'): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(join(checkpoint, file));
  return new Map([...tensors].map(([name, t]) => [name, Float32Array.from(t.data)]));
}

function assertSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), what);
  for (const [name, values] of a) assert.deepEqual(b.get(name), values, `${what}: ${name} differs`);
}

const quiet = { log: () => {} };

/** Runs the CLI with stdout captured (stderr's status lines dropped): the exit code and what it printed. */
async function cli(argv: string[]): Promise<{ code: number; stdout: string }> {
  const printed: string[] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => void printed.push(args.join(' '));
  console.error = () => {};
  try {
    return { code: await trainCommand(argv), stdout: printed.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}
/** The main run, shared with the resume test as the uninterrupted reference. */
let straight: TrainSummary;
const straightConfig = (): TrainConfig => configWith({ steps: 40, validateEvery: 20, checkpointEvery: 20, logEvery: 5 });

test('a run learns the held-out preference, logs every window, checkpoints, and frees every tensor', async (t) => {
  const tensorsBefore = tf.memory().numTensors;
  const out = join(root, 'straight');
  straight = await runTrain(data, { rule: RULE, out, config: straightConfig(), ...quiet });
  assert.equal(tf.memory().numTensors, tensorsBefore, 'every tensor and model disposed');

  assert.equal(straight.steps, 40);
  assert.equal(straight.stepsThisRun, 40);
  assert.equal(straight.pretrainSteps, 100);
  assert.equal(straight.stopped, null);
  assert.equal(straight.backend, tf.getBackend());
  const fresh = createDit(tiny.model);
  assert.equal(
    straight.parameters,
    [...fresh.parameters.values()].reduce((n, v) => n + v.size, 0),
  );
  fresh.dispose();

  const lines = await metrics(out);
  const pretrain = lines.filter((l) => l.phase === 'pretrain');
  const train = lines.filter((l) => l.phase === 'train');
  const validation = lines.filter((l) => l.phase === 'validation');
  assert.deepEqual(
    pretrain.map((l) => l.step),
    Array.from({ length: 20 }, (_, i) => 5 * (i + 1)),
  );
  assert.deepEqual(
    train.map((l) => l.step),
    [5, 10, 15, 20, 25, 30, 35, 40],
  );
  assert.deepEqual(
    validation.map((l) => l.step),
    [20, 40],
  );
  for (const line of train) {
    for (const key of [
      'loss',
      'implicitAccuracy',
      'rewardMargin',
      'modelMse',
      'referenceMse',
      'gradNorm',
      'learningRate',
      'samplesPerSecond',
    ]) {
      assert.ok(typeof line[key] === 'number' && Number.isFinite(line[key]), `train line ${line.step}: ${key} = ${String(line[key])}`);
    }
    assert.equal(line.referenceUpdated, false);
    assert.equal(line.pairs, 5 * 8);
    assert.equal(line.learningRate, tiny.learningRate);
  }
  // Pre-training makes a denoiser: an all-zero prediction (the DiT at initialisation) scores 1.
  assert.ok(
    (pretrain[0]!.loss as number) > 0.6 && (pretrain.at(-1)!.loss as number) < 0.3,
    `pre-training MSE ${pretrain[0]!.loss} → ${pretrain.at(-1)!.loss}`,
  );

  const final = validation.at(-1)!;
  t.diagnostic(
    `held-out implicit accuracy ${validation.map((l) => (l.implicitAccuracy as number).toFixed(3)).join(' → ')}; ` +
      `model MSE ${(final.modelMse as number).toFixed(4)} vs start ${(final.startMse as number).toFixed(4)}`,
  );
  assert.equal(final.heldOut, true);
  assert.equal(final.pairs, HELD_OUT_PAIRS);
  assert.ok((final.implicitAccuracy as number) >= 0.75, `held-out implicit accuracy ${final.implicitAccuracy}`);
  assert.ok((final.rewardMargin as number) > 0);
  assert.ok((final.modelMse as number) < 1.2 * (final.startMse as number), 'the model is still a good denoiser');
  assert.equal(straight.validation?.implicitAccuracy, final.implicitAccuracy);

  assert.deepEqual((await readdir(out)).sort(), [
    'checkpoint-0',
    'checkpoint-20',
    'checkpoint-40',
    'config.json',
    'latest',
    'metrics.jsonl',
  ]);
  assert.equal((await readFile(join(out, 'latest'), 'utf8')).trim(), 'checkpoint-40');
  assert.deepEqual((await readdir(join(out, 'checkpoint-40'))).sort(), [
    'model.safetensors',
    'optimizer.safetensors',
    'reference.safetensors',
    'run.json',
    'trainer.json',
  ]);
  assert.equal(straight.weights, join(out, 'checkpoint-40', 'model.safetensors'));
  // The reference (mode none) is the model as DPO started: checkpoint-0's weights.
  assertSameWeights(
    await weights(join(out, 'checkpoint-0')),
    await weights(join(out, 'checkpoint-40'), 'reference.safetensors'),
    'reference',
  );
});

test('stopped at step k with --steps k and resumed through the CLI: the same weights and metrics as the uninterrupted run', async () => {
  assert.ok(straight, 'needs the first test');
  const out = join(root, 'interrupted');
  const head = await runTrain(data, { rule: RULE, out, config: straightConfig(), steps: 15, ...quiet });
  assert.equal(head.steps, 15);
  assert.equal((await readFile(join(out, 'latest'), 'utf8')).trim(), 'checkpoint-15');

  const configPath = join(root, 'straight.json');
  await writeFile(configPath, JSON.stringify(straightConfig()));
  const { code, stdout } = await cli([data, '--rule', RULE, '--config', configPath, '--out', out, '--resume', '--steps', '40', '--json']);
  assert.equal(code, 0);
  const summary = JSON.parse(stdout) as TrainSummary;
  assert.equal(summary.resumedFrom, 15);
  assert.equal(summary.stepsThisRun, 25);
  assert.equal(summary.pretrainSteps, 0);

  for (const file of ['model.safetensors', 'reference.safetensors', 'optimizer.safetensors']) {
    assertSameWeights(await weights(join(root, 'straight', 'checkpoint-40'), file), await weights(join(out, 'checkpoint-40'), file), file);
  }
  const strip = (lines: Line[]): Line[] => lines.filter((l) => l.phase === 'train').map(({ samplesPerSecond: _, ...rest }) => rest as Line);
  assert.deepEqual(strip(await metrics(out)), strip(await metrics(join(root, 'straight'))));
  assert.equal(summary.validation?.implicitAccuracy, straight.validation?.implicitAccuracy);
});

test('LoRA with a soft reference resumes bit for bit too, the anchor included', async () => {
  const config = configWith({
    model: { ...tiny.model, lora: { rank: 2, alpha: 2 } },
    reference: { mode: 'soft', alpha: 0.5, every: 2 },
    pretrainMseSteps: 10,
    validationPairs: 16,
    validateEvery: 0,
    checkpointEvery: 0,
    logEvery: 1,
  });
  const run = (out: string, steps: number, resume = false): Promise<TrainSummary> =>
    runTrain(data, { rule: RULE, out, config, steps, resume, ...quiet });
  const whole = await run(join(root, 'lora-whole'), 6);
  await run(join(root, 'lora-split'), 3);
  const resumed = await run(join(root, 'lora-split'), 6, true);
  assert.deepEqual((await readdir(join(root, 'lora-whole', 'checkpoint-6'))).sort(), [
    'anchor.safetensors',
    'model.safetensors',
    'optimizer.safetensors',
    'run.json',
    'trainer.json',
  ]);
  assertSameWeights(
    await weights(join(root, 'lora-whole', 'checkpoint-6')),
    await weights(join(root, 'lora-split', 'checkpoint-6')),
    'model',
  );
  // The anchor is the model as DPO started, whatever the soft updates did to the base since.
  assertSameWeights(
    await weights(join(root, 'lora-whole', 'checkpoint-0')),
    await weights(join(root, 'lora-split', 'checkpoint-6'), 'anchor.safetensors'),
    'anchor',
  );
  assert.equal(resumed.validation?.startMse, whole.validation?.startMse);
  assert.equal(resumed.validation?.modelMse, whole.validation?.modelMse);
  // The first DPO step starts at the reference: z = 0 for every pair, loss ln 2, no pair counted correct.
  const first = (await metrics(join(root, 'lora-whole'))).find((l) => l.phase === 'train')!;
  assert.ok(Math.abs((first.loss as number) - Math.LN2) < 1e-6, String(first.loss));
  assert.equal(first.implicitAccuracy, 0);
  const updates = (await metrics(join(root, 'lora-whole'))).filter((l) => l.phase === 'train').map((l) => l.referenceUpdated);
  assert.deepEqual(updates, [false, true, false, true, false, true]);
});

test(
  'the MSE guard stops a run whose denoiser drifts under frequent hard reference copies, ' + 'with a checkpoint and exit code 1',
  async (t) => {
    const configPath = join(root, 'guard.json');
    await writeFile(
      configPath,
      JSON.stringify(
        configWith({
          learningRate: 0.001,
          reference: { mode: 'hard', every: 2 },
          pretrainMseSteps: 60,
          steps: 30,
          validateEvery: 2,
          validationPairs: 32,
          logEvery: 2,
          checkpointEvery: 0,
        }),
      ),
    );
    const out = join(root, 'guard');
    const { code, stdout } = await cli([data, '--rule', RULE, '--config', configPath, '--out', out, '--json']);
    assert.equal(code, 1);
    const summary = JSON.parse(stdout) as TrainSummary;
    assert.match(
      formatTrainSummary(summary),
      /\n {2}STOPPED: MSE guard at step \d+: model MSE [\d.]+ is [\d.]+× the starting model's [\d.]+ \(mseGuard factor 1\.5\)/,
    );
    assert.ok(summary.stopped !== null && /MSE guard at step \d+/.test(summary.stopped), String(summary.stopped));
    assert.ok(summary.steps < 30);
    const lines = await metrics(out);
    const tripped = lines.filter((l) => l.phase === 'validation');
    const live = lines.filter((l) => l.phase === 'train').map((l) => (l.modelMse as number) / (l.referenceMse as number));
    t.diagnostic(
      `stopped at step ${summary.steps}; MSE / start ${tripped.map((l) => (l.mseRatio as number).toFixed(2)).join(' ')}; ` +
        `MSE / live hard reference ${live.map((r) => r.toFixed(2)).join(' ')}`,
    );
    // Why the guard compares with the starting model: the hard reference copies the drift and hides it.
    assert.ok(summary.steps > 4 && live.every((r) => r < 1.2), 'a gradual drift, invisible against the live reference');
    assert.equal(tripped.at(-1)!.guardTripped, true);
    assert.ok((tripped.at(-1)!.mseRatio as number) > 1.5);
    assert.ok(tripped.slice(0, -1).every((l) => l.guardTripped === false));
    assert.equal((await readFile(join(out, 'latest'), 'utf8')).trim(), `checkpoint-${summary.steps}`);
    assert.ok((await readdir(join(out, `checkpoint-${summary.steps}`))).includes('anchor.safetensors'));
  },
);

test('without a held-out split nothing is held out, the summary says so, and the guard watches training pairs', async () => {
  const lines: string[] = [];
  const config = configWith({ validationSplits: ['test_unique'], pretrainMseSteps: 0, validationPairs: 16, validateEvery: 1, logEvery: 1 });
  const out = join(root, 'no-held-out');
  const summary = await runTrain(data, { rule: RULE, out, config, steps: 2, log: (line) => lines.push(line) });
  assert.equal(summary.validation, null);
  assert.match(summary.validationNote ?? '', /consensus\/pref has no kept pair in test_unique: nothing held out, no validation accuracy/);
  assert.ok(
    lines.some((l) => /the MSE guard watches 16 training pairs/.test(l)),
    lines.join('\n'),
  );
  const validation = (await metrics(out)).filter((l) => l.phase === 'validation');
  assert.deepEqual(
    validation.map((l) => [l.step, l.heldOut, l.pairs]),
    [
      [1, false, 16],
      [2, false, 16],
    ],
  );
  assert.deepEqual(validation[0]!.splits, ['train']);
});

test('bad configs and bad runs fail with one clear line', async () => {
  const bad = (overrides: Record<string, unknown>, pattern: RegExp): void => {
    assert.throws(
      () => parseTrainConfig({ ...tiny, ...overrides }, 'train.json'),
      (e: Error) => e instanceof ConfigError && pattern.test(e.message) && !e.message.includes('\n'),
    );
  };
  bad({ lerningRate: 1e-4 }, /^train\.json: unknown key "lerningRate" \(known: .*learningRate/);
  bad({ learningRate: -1 }, /^train\.json: learningRate must be a positive number, got -1$/);
  bad({ steps: 2.5 }, /steps must be a non-negative integer, got 2\.5/);
  bad({ model: undefined }, /model is required/);
  bad({ model: { ...tiny.model, heads: 3 } }, /model is invalid: width 32 not divisible by heads 3/);
  bad({ model: { ...tiny.model, hidden: 3 } }, /unknown key "model\.hidden"/);
  bad({ microBatch: 16 }, /microBatch \(16\) must not exceed batchSize \(8\)/);
  bad({ reference: { mode: 'hard' } }, /reference is invalid: reference mode hard needs `every`/);
  bad({ reference: { mode: 'sometimes' } }, /reference\.mode must be "none", "hard" or "soft"/);
  bad({ validationSplits: ['train'] }, /validationSplits share train with trainSplits/);
  bad({ trainSplits: null }, /trainSplits is null \(every split\)/);
  bad({ mseGuard: { factor: 0.9 } }, /mseGuard\.factor must be a number > 1/);
  bad({ captionDropout: 2 }, /captionDropout must be a probability in \[0, 1\], got 2/);

  const path = join(root, 'broken.json');
  await writeFile(path, '{ "steps": 3, }');
  await assert.rejects(readTrainConfig(path), /broken\.json: not valid JSON/);

  const tensorsBefore = tf.memory().numTensors;
  await assert.rejects(
    runTrain(data, { rule: RULE, out: join(root, 'wide'), config: configWith({ model: { ...tiny.model, textWidth: 32 } }), ...quiet }),
    /text\/ holds 4x16 text states but the config's model\.textWidth is 32: set it to 16/,
  );
  await assert.rejects(
    runTrain(data, { rule: RULE, out: join(root, 'big'), config: configWith({ model: { ...tiny.model, latentSize: 16 } }), ...quiet }),
    /latents\/ hold 4x8x8 latents \(encoded at 64 px\) but the config's model takes 4x16x16/,
  );
  assert.equal(tf.memory().numTensors, tensorsBefore);
  assert.ok(!(await readdir(root)).includes('wide'), 'a run that cannot start leaves no RUN/ folder');
  await assert.rejects(
    runTrain(data, { rule: 'nope', out: join(root, 'nope'), config: tiny, ...quiet }),
    /no consensus\/nope\/part-\*\.parquet \(run bdpo consensus; rules here: pref\)/,
  );

  // An existing run is never overwritten, and a resumed one may not change what decides the weights.
  const out = join(root, 'existing');
  await cp(join(root, 'straight'), out, { recursive: true });
  await assert.rejects(
    runTrain(data, { rule: RULE, out, config: straightConfig(), ...quiet }),
    /already holds a run \(checkpoint-40\): pass --resume/,
  );
  await assert.rejects(
    runTrain(data, { rule: RULE, out, config: configWith({ learningRate: 1e-3 }), resume: true, ...quiet }),
    /differs from the resumed run's in learningRate/,
  );
  // Nothing left to do: the run says where it stands.
  const done = await runTrain(data, { rule: RULE, out, resume: true, ...quiet });
  assert.equal(done.stepsThisRun, 0);
  assert.equal(done.steps, 40);
  assert.equal(done.validation?.implicitAccuracy, straight.validation?.implicitAccuracy);

  await assert.rejects(
    trainCommand([data, '--rule', RULE, '--out', out]),
    (e: Error) => e instanceof UsageError && /--config is required/.test(e.message),
  );
  await assert.rejects(
    trainCommand([data, '--rule', RULE, '--out', out, '--config', path, '--backend', 'gpu']),
    /--backend must be one of auto, wasm/,
  );
});
