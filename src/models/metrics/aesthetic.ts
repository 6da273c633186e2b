// Aesthetic predictor: an MLP over the normalised image embedding, no prompt; scores on a ≈1–10 scale, τ 1.
import type { MetricKindModule } from './kind.ts';
import { validateModels } from './contract.ts';

export const aesthetic: MetricKindModule<'mlp'> = {
  scores: ['mlp'],
  defaultPreprocess: 'openai-clip',
  defaultTemperature: () => 1,
  checkModels: (models, fail) => {
    if (!models.vision && !models.full) fail('an aesthetic metric needs "vision_model" (or "clip_model")');
    if (!models.head) fail('an aesthetic metric needs "head_model" (the MLP)');
  },
  // A full export runs its text tower in the same call, and that reads token ids.
  needsTokenizer: (models) => models.full !== undefined,
  validate: (hub, spec) => validateModels(hub, spec),
  score: async (hub, spec, image) => ({ values: await hub.headScores(spec, image) }),
};
