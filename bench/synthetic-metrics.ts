// The four metrics of the synthetic datasets of bench/consensus.ts and bench/eval.ts, and how each sees an image's
// latent quality: score = offset + signal · quality + noise · U(−1, 1), on the real metrics' scales.
import type { MetricInfo } from '../src/core/schema.ts';

export const BENCH_METRICS: MetricInfo[] = [
  { name: 'aes', kind: 'aesthetic', version: 'bench', score: 'mlp', temperature: 1 },
  { name: 'clip', kind: 'clip', version: 'bench', score: 'cos', temperature: 0.01 },
  { name: 'hps', kind: 'hps', version: 'bench', score: 'cos', temperature: 0.01 },
  { name: 'pick', kind: 'pickscore', version: 'bench', score: 'logit-scale-cos', temperature: 1 },
];

/** [offset, signal, noise] per metric. */
export const BENCH_SCALES: Record<string, [number, number, number]> = {
  aes: [5.5, 0.8, 0.6],
  clip: [0.3, 0.01, 0.02],
  hps: [0.27, 0.01, 0.01],
  pick: [21, 1.5, 1.5],
};
