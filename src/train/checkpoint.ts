// A training checkpoint is a directory: model.safetensors (every parameter; loadable alone as the weights),
// reference.safetensors (the reference copy, when there is one), optimizer.safetensors (AdamW moments) and
// trainer.json (step, generator state, config, options). trainer.json is written last, so its presence means the
// directory is complete.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DenoiserConfig } from './denoiser.ts';
import type { RngState } from './rng.ts';
import { readSafetensors, writeSafetensors } from './safetensors.ts';
import type { TrainerOptions, TrainerState } from './trainer-step.ts';

export const CHECKPOINT_FORMAT = 'balanced-dpo/train-checkpoint@1';

export interface Checkpoint {
  config: DenoiserConfig;
  options: TrainerOptions;
  state: TrainerState;
}

interface TrainerJson {
  format: string;
  step: number;
  rng: RngState;
  optimizerStep: number;
  hasReference: boolean;
  config: DenoiserConfig;
  options: TrainerOptions;
}

export async function saveCheckpoint(dir: string, checkpoint: Checkpoint): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { config, options, state } = checkpoint;
  const metadata = { format: 'pt', step: String(state.step), config: JSON.stringify(config) };
  await writeSafetensors(join(dir, 'model.safetensors'), state.model, metadata);
  if (state.reference) await writeSafetensors(join(dir, 'reference.safetensors'), state.reference, metadata);
  await writeSafetensors(join(dir, 'optimizer.safetensors'), state.optimizer.moments, { step: String(state.optimizer.step) });
  const json: TrainerJson = {
    format: CHECKPOINT_FORMAT,
    step: state.step,
    rng: state.rng,
    optimizerStep: state.optimizer.step,
    hasReference: state.reference !== null,
    config,
    options,
  };
  const temporary = join(dir, `trainer.json.tmp-${process.pid}`);
  await writeFile(temporary, `${JSON.stringify(json, null, 2)}\n`);
  await rename(temporary, join(dir, 'trainer.json'));
}

export async function isCheckpoint(dir: string): Promise<boolean> {
  return stat(join(dir, 'trainer.json')).then(
    (s) => s.isFile(),
    () => false,
  );
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  let json: TrainerJson;
  try {
    json = JSON.parse(await readFile(join(dir, 'trainer.json'), 'utf8')) as TrainerJson;
  } catch (error) {
    throw new Error(`${dir}: not a training checkpoint (${error instanceof Error ? error.message : String(error)})`);
  }
  if (json.format !== CHECKPOINT_FORMAT) throw new Error(`${dir}: checkpoint format ${json.format}, expected ${CHECKPOINT_FORMAT}`);
  const model = await readSafetensors(join(dir, 'model.safetensors'));
  const reference = json.hasReference ? await readSafetensors(join(dir, 'reference.safetensors')) : null;
  const optimizer = await readSafetensors(join(dir, 'optimizer.safetensors'));
  return {
    config: json.config,
    options: json.options,
    state: {
      step: json.step,
      rng: json.rng,
      model: model.tensors,
      reference: reference?.tensors ?? null,
      optimizer: { step: json.optimizerStep, moments: optimizer.tensors },
    },
  };
}
