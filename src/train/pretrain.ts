// Pre-training (pretrainMseSteps > 0, for a model that does not denoise yet): plain ε-MSE steps on both images of the
// training pairs, with a loader and generator of its own; the run then writes checkpoint-0, the DPO starting point.
// A run interrupted during pre-training starts it again.
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from './config.ts';
import type { Denoiser } from './denoiser.ts';
import { PairLoader } from './loader.ts';
import { derivedSeed } from './rng.ts';
import { TrainError, type TrainOptions } from './run-api.ts';
import { Trainer } from './trainer-step.ts';

export async function pretrain(
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
      if (!Number.isFinite(result.loss))
        throw new TrainError(`MSE pre-training diverged at step ${step} (loss ${result.loss}): lower pretrainLearningRate`);
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
      onProgress?.({
        phase: 'pretrain',
        step,
        total: config.pretrainMseSteps,
        loss: window.steps > 0 ? window.loss / window.steps : last,
        implicitAccuracy: Number.NaN,
      });
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
