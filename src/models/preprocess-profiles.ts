// The preprocessing profiles a metric JSON can name in "preprocess": each is one reference implementation's way of
// turning an image into the tower's pixel tensor, reproduced exactly (docs/design.md §4). A metric scored with
// another profile than its reference's is a different metric, so the profile is part of what `label` records.
export const PREPROCESS_PROFILES = [
  /** Hugging Face CLIPImageProcessor: PIL bicubic to the short side, crop offset floored (PickScore, HF CLIP). */
  'hf-clip',
  /** OpenAI clip.load / open_clip's val transform: PIL bicubic, torchvision CenterCrop (offset rounded). */
  'openai-clip',
  /** HPSv2's val transform: ToTensor first, torchvision bicubic resize with antialiasing on the float tensor. */
  'hpsv2',
  /** The same as torchvision < 0.17 ran it: bicubic (a = −0.75) on the float tensor without antialiasing. */
  'hpsv2-legacy',
] as const;

export type PreprocessProfile = (typeof PREPROCESS_PROFILES)[number];
