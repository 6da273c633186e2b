// CLIP score: cos(text, image), or as torchmetrics reports it, 100 · max(cos, 0) ("clip-100", on a 100× scale: τ 1).
import type { MetricKindModule } from './kind.ts';
import { cosineScores, requireTextAndImageTowers, validateModels } from './contract.ts';

export const clip: MetricKindModule<'cos' | 'clip-100'> = {
  scores: ['cos', 'clip-100'],
  defaultPreprocess: 'hf-clip',
  defaultTemperature: (score) => (score === 'clip-100' ? 1 : 0.01),
  checkModels: (models, fail) => requireTextAndImageTowers(models, fail),
  needsTokenizer: () => true,
  validate: (hub, spec) => validateModels(hub, spec),
  score: (hub, spec, image, prompts) =>
    cosineScores(hub, spec, image, prompts, spec.score === 'clip-100' ? (cos) => 100 * Math.max(cos, 0) : (cos) => cos),
};
