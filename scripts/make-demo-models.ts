// Writes the bundled demo models into data/models/: tiny random CLIP-contract models (not real scorers), the real
// CLIP tokenizer they are fed with, and its licence. Deterministic: every run writes the same bytes.
//
//   node --import tsx scripts/make-demo-models.ts [outDir]

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  tinyAestheticModel,
  tinyClipModel,
  tinyClipTextEncoder,
  tinyClipTextModel,
  tinyClipVisionModel,
  tinyVaeEncoder,
  type TinyClipOptions,
} from '../tools/onnx-builder/tiny-models.ts';

export const DEMO_MODELS_DIR = 'data/models';
// The real CLIP tokenizer, as the repository keeps it for the tokenizer tests.
const CLIP_FIXTURES = resolve(import.meta.dirname, '..', 'test', 'fixtures', 'clip');

/** Three independent backbones, so that demo metrics built on different ones disagree as real metrics do. */
const BACKBONE_FULL: TinyClipOptions = { seed: 1 };
const BACKBONE_SPLIT: TinyClipOptions = { seed: 2 };
const BACKBONE_SPLIT2: TinyClipOptions = { seed: 3 };
export const DEMO_EMBED_DIM = 16;

export interface DemoModel {
  file: string;
  bytes: Uint8Array;
  contract: string;
}

export function demoModels(): DemoModel[] {
  return [
    {
      file: 'demo-clip-full.onnx',
      bytes: tinyClipModel(BACKBONE_FULL),
      contract:
        'full CLIPModel export. In: input_ids int64 [text_batch_size, sequence_length], pixel_values float32 ' +
        '[image_batch_size, 3, 224, 224], attention_mask int64 [text_batch_size, sequence_length]. Out: logits_per_image ' +
        '[image_batch_size, text_batch_size] (= 100·cos), logits_per_text, text_embeds / image_embeds [*, 16] (normalised).',
    },
    {
      file: 'demo-clip-text.onnx',
      bytes: tinyClipTextModel(BACKBONE_SPLIT),
      contract:
        'CLIPTextModelWithProjection. In: input_ids, attention_mask int64 [batch_size, sequence_length]. Out: ' +
        'text_embeds float32 [batch_size, 16] (not normalised), last_hidden_state [batch_size, sequence_length, 16].',
    },
    {
      file: 'demo-clip-vision.onnx',
      bytes: tinyClipVisionModel(BACKBONE_SPLIT),
      contract:
        'CLIPVisionModelWithProjection, same backbone as demo-clip-text. In: pixel_values float32 [batch_size, 3, 224, 224]. ' +
        'Out: image_embeds float32 [batch_size, 16] (not normalised), last_hidden_state [batch_size, 257, 16].',
    },
    {
      file: 'demo-clip2-text.onnx',
      bytes: tinyClipTextModel(BACKBONE_SPLIT2),
      contract: 'as demo-clip-text, a second independent backbone.',
    },
    {
      file: 'demo-clip2-vision.onnx',
      bytes: tinyClipVisionModel(BACKBONE_SPLIT2),
      contract: 'as demo-clip-vision, the backbone of demo-clip2-text.',
    },
    {
      file: 'demo-aesthetic.onnx',
      bytes: tinyAestheticModel({ inputDim: DEMO_EMBED_DIM, seed: 4 }),
      contract:
        'LAION aesthetic MLP (16→1024→128→64→16→1). In: embedding float32 [batch_size, 16] — the L2-normalised ' +
        'image_embeds of demo-clip-vision. Out: score float32 [batch_size, 1], within 5.5 ± 4.5.',
    },
    {
      file: 'demo-sd-text-encoder.onnx',
      bytes: tinyClipTextEncoder({ seed: 5 }),
      contract:
        'SD text encoder (CLIPTextModel, causal mask only). In: input_ids int64 [batch_size, sequence_length]. ' +
        'Out: last_hidden_state float32 [batch_size, sequence_length, 16], pooler_output [batch_size, 16].',
    },
    {
      file: 'demo-sd-vae-encoder.onnx',
      bytes: tinyVaeEncoder({ seed: 6 }),
      contract:
        'SD VAE encoder (latent mean). In: pixel_values float32 [batch_size, 3, height, width] in [-1, 1]. ' +
        'Out: latent_mean float32 [batch_size, 4, height/8, width/8].',
    },
  ];
}

/** Files copied verbatim next to the models. */
export const DEMO_COPIED_FILES: readonly { from: string; file: string }[] = [
  { from: join(CLIP_FIXTURES, 'tokenizer.json'), file: 'tokenizer.json' },
  { from: join(CLIP_FIXTURES, 'LICENSE-openai-CLIP'), file: 'LICENSE-openai-CLIP' },
];

export function demoReadme(models: readonly DemoModel[]): string {
  const lines = [
    '# Demo models',
    '',
    'Tiny ONNX models with random weights, written by `scripts/make-demo-models.ts` (deterministic). They have the',
    'input/output contract of the real exports (Hugging Face CLIP towers, full CLIP, the LAION aesthetic MLP, SD',
    "encoders) so the whole pipeline runs offline, but their scores mean nothing. `tokenizer.json` is OpenAI CLIP's",
    'real BPE vocabulary (MIT, see `LICENSE-openai-CLIP`). Images: 224×224, CLIP mean/std normalisation.',
    '',
    '| file | contract |',
    '|---|---|',
    ...models.map((m) => `| \`${m.file}\` | ${m.contract} |`),
    '',
  ];
  return lines.join('\n');
}

function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function writeDemoModels(outDir: string = DEMO_MODELS_DIR): string[] {
  mkdirSync(outDir, { recursive: true });
  const models = demoModels();
  const written: string[] = [];
  for (const m of models) {
    writeAtomic(join(outDir, m.file), m.bytes);
    written.push(m.file);
  }
  for (const c of DEMO_COPIED_FILES) {
    // Read + write rather than copy: the sources are read-only and a copied mode would block the next run.
    writeAtomic(join(outDir, c.file), readFileSync(c.from));
    written.push(c.file);
  }
  writeAtomic(join(outDir, 'README.md'), demoReadme(models));
  written.push('README.md');
  return written;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const outDir = process.argv[2] ?? DEMO_MODELS_DIR;
  const files = writeDemoModels(outDir);
  console.log(`wrote ${files.length} files to ${outDir}: ${files.join(', ')}`);
}
