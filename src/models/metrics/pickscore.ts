// PickScore: logit_scale · cos(text, image); its scale is in the score, so τ is 1.
import type { MetricKindModule } from './kind.ts';
import { cosineScores, requireTextAndImageTowers, validateModels } from './contract.ts';

export const pickscore: MetricKindModule<'logit-scale-cos'> = {
  scores: ['logit-scale-cos'],
  defaultPreprocess: 'hf-clip',
  defaultTemperature: () => 1,
  checkModels: (models, fail) => requireTextAndImageTowers(models, fail),
  needsTokenizer: () => true,
  validate: (hub, spec) => validateModels(hub, spec),
  score: (hub, spec, image, prompts) => cosineScores(hub, spec, image, prompts, (cos) => spec.logitScale * cos),
};
