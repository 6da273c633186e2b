// What a metric kind is: the one place that says which models a kind needs, how they are checked, how its score is
// computed from the embeddings and which τ it has by default. registry.ts lists the kinds.
import type { MetricSpec } from '../metric-spec.ts';
import type { Embeddings, ModelHub } from '../towers.ts';
import type { PreprocessProfile } from '../preprocess-profiles.ts';

export interface PromptText {
  id: string;
  text: string;
}

export interface KindScores {
  /** One score per image of the batch. */
  values: ArrayLike<number>;
  /** The text embeddings the scores read, one per image, so that a non-finite one is named as the cause. */
  texts?: Float32Array[];
}

export interface MetricKindModule<Score extends string = string> {
  /** Score formulas the kind accepts in "score"; the first is its default. */
  readonly scores: readonly Score[];
  /** The preprocessing of the kind's reference code, when the JSON names no "preprocess". */
  readonly defaultPreprocess: PreprocessProfile;
  /** τ of p = σ((s_a − s_b)/τ) when the JSON gives none (docs/design.md §5). */
  defaultTemperature(score: string): number;
  /** Fails with a message when the models of the JSON cannot make this kind of metric. */
  checkModels(models: MetricSpec['models'], fail: (message: string) => never): void;
  /** Whether these models read token ids, so that the JSON must name a tokenizer. */
  needsTokenizer(models: MetricSpec['models']): boolean;
  /** Loads the metric's ONNX files and checks them against the contract; returns the image tower's provider. */
  validate(hub: ModelHub, spec: MetricSpec): Promise<string>;
  /** Scores of a batch from its normalised image embeddings. */
  score(hub: ModelHub, spec: MetricSpec, image: Embeddings, prompts: readonly PromptText[]): Promise<KindScores>;
}
