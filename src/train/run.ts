// `bdpo train`: a resumable Diffusion-DPO run over the cached latents and text states of one consensus rule.
//
// RUN/ holds config.json (the resolved config), metrics.jsonl (one JSON object per line: `phase` "pretrain", "train"
// or "validation"), checkpoint-<step>/ folders and `latest`, a one-line pointer to the newest complete checkpoint.
// train.lock, held while a run goes, makes a second run of the same RUN/ fail at once instead of interleaving with it.
// A checkpoint is built in a hidden folder and renamed into place before `latest` is replaced (both atomic), so
// `latest` always names a whole checkpoint: the trainer state (model, reference, AdamW moments, generator words; see
// checkpoint.ts), run.json (the loader's position and the config) and, with a moving reference, anchor.safetensors.
//
// The anchor is the model as DPO starts (after MSE pre-training). Held-out implicit accuracy and the MSE guard are
// measured against it rather than against the live reference: a hard reference is a copy of the model a few steps
// ago, so accuracy against it resets at every copy, and a denoiser that collapses drags its copy along (the trap the
// design measured: copies every 10–25 steps took the MSE from 0.17 to 0.86–2.8). Validation draws its noise from a
// generator of its own, reset at every evaluation, so every evaluation sees the same pairs with the same noise and
// the training stream is untouched: a resumed run reaches the uninterrupted run's weights bit for bit.
//
// Pre-training (pretrainMseSteps > 0, for a model that does not denoise yet) runs plain ε-MSE steps on both images
// of the training pairs, with a loader and generator of its own, then writes checkpoint-0: the DPO starting point.
// A run interrupted during pre-training starts it again.
import { appendFile, mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { JsonFileError, readJsonFile } from '../io/json-file.ts';
import { encoderInfoLocation, readMetaJson } from '../core/dataset-meta.ts';
import { acquireLock, describeHolder, LockBusyError, type Lock } from '../io/lock.ts';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { removeStaleStaging, replaceFolder, writeFileAtomic, type ReplaceFolderOptions } from '../io/atomic.ts';
import { selectBackend, type BackendChoice } from './backend.ts';
import { isCheckpoint, loadCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoint.ts';
import { ConfigError, parseTrainConfig, RESUMABLE_KEYS, trainerOptions, weightKeysThatDiffer, type TrainConfig } from './config.ts';
import type { Denoiser } from './denoiser.ts';
import { createDit } from './dit.ts';
import type { DpoMetrics } from './dpo.ts';
import { formatShape } from '../io/float16-bytes.ts';
import { PairLoader, type LoaderBatch } from './loader.ts';
import { MissingDataError } from '../io/tensor-store.ts';
import type { LoaderState } from './pair-order.ts';
import type { ReferenceModel, ReferenceOptions } from './reference.ts';
import { createRng } from './rng.ts';
import { readSafetensors, writeSafetensors, type TensorDict } from '../io/safetensors.ts';
import { evaluateDpo, Trainer, type PairBatch } from './trainer-step.ts';
import { assignVariables, readVariables } from './weights.ts';

export class TrainError extends Error {
  override name = 'TrainError';
}

export interface TrainProgress {
  phase: 'pretrain' | 'train';
  step: number;
  total: number;
  /** Mean over the steps since the last metrics line. */
  loss: number;
  /** NaN while pre-training. */
  implicitAccuracy: number;
}

export interface TrainOptions {
  /** Folder under consensus/. */
  rule: string;
  /** Where checkpoints and metrics go. */
  out: string;
  /** Required unless resuming a run (then it defaults to the run's own; only RESUMABLE_KEYS may differ). */
  config?: TrainConfig;
  /** Continue from RUN/latest (from the beginning when there is none yet). */
  resume?: boolean;
  /** DPO steps to reach, overriding config.steps. */
  steps?: number;
  backend?: BackendChoice;
  /** Status lines (backend, data, validation, guard); default: none. */
  log?: (line: string) => void;
  onProgress?: (progress: TrainProgress) => void;
}

export interface EvaluationResult {
  step: number;
  /** The splits the pairs came from. */
  splits: string[];
  /** False when the pairs are training pairs (no held-out split): MSE guard only, accuracy not a validation. */
  heldOut: boolean;
  pairs: number;
  decisivePairs: number;
  loss: number;
  implicitAccuracy: number;
  rewardMargin: number;
  modelMse: number;
  /** The DPO starting point's MSE on the same pairs and noise. */
  startMse: number;
  guardTripped: boolean;
}

export interface TrainSummary {
  dir: string;
  rule: string;
  out: string;
  backend: string;
  backendReason: string;
  /** The DPO step this run continued from; null for a fresh run. */
  resumedFrom: number | null;
  /** MSE pre-training steps done by this run, and the mean loss of the last of them. */
  pretrainSteps: number;
  pretrainLoss: number | null;
  /** DPO steps done in all, and by this run. */
  steps: number;
  stepsThisRun: number;
  targetSteps: number;
  /** Means over the last logged window of this run. */
  final: (Omit<DpoMetrics, 'pairs' | 'decisivePairs'> & { gradNorm: number }) | null;
  /** The last held-out evaluation; null when nothing is held out (see validationNote). */
  validation: EvaluationResult | null;
  validationNote: string | null;
  /** Why the run ended before targetSteps (MSE guard), or null. */
  stopped: string | null;
  /** Wall time of the whole call, and DPO steps per second of the training loop (checkpoints and validation included). */
  seconds: number;
  stepsPerSecond: number;
  parameters: number;
  trainableParameters: number;
  /** The newest checkpoint folder and its model weights. */
  checkpoint: string | null;
  weights: string | null;
  metrics: string;
}

const RUN_FORMAT = 'balanced-dpo/train-run@1';
const LATEST = 'latest';
const METRICS = 'metrics.jsonl';
const RUN_LOCK = 'train.lock';

interface RunState {
  format: typeof RUN_FORMAT;
  step: number;
  rule: string;
  config: TrainConfig;
  loader: LoaderState;
  hasAnchor: boolean;
}

/** Independent streams from one seed (the loader and the trainer must not share draws). */
function derivedSeed(seed: number, stream: number): number {
  return (seed ^ Math.imul(stream, 0x9e3779b9)) >>> 0;
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

// ---------------------------------------------------------------------------------------------------------------
// The run folder

function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

async function readLatest(out: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(join(out, LATEST), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const name = text.trim();
  if (!/^checkpoint-\d+$/.test(name) || !(await isCheckpoint(join(out, name)))) {
    throw new TrainError(`${join(out, LATEST)} names "${name}", which is not a complete checkpoint in ${out}`);
  }
  return name;
}

function jsonLine(record: Record<string, unknown>): string {
  // NaN (no decisive pair) and ±Infinity are not JSON: null.
  return `${JSON.stringify(record, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value))}\n`;
}

/** Keeps the lines an uninterrupted run would have written up to `step` (the rest came after the checkpoint). */
async function truncateMetrics(out: string, step: number): Promise<void> {
  let text = '';
  try {
    text = await readFile(join(out, METRICS), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const kept: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let record: { phase?: unknown; step?: unknown };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      continue; // a line cut short by the interruption
    }
    if (record.phase === 'pretrain' || (typeof record.step === 'number' && record.step <= step)) kept.push(line);
  }
  await writeFileAtomic(join(out, METRICS), Buffer.from(kept.map((l) => `${l}\n`).join('')));
}

async function pruneCheckpoints(out: string, keep: number | null, latest: string): Promise<void> {
  if (keep === null) return;
  const steps = (await readdir(out))
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const step of steps.slice(keep)) {
    if (checkpointName(step) !== latest) await rm(join(out, checkpointName(step)), { recursive: true, force: true });
  }
}

/** checkpoint-<step> folders in a RUN/ this run holds the lock of are the run's own, whatever state they are in. */
const CHECKPOINT_FOLDER: ReplaceFolderOptions = {
  isOurs: async () => true,
  refuse: (target, why) => new TrainError(`cannot write the checkpoint ${target}: ${why}`),
};

/** Checkpoint folders an interrupted run did not finish building or swapping in (`.checkpoint-<step>.tmp-<pid>`: earlier versions). */
async function removeStaleTemporaries(out: string): Promise<void> {
  for (const name of await readdir(out)) {
    if (/^\.checkpoint-\d+\.tmp-/.test(name)) await rm(join(out, name), { recursive: true, force: true });
    const staging = /^\.(checkpoint-\d+)\.\d+(?:-\d+)?(?:\.[0-9a-f]+)?\.(?:tmp|old)$/.exec(name);
    if (staging) await removeStaleStaging(join(out, staging[1]!));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The DPO starting point, frozen

/** A frozen copy of the model as DPO starts (adapters, which are zero then, switched off). */
class Anchor implements ReferenceModel {
  readonly options: Readonly<ReferenceOptions> = { mode: 'none' };
  readonly ownsWeights = true;
  private readonly copy: Denoiser;

  constructor(model: Denoiser) {
    this.copy = model.clone();
    this.copy.setAdaptersEnabled(false);
  }

  predict(xt: tf.Tensor4D, t: tf.Tensor1D, textStates: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor4D {
    return this.copy.predict(xt, t, textStates, mask);
  }

  afterStep(): boolean {
    return false;
  }

  update(): void {}

  weights(): TensorDict {
    return readVariables(this.copy.parameters);
  }

  loadWeights(weights: TensorDict): void {
    assignVariables(this.copy.parameters, weights, { complete: true, prefix: 'anchor ' });
  }

  dispose(): void {
    this.copy.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Data

/** A loader batch as the tensors a trainer step takes; release them with disposePairs. */
export function pairTensors(batch: LoaderBatch): PairBatch {
  return {
    a: tf.tensor4d(batch.latentsA, batch.latentShape),
    b: tf.tensor4d(batch.latentsB, batch.latentShape),
    textStates: tf.tensor3d(batch.text, batch.textShape),
    label: batch.label,
  };
}

export function disposePairs(batch: PairBatch): void {
  tf.dispose([batch.a, batch.b, batch.textStates]);
}

/** Rows [start, start + size) of a batch. */
function sliceBatch(batch: LoaderBatch, start: number, size: number): LoaderBatch {
  const [, c, h, w] = batch.latentShape;
  const [, t, width] = batch.textShape;
  const per = c * h * w;
  const perText = t * width;
  return {
    ...batch,
    latentsA: batch.latentsA.subarray(start * per, (start + size) * per),
    latentsB: batch.latentsB.subarray(start * per, (start + size) * per),
    latentShape: [size, c, h, w],
    text: batch.text.subarray(start * perText, (start + size) * perText),
    textShape: [size, t, width],
    label: batch.label.subarray(start, start + size),
    pairIds: batch.pairIds.slice(start, start + size),
    promptIds: batch.promptIds.slice(start, start + size),
    captionDropped: batch.captionDropped.subarray(start, start + size),
  };
}

async function readEncoderJson(dir: string, table: 'latents' | 'text', rule: string): Promise<Record<string, unknown>> {
  const location = encoderInfoLocation(dir, table);
  const path = location.path;
  try {
    return (await readMetaJson(location)) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TrainError(`${dir}: no meta/${table}.json (run bdpo encode ${dir} --rule ${rule})`);
    }
    throw new TrainError(error instanceof JsonFileError ? error.message : `${path}: ${message(error)}`);
  }
}

/** The cached tensors must be what the model takes: one clear line naming the key to change otherwise. */
function checkShapes(dir: string, loader: PairLoader, config: TrainConfig, latentInfo: Record<string, unknown>): void {
  const latent = loader.latentShape;
  const text = loader.textShape;
  const { latentChannels, latentSize, textWidth } = config.model;
  const encoded = typeof latentInfo.resolution === 'number' ? ` (encoded at ${latentInfo.resolution} px)` : '';
  if (latent[1] !== latent[2]) throw new TrainError(`${dir}: latents/ hold ${formatShape(latent)} latents${encoded}; the DiT needs square latents: re-encode at a square resolution`);
  if (latent[0] !== latentChannels || latent[1] !== latentSize) {
    throw new TrainError(
      `${dir}: latents/ hold ${formatShape(latent)} latents${encoded} but the config's model takes ${latentChannels}x${latentSize}x${latentSize}: ` +
        `set model.latentChannels to ${latent[0]} and model.latentSize to ${latent[1]}, or re-encode`,
    );
  }
  if (text[1] !== textWidth) {
    throw new TrainError(`${dir}: text/ holds ${formatShape(text)} text states but the config's model.textWidth is ${textWidth}: set it to ${text[1]}, or re-encode with the matching text encoder`);
  }
}

interface MonitorSet {
  batch: LoaderBatch;
  splits: string[];
  heldOut: boolean;
}

/** A seeded sample of held-out pairs, or of training pairs when nothing is held out (then for the MSE guard only). */
async function loadMonitorSet(dir: string, rule: string, config: TrainConfig, log: (line: string) => void): Promise<{ set: MonitorSet | null; note: string | null }> {
  if (config.validationPairs === 0) return { set: null, note: 'validationPairs is 0: no validation and no MSE guard' };
  const open = async (splits: string[] | null): Promise<LoaderBatch | null> => {
    const loader = await PairLoader.open({
      dir,
      rule,
      batchSize: config.validationPairs,
      seed: derivedSeed(config.seed, 3),
      shuffleBuffer: Math.max(config.validationPairs, 1024),
      epochs: 1,
      splits,
      // Accuracy is judged against the rule's decision, whatever the training target.
      useSoft: false,
      prefetch: false,
    });
    try {
      return await loader.next();
    } catch (error) {
      if (error instanceof MissingDataError && /no kept pair/.test(error.message)) return null;
      throw error;
    } finally {
      await loader.close();
    }
  };
  let note: string | null = null;
  if (config.validationSplits.length > 0) {
    const batch = await open(config.validationSplits);
    if (batch) return { set: { batch, splits: config.validationSplits, heldOut: true }, note: null };
    note = `consensus/${rule} has no kept pair in ${config.validationSplits.join(', ')}: nothing held out, no validation accuracy`;
  } else {
    note = 'validationSplits is empty: nothing held out, no validation accuracy';
  }
  const batch = await open(config.trainSplits);
  if (!batch) return { set: null, note };
  log(`${note}; the MSE guard watches ${batch.pairIds.length} training pairs`);
  return { set: { batch, splits: config.trainSplits ?? ['all'], heldOut: false }, note };
}

function evaluate(model: Denoiser, anchor: ReferenceModel, set: MonitorSet, config: TrainConfig, step: number): EvaluationResult {
  const rng = createRng(derivedSeed(config.seed, 4));
  const total = set.batch.pairIds.length;
  const chunk = config.microBatch ?? config.batchSize;
  const sums = { loss: 0, correct: 0, margin: 0, model: 0, start: 0, decisive: 0 };
  for (let start = 0; start < total; start += chunk) {
    const size = Math.min(chunk, total - start);
    const batch = pairTensors(sliceBatch(set.batch, start, size));
    const m = evaluateDpo(model, anchor, batch, rng, { beta: config.beta });
    disposePairs(batch);
    sums.loss += m.loss * size;
    sums.model += m.modelMse * size;
    sums.start += m.referenceMse * size;
    if (m.decisivePairs > 0) {
      sums.correct += m.implicitAccuracy * m.decisivePairs;
      sums.margin += m.rewardMargin * m.decisivePairs;
      sums.decisive += m.decisivePairs;
    }
  }
  const modelMse = sums.model / total;
  const startMse = sums.start / total;
  return {
    step,
    splits: set.splits,
    heldOut: set.heldOut,
    pairs: total,
    decisivePairs: sums.decisive,
    loss: sums.loss / total,
    implicitAccuracy: sums.decisive > 0 ? sums.correct / sums.decisive : Number.NaN,
    rewardMargin: sums.decisive > 0 ? sums.margin / sums.decisive : Number.NaN,
    modelMse,
    startMse,
    guardTripped: config.mseGuard !== null && modelMse > config.mseGuard.factor * startMse,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Metric windows

class Window {
  steps = 0;
  pairs = 0;
  loss = 0;
  modelMse = 0;
  referenceMse = 0;
  gradNorm = 0;
  correct = 0;
  margin = 0;
  decisive = 0;
  referenceUpdates = 0;
  epoch = 0;
  started = performance.now();

  add(result: DpoMetrics & { gradNorm: number; referenceUpdated?: boolean }, epoch: number): void {
    this.steps++;
    this.pairs += result.pairs;
    this.loss += result.loss;
    this.modelMse += result.modelMse;
    this.referenceMse += result.referenceMse;
    this.gradNorm += result.gradNorm;
    if (result.decisivePairs > 0) {
      this.correct += result.implicitAccuracy * result.decisivePairs;
      this.margin += result.rewardMargin * result.decisivePairs;
      this.decisive += result.decisivePairs;
    }
    if (result.referenceUpdated) this.referenceUpdates++;
    this.epoch = epoch;
  }

  means(): NonNullable<TrainSummary['final']> {
    const n = Math.max(this.steps, 1);
    return {
      loss: this.loss / n,
      implicitAccuracy: this.decisive > 0 ? this.correct / this.decisive : Number.NaN,
      rewardMargin: this.decisive > 0 ? this.margin / this.decisive : Number.NaN,
      modelMse: this.modelMse / n,
      referenceMse: this.referenceMse / n,
      gradNorm: this.gradNorm / n,
    };
  }

  samplesPerSecond(): number {
    return this.pairs / Math.max((performance.now() - this.started) / 1000, 1e-9);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-training

async function pretrain(
  model: Denoiser,
  dir: string,
  rule: string,
  config: TrainConfig,
  write: (record: Record<string, unknown>) => Promise<void>,
  onProgress: TrainOptions['onProgress'],
): Promise<number> {
  const loader = await PairLoader.open({
    dir,
    rule,
    batchSize: config.pretrainBatchSize,
    seed: derivedSeed(config.seed, 1),
    shuffleBuffer: config.shuffleBuffer,
    captionDropout: config.captionDropout,
    epochs: null,
    splits: config.trainSplits,
  });
  const trainer = new Trainer(model, {
    seed: derivedSeed(config.seed, 2),
    learningRate: config.pretrainLearningRate,
    weightDecay: config.weightDecay,
    ...(config.maxGradNorm === null ? {} : { maxGradNorm: config.maxGradNorm }),
    // Both images of each pair: twice as many samples per pass as a DPO micro-batch of pairs.
    ...(config.microBatch === null ? {} : { microBatch: 2 * config.microBatch }),
    reference: null,
  });
  let window = { steps: 0, loss: 0, gradNorm: 0, images: 0, started: performance.now() };
  let last = Number.NaN;
  try {
    for (let step = 1; step <= config.pretrainMseSteps; step++) {
      const batch = (await loader.next())!;
      const n = batch.latentShape[0];
      const images = tf.tidy(() => ({
        x0: tf.concat([tf.tensor4d(batch.latentsA, batch.latentShape), tf.tensor4d(batch.latentsB, batch.latentShape)]) as tf.Tensor4D,
        textStates: tf.concat([tf.tensor3d(batch.text, batch.textShape), tf.tensor3d(batch.text, batch.textShape)]) as tf.Tensor3D,
      }));
      const result = trainer.mseStep(images);
      tf.dispose([images.x0, images.textStates]);
      if (!Number.isFinite(result.loss)) throw new TrainError(`MSE pre-training diverged at step ${step} (loss ${result.loss}): lower pretrainLearningRate`);
      window.steps++;
      window.loss += result.loss;
      window.gradNorm += result.gradNorm;
      window.images += 2 * n;
      const done = step === config.pretrainMseSteps;
      if (step % config.logEvery === 0 || done) {
        const seconds = Math.max((performance.now() - window.started) / 1000, 1e-9);
        last = window.loss / window.steps;
        await write({
          phase: 'pretrain',
          step,
          loss: last,
          gradNorm: window.gradNorm / window.steps,
          learningRate: config.pretrainLearningRate,
          samplesPerSecond: window.images / seconds,
          epoch: batch.epoch,
        });
        window = { steps: 0, loss: 0, gradNorm: 0, images: 0, started: performance.now() };
      }
      onProgress?.({ phase: 'pretrain', step, total: config.pretrainMseSteps, loss: window.steps > 0 ? window.loss / window.steps : last, implicitAccuracy: Number.NaN });
    }
  } finally {
    trainer.dispose();
    await loader.close();
  }
  // With LoRA only the adapters trained; folding them into the base makes the base (the LoRA reference) the
  // pre-trained denoiser and leaves the adapters at zero for DPO.
  model.mergeAdapters(1);
  return last;
}

// ---------------------------------------------------------------------------------------------------------------
// The run

interface Resumed {
  name: string;
  state: RunState;
  checkpoint: Checkpoint;
  anchor: TensorDict | null;
}

async function loadResumed(out: string, name: string): Promise<Resumed> {
  const dir = join(out, name);
  let state: RunState;
  try {
    state = (await readJsonFile(join(dir, 'run.json'))) as RunState;
  } catch (error) {
    throw new TrainError(error instanceof JsonFileError ? error.message : `${dir}: no readable run.json (${message(error)})`);
  }
  if (state.format !== RUN_FORMAT) throw new TrainError(`${dir}/run.json: format ${String(state.format)}, expected ${RUN_FORMAT}`);
  const checkpoint = await loadCheckpoint(dir);
  const anchor = state.hasAnchor ? (await readSafetensors(join(dir, 'anchor.safetensors'))).tensors : null;
  return { name, state, checkpoint, anchor };
}

function resolveConfig(out: string, rule: string, given: TrainConfig | undefined, resumed: Resumed | null): TrainConfig {
  if (!resumed) {
    if (!given) throw new ConfigError('a training config is required (--config train.json)');
    return given;
  }
  const saved = parseTrainConfig(resumed.state.config, `${join(out, resumed.name)}/run.json`);
  if (resumed.state.rule !== rule) {
    throw new TrainError(`${out} trains on consensus/${resumed.state.rule}, not consensus/${rule}: resume with --rule ${resumed.state.rule}, or use another --out`);
  }
  if (!given) return saved;
  const differ = weightKeysThatDiffer(saved, given);
  if (differ.length > 0) {
    const allowed = [...RESUMABLE_KEYS].filter((key) => key !== 'description').join(', ');
    throw new ConfigError(`the config differs from the resumed run's in ${differ.join(', ')}: a resumed run may only change ${allowed}`);
  }
  return given;
}

/** Two runs writing one RUN/ would interleave their metrics and checkpoints: a run holds RUN/train.lock throughout. */
async function lockRunFolder(out: string): Promise<{ lock: Lock; created: string | undefined }> {
  const created = await mkdir(out, { recursive: true });
  try {
    return { lock: await acquireLock(join(out, RUN_LOCK), { wait: false, staleMs: Number.POSITIVE_INFINITY }), created };
  } catch (error) {
    await removeIfEmpty(out, created);
    if (!(error instanceof LockBusyError)) throw error;
    const { holder } = error;
    const since = holder.since ? ` since ${holder.since}` : '';
    const remote = holder.host !== hostname() ? `; if it no longer runs there, remove ${error.lockPath}` : '';
    const who = `${describeHolder(holder)}${since}`;
    throw new TrainError(`${out} is in use by another train run (${who}): wait for it or choose another --out${remote}`);
  }
}

export async function runTrain(dir: string, options: TrainOptions): Promise<TrainSummary> {
  const { lock, created } = await lockRunFolder(options.out);
  try {
    return await runLocked(dir, options);
  } finally {
    await lock.release();
    // A run that could not start leaves no RUN/ behind.
    await removeIfEmpty(options.out, created);
  }
}

/** Removes the folders from `out` up to `first` (the first one mkdir created), as long as they are empty. */
async function removeIfEmpty(out: string, first: string | undefined): Promise<void> {
  if (first === undefined) return;
  for (let folder = resolve(out); folder.length >= first.length; folder = dirname(folder)) {
    if (!(await rmdir(folder).then(() => true, () => false))) return;
  }
}

async function runLocked(dir: string, options: TrainOptions): Promise<TrainSummary> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const { out, rule } = options;
  const latest = await readLatest(out);
  if (latest && !options.resume) {
    throw new TrainError(`${out} already holds a run (${latest}): pass --resume to continue it, or choose another --out`);
  }
  if (options.resume && !latest) log(`no checkpoint in ${out} yet: starting from the beginning`);
  const resumed = latest ? await loadResumed(out, latest) : null;
  const config = resolveConfig(out, rule, options.config, resumed);
  const targetSteps = options.steps ?? config.steps;
  if (!Number.isInteger(targetSteps) || targetSteps < 0) throw new ConfigError(`--steps must be a non-negative integer, got ${targetSteps}`);

  const backend = await selectBackend(options.backend ?? 'auto');
  log(`backend ${backend.name} (${backend.reason})`);
  const latentInfo = await readEncoderJson(dir, 'latents', rule);
  await readEncoderJson(dir, 'text', rule);

  const metricsPath = join(out, METRICS);
  const write = async (record: Record<string, unknown>): Promise<void> => appendFile(metricsPath, jsonLine(record));

  const summary: TrainSummary = {
    dir,
    rule,
    out,
    backend: backend.name,
    backendReason: backend.reason,
    resumedFrom: resumed ? resumed.state.step : null,
    pretrainSteps: 0,
    pretrainLoss: null,
    steps: 0,
    stepsThisRun: 0,
    targetSteps,
    final: null,
    validation: null,
    validationNote: null,
    stopped: null,
    seconds: 0,
    stepsPerSecond: 0,
    parameters: 0,
    trainableParameters: 0,
    checkpoint: latest ? join(out, latest) : null,
    weights: latest ? join(out, latest, 'model.safetensors') : null,
    metrics: metricsPath,
  };

  let loader: PairLoader | null = null;
  let model: Denoiser | null = null;
  let trainer: Trainer | null = null;
  let anchor: Anchor | null = null;
  try {
    loader = resumed
      ? await PairLoader.resume(resumed.state.loader, { dir })
      : await PairLoader.open({
          dir,
          rule,
          batchSize: config.batchSize,
          seed: derivedSeed(config.seed, 5),
          shuffleBuffer: config.shuffleBuffer,
          captionDropout: config.captionDropout,
          epochs: null,
          splits: config.trainSplits,
          useSoft: config.useSoft,
        });
    checkShapes(dir, loader, config, latentInfo);
    log(`data: consensus/${rule} of ${dir}: latents ${formatShape(loader.latentShape)}, text ${formatShape(loader.textShape)}, training splits ${config.trainSplits?.join(', ') ?? 'all'}`);
    const monitor = await loadMonitorSet(dir, rule, config, log);
    summary.validationNote = monitor.note;
    if (monitor.set?.heldOut) log(`held out: ${monitor.set.batch.pairIds.length} pairs of ${monitor.set.splits.join(', ')}`);

    // The data is usable: only now is RUN/ touched, so a run that cannot start leaves nothing behind.
    await mkdir(out, { recursive: true });
    await removeStaleTemporaries(out);
    if (resumed) await truncateMetrics(out, resumed.state.step);
    else await writeFile(metricsPath, '');
    await writeFileAtomic(join(out, 'config.json'), Buffer.from(`${JSON.stringify(config, null, 2)}\n`));

    model = createDit(config.model, config.seed);
    for (const variable of model.parameters.values()) summary.parameters += variable.size;
    for (const name of model.trainableNames()) summary.trainableParameters += model.parameters.get(name)!.size;
    const { width, depth, lora } = config.model;
    log(`model: DiT width ${width}, depth ${depth}${lora ? `, LoRA rank ${lora.rank}` : ''}: ${summary.parameters} parameters, ${summary.trainableParameters} trained`);

    const checkpoint = async (step: number): Promise<void> => {
      const name = checkpointName(step);
      await replaceFolder(join(out, name), async (staging) => {
        if (anchor) await writeSafetensors(join(staging, 'anchor.safetensors'), anchor.weights(), { format: 'pt', step: '0' });
        const state: RunState = { format: RUN_FORMAT, step, rule, config, loader: loader!.state(), hasAnchor: anchor !== null };
        await writeFile(join(staging, 'run.json'), `${JSON.stringify(state, null, 2)}\n`);
        // trainer.json, written last by saveCheckpoint, marks the folder complete.
        await saveCheckpoint(staging, { config: config.model, options: trainerOptions(config), state: trainer!.state() });
      }, CHECKPOINT_FOLDER);
      await writeFileAtomic(join(out, LATEST), Buffer.from(`${name}\n`));
      await pruneCheckpoints(out, config.keepCheckpoints, name);
      summary.checkpoint = join(out, name);
      summary.weights = join(out, name, 'model.safetensors');
    };

    if (!resumed && config.pretrainMseSteps > 0) {
      log(`pre-training: ${config.pretrainMseSteps} ε-MSE steps at learning rate ${config.pretrainLearningRate}`);
      summary.pretrainLoss = await pretrain(model, dir, rule, config, write, options.onProgress);
      summary.pretrainSteps = config.pretrainMseSteps;
      log(`pre-training done: MSE ${summary.pretrainLoss.toFixed(4)}`);
    }
    trainer = new Trainer(model, trainerOptions(config));
    if (config.reference.mode !== 'none') anchor = new Anchor(model);
    if (resumed) {
      trainer.loadState(resumed.checkpoint.state);
      if (anchor) {
        if (!resumed.anchor) throw new TrainError(`${join(out, resumed.name)}: no anchor.safetensors for the moving reference`);
        anchor.loadWeights(resumed.anchor);
      }
      log(`resumed from ${join(out, resumed.name)} at step ${trainer.step}`);
    } else if (config.pretrainMseSteps > 0) {
      await checkpoint(0);
    }
    const startMseOf: ReferenceModel = anchor ?? trainer.reference!;
    summary.steps = trainer.step;
    const firstStep = trainer.step;

    const validate = async (step: number, record = true): Promise<EvaluationResult | null> => {
      if (!monitor.set) return null;
      const result = evaluate(model!, startMseOf, monitor.set, config, step);
      if (record) await write({
        phase: 'validation',
        step,
        splits: result.splits,
        heldOut: result.heldOut,
        pairs: result.pairs,
        loss: result.loss,
        implicitAccuracy: result.implicitAccuracy,
        rewardMargin: result.rewardMargin,
        modelMse: result.modelMse,
        startMse: result.startMse,
        mseRatio: result.modelMse / result.startMse,
        guardTripped: result.guardTripped,
      });
      if (result.heldOut) {
        summary.validation = result;
        log(`step ${step}: held-out implicit accuracy ${result.implicitAccuracy.toFixed(3)}, model MSE ${result.modelMse.toFixed(4)} (start ${result.startMse.toFixed(4)})`);
      }
      if (result.guardTripped) {
        const ratio = (result.modelMse / result.startMse).toFixed(2);
        const what = `model MSE ${result.modelMse.toFixed(4)} is ${ratio}× the starting model's ${result.startMse.toFixed(4)} (mseGuard factor ${config.mseGuard!.factor})`;
        if (config.mseGuard!.action === 'stop') summary.stopped = `MSE guard at step ${step}: ${what}; lower learningRate or make reference updates rarer`;
        else log(`warning: step ${step}: ${what}`);
      }
      return result;
    };

    if (firstStep >= targetSteps) log(`${out} is at step ${firstStep}, at or past the ${targetSteps} steps asked for: nothing to train`);
    let window = new Window();
    const loopStarted = performance.now();
    for (let step = firstStep + 1; step <= targetSteps; step++) {
      const batch = await loader.next();
      if (batch === null) throw new TrainError('the pair loader ended (it should cycle endlessly)');
      const tensors = pairTensors(batch);
      let result;
      try {
        result = trainer.dpoStep(tensors);
      } finally {
        disposePairs(tensors);
      }
      if (!Number.isFinite(result.loss)) throw new TrainError(`DPO diverged at step ${step} (loss ${result.loss}): lower learningRate or beta`);
      window.add(result, batch.epoch);
      summary.steps = step;
      summary.stepsThisRun = step - firstStep;
      const last = step === targetSteps;
      if (step % config.logEvery === 0 || last) {
        summary.final = window.means();
        await write({
          phase: 'train',
          step,
          ...summary.final,
          learningRate: config.learningRate,
          referenceUpdated: window.referenceUpdates > 0,
          referenceUpdates: window.referenceUpdates,
          pairs: window.pairs,
          epoch: window.epoch,
          samplesPerSecond: window.samplesPerSecond(),
        });
        options.onProgress?.({ phase: 'train', step, total: targetSteps, loss: summary.final.loss, implicitAccuracy: summary.final.implicitAccuracy });
        window = new Window();
      } else {
        const running = window.means();
        options.onProgress?.({ phase: 'train', step, total: targetSteps, loss: running.loss, implicitAccuracy: running.implicitAccuracy });
      }
      if ((config.validateEvery > 0 && step % config.validateEvery === 0) || last) await validate(step);
      if (summary.stopped !== null || last || (config.checkpointEvery > 0 && step % config.checkpointEvery === 0)) await checkpoint(step);
      if (summary.stopped !== null) break;
    }
    summary.stepsPerSecond = summary.stepsThisRun / Math.max((performance.now() - loopStarted) / 1000, 1e-9);
    // A run with nothing left to do still reports where it stands (a resumed one has logged it already).
    if (summary.stepsThisRun === 0) await validate(summary.steps, !resumed);
  } finally {
    anchor?.dispose();
    trainer?.dispose();
    model?.dispose();
    await loader?.close();
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}
