// The checks and the cosine path shared by the CLIP-family kinds: a full CLIP export, or separate towers.
import { checkSameWidth, cosine, requireOutputs, type Embeddings, type ModelHub } from '../towers.ts';
import { MetricSpecError } from '../../core/errors.ts';
import type { MetricSpec } from '../metric-spec.ts';
import type { KindScores, PromptText } from './kind.ts';

/** A text–image metric needs both towers, as one export or two. */
export function requireTextAndImageTowers(models: MetricSpec['models'], fail: (message: string) => never): void {
  if (!models.full && !(models.text && models.vision)) {
    fail('needs "clip_model" (one full CLIP export) or both "text_model" and "vision_model"');
  }
}

/** Every model the spec names, checked before any image is read; the provider reported is the image tower's. */
export async function validateModels(hub: ModelHub, spec: MetricSpec): Promise<string> {
  const providers: string[] = [];
  if (spec.models.full) {
    const s = await hub.session(spec.models.full);
    requireOutputs(s, spec.models.full, ['image_embeds', 'text_embeds']);
    providers.push(`${s.provider} (${s.providerReason})`);
  } else {
    const vision = await hub.session(spec.models.vision!);
    requireOutputs(vision, spec.models.vision!, ['image_embeds']);
    providers.push(`${vision.provider} (${vision.providerReason})`);
    if (spec.models.text) requireOutputs(await hub.session(spec.models.text), spec.models.text, ['text_embeds']);
  }
  if (spec.models.head) {
    const head = await hub.session(spec.models.head);
    if (head.inputNames.length !== 1) throw new MetricSpecError(`${spec.models.head}: the head must take one input`);
  }
  if (spec.tokenizer) await hub.tokenizer(spec);
  return providers[0]!;
}

/** Scores that are a function of cos(text, image) of each image with its own prompt. */
export async function cosineScores(
  hub: ModelHub,
  spec: MetricSpec,
  image: Embeddings,
  prompts: readonly PromptText[],
  fromCosine: (cos: number) => number,
): Promise<KindScores> {
  const texts = await hub.textEmbeddings(spec, prompts);
  checkSameWidth(spec, image, texts);
  const values = prompts.map((_, i) => fromCosine(cosine(image.data, i * image.dim, texts[i]!, image.dim)));
  return { values, texts };
}
