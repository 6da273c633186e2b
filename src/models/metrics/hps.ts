// HPS v2: cos(text, image) of a fine-tuned CLIP; cosines differ by hundredths, hence τ 0.01.
import type { MetricKindModule } from './kind.ts';
import { cosineScores, requireTextAndImageTowers, validateModels } from './contract.ts';

export const hps: MetricKindModule<'cos'> = {
  scores: ['cos'],
  defaultPreprocess: 'hpsv2',
  defaultTemperature: () => 0.01,
  checkModels: (models, fail) => requireTextAndImageTowers(models, fail),
  needsTokenizer: () => true,
  validate: (hub, spec) => validateModels(hub, spec),
  score: (hub, spec, image, prompts) => cosineScores(hub, spec, image, prompts, (cos) => cos),
};
