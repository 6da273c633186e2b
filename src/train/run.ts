// `bdpo train`: a resumable Diffusion-DPO run over the cached latents and text states of one consensus rule. This module
// is the run itself: resolving the config (a resumed run's own, or a new one that may change only RESUMABLE_KEYS),
// then the training loop, which logs, validates and checkpoints on the config's schedule.
//
// RUN/ holds config.json (the resolved config), metrics.jsonl and train.lock (run-folder.ts), checkpoint-<step>/
// folders and `latest` (run-checkpoint.ts). Validation and the MSE guard (validation.ts) are measured against the
// anchor (anchor.ts); pre-training (pretrain.ts) runs before DPO when the config asks for it.
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { formatShape } from '../io/float16-bytes.ts';
import { Anchor } from './anchor.ts';
import { selectBackend } from './backend.ts';
import { ConfigError, parseTrainConfig, RESUMABLE_KEYS, trainerOptions, weightKeysThatDiffer, type TrainConfig } from './config.ts';
import type { Denoiser } from './denoiser.ts';
import { createDit } from './dit.ts';
import { PairLoader } from './loader.ts';
import { Window } from './metric-window.ts';
import { pretrain } from './pretrain.ts';
import type { ReferenceModel } from './reference.ts';
import { derivedSeed } from './rng.ts';
import { TrainError, type TrainOptions, type TrainSummary } from './run-api.ts';
import { loadResumed, readLatest, removeStaleTemporaries, writeRunCheckpoint, type Resumed } from './run-checkpoint.ts';
import { checkShapes, disposePairs, pairTensors, readEncoderJson } from './run-data.ts';
import { jsonLine, lockRunFolder, METRICS, removeIfEmpty, truncateMetrics } from './run-folder.ts';
import { Trainer } from './trainer-step.ts';
import { evaluate, guardVerdict, loadMonitorSet, validationRecord, type EvaluationResult } from './validation.ts';

export { TrainError, type TrainOptions, type TrainProgress, type TrainSummary } from './run-api.ts';
export { disposePairs, pairTensors } from './run-data.ts';
export type { EvaluationResult } from './validation.ts';

function resolveConfig(out: string, rule: string, given: TrainConfig | undefined, resumed: Resumed | null): TrainConfig {
  if (!resumed) {
    if (!given) throw new ConfigError('a training config is required (--config train.json)');
    return given;
  }
  const saved = parseTrainConfig(resumed.state.config, `${join(out, resumed.name)}/run.json`);
  if (resumed.state.rule !== rule) {
    throw new TrainError(
      `${out} trains on consensus/${resumed.state.rule}, not consensus/${rule}: ` +
        `resume with --rule ${resumed.state.rule}, or use another --out`,
    );
  }
  if (!given) return saved;
  const differ = weightKeysThatDiffer(saved, given);
  if (differ.length > 0) {
    const allowed = [...RESUMABLE_KEYS].filter((key) => key !== 'description').join(', ');
    throw new ConfigError(`the config differs from the resumed run's in ${differ.join(', ')}: a resumed run may only change ${allowed}`);
  }
  return given;
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
  if (!Number.isInteger(targetSteps) || targetSteps < 0)
    throw new ConfigError(`--steps must be a non-negative integer, got ${targetSteps}`);

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
    log(
      `data: consensus/${rule} of ${dir}: latents ${formatShape(loader.latentShape)}, text ${formatShape(loader.textShape)}, ` +
        `training splits ${config.trainSplits?.join(', ') ?? 'all'}`,
    );
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
    log(
      `model: DiT width ${width}, depth ${depth}${lora ? `, LoRA rank ${lora.rank}` : ''}: ` +
        `${summary.parameters} parameters, ${summary.trainableParameters} trained`,
    );

    const checkpoint = async (step: number): Promise<void> => {
      const name = await writeRunCheckpoint(
        out,
        {
          state: { step, rule, config, loader: loader!.state(), hasAnchor: anchor !== null },
          trainer: { config: config.model, options: trainerOptions(config), state: trainer!.state() },
          anchor: anchor ? anchor.weights() : null,
        },
        config.keepCheckpoints,
      );
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
      if (record) await write(validationRecord(result));
      if (result.heldOut) {
        summary.validation = result;
        log(
          `step ${step}: held-out implicit accuracy ${result.implicitAccuracy.toFixed(3)}, ` +
            `model MSE ${result.modelMse.toFixed(4)} (start ${result.startMse.toFixed(4)})`,
        );
      }
      const verdict = guardVerdict(result, config);
      if (verdict && 'stop' in verdict) summary.stopped = verdict.stop;
      else if (verdict) log(verdict.warning);
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
      if (!Number.isFinite(result.loss))
        throw new TrainError(`DPO diverged at step ${step} (loss ${result.loss}): lower learningRate or beta`);
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
        options.onProgress?.({
          phase: 'train',
          step,
          total: targetSteps,
          loss: summary.final.loss,
          implicitAccuracy: summary.final.implicitAccuracy,
        });
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
