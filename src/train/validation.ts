// Validation and the MSE guard: a seeded sample of held-out pairs (or of training pairs when nothing is held out, then
// for the guard only) scored against the anchor. Validation draws its noise from a generator of its own, reset at
// every evaluation, so every evaluation sees the same pairs with the same noise and the training stream is untouched:
// a resumed run reaches the uninterrupted run's weights bit for bit.
import type { TrainConfig } from './config.ts';
import type { Denoiser } from './denoiser.ts';
import { PairLoader, type LoaderBatch } from './loader.ts';
import { MissingDataError } from '../io/tensor-store.ts';
import type { ReferenceModel } from './reference.ts';
import { createRng, derivedSeed } from './rng.ts';
import { disposePairs, pairTensors, sliceBatch } from './run-data.ts';
import { evaluateDpo } from './trainer-step.ts';

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

export interface MonitorSet {
  batch: LoaderBatch;
  splits: string[];
  heldOut: boolean;
}

/** A seeded sample of held-out pairs, or of training pairs when nothing is held out (then for the MSE guard only). */
export async function loadMonitorSet(
  dir: string,
  rule: string,
  config: TrainConfig,
  log: (line: string) => void,
): Promise<{ set: MonitorSet | null; note: string | null }> {
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

export function evaluate(model: Denoiser, anchor: ReferenceModel, set: MonitorSet, config: TrainConfig, step: number): EvaluationResult {
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

/** The metrics.jsonl line of an evaluation. */
export function validationRecord(result: EvaluationResult): Record<string, unknown> {
  return {
    phase: 'validation',
    step: result.step,
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
  };
}

/** What a tripped MSE guard does, by its action: the reason the run stops, or a warning to log. */
export function guardVerdict(result: EvaluationResult, config: TrainConfig): { stop: string } | { warning: string } | null {
  if (!result.guardTripped) return null;
  const { step } = result;
  const ratio = (result.modelMse / result.startMse).toFixed(2);
  const guard = config.mseGuard!;
  const what =
    `model MSE ${result.modelMse.toFixed(4)} is ${ratio}× the starting model's ${result.startMse.toFixed(4)}` +
    ` (mseGuard factor ${guard.factor})`;
  if (guard.action === 'stop') return { stop: `MSE guard at step ${step}: ${what}; lower learningRate or make reference updates rarer` };
  return { warning: `warning: step ${step}: ${what}` };
}
