// What a training run takes and gives back: its options, progress reports and summary, and the error it fails with.
// Every module of the run speaks these; runTrain (run.ts) is the entry point.
import type { BackendChoice } from './backend.ts';
import type { TrainConfig } from './config.ts';
import type { DpoMetrics } from './dpo.ts';
import type { EvaluationResult } from './validation.ts';
import { BdpoError } from '../core/errors.ts';

export class TrainError extends BdpoError {
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

export const describeError = (error: unknown): string => (error instanceof Error ? error.message : String(error));
