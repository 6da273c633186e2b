// The means a metrics.jsonl "train" line reports: DPO step results summed over the steps since the last line.
import type { DpoMetrics } from './dpo.ts';
import type { TrainSummary } from './run-api.ts';

export class Window {
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
