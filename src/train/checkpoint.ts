// A training checkpoint is a directory: model.safetensors (every parameter; loadable alone as the weights),
// reference.safetensors (the reference copy, when there is one), optimizer.safetensors (AdamW moments) and
// trainer.json (step, generator state, config, options). trainer.json is written last, so its presence means the
// directory is complete; it records the sha256 of every other file of the directory, which a load checks first
// (a flipped bit in a weight file is a valid file holding a wrong model, and would otherwise resume silently).
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { sha256OfFile } from '../io/file-hash.ts';
import { isTempFileName } from '../io/leftovers.ts';
import { readJsonFile } from '../io/json-file.ts';
import type { DenoiserConfig } from './denoiser.ts';
import type { RngState } from './rng.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { TrainerOptions, TrainerState } from './trainer-step.ts';
import { BdpoError } from '../core/errors.ts';

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
  /** sha256 of each file of the directory written before trainer.json (absent in checkpoints of older versions). */
  files?: Record<string, string>;
}

export class CheckpointError extends BdpoError {}

const TRAINER_JSON = 'trainer.json';

/**
 * Every file of the directory but trainer.json and temporaries (the atomic writer's, and the `.tmp-` ones earlier
 * versions left): ours, and what the caller put there before us.
 */
async function checkpointFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name !== TRAINER_JSON && !isTempFileName(entry.name) && !entry.name.includes('.tmp-'))
    .map((entry) => entry.name)
    .sort();
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
    files: {},
  };
  for (const name of await checkpointFiles(dir)) json.files![name] = await sha256OfFile(join(dir, name));
  await writeFileAtomic(join(dir, TRAINER_JSON), Buffer.from(`${JSON.stringify(json, null, 2)}\n`));
}

export async function isCheckpoint(dir: string): Promise<boolean> {
  return stat(join(dir, 'trainer.json')).then(
    (s) => s.isFile(),
    () => false,
  );
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const trainerPath = join(dir, TRAINER_JSON);
  let json: TrainerJson;
  try {
    json = (await readJsonFile(trainerPath)) as TrainerJson;
  } catch (error) {
    throw new CheckpointError(`${dir}: not a training checkpoint (${error instanceof Error ? error.message : String(error)})`);
  }
  if (typeof json !== 'object' || json === null) throw new CheckpointError(`${trainerPath}: not a JSON object`);
  if (json.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${dir}: checkpoint format ${String(json.format)}, expected ${CHECKPOINT_FORMAT}`);
  }
  await verifyFiles(dir, json.files);
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

async function verifyFiles(dir: string, files: Record<string, string> | undefined): Promise<void> {
  if (files === undefined) return;
  if (typeof files !== 'object' || files === null) throw new CheckpointError(`${join(dir, TRAINER_JSON)}: "files" is not an object`);
  for (const [name, expected] of Object.entries(files)) {
    const path = join(dir, name);
    let actual: string;
    try {
      actual = await sha256OfFile(path);
    } catch (error) {
      throw new CheckpointError(`${path}: recorded in ${TRAINER_JSON} but unreadable (${(error as Error).message})`);
    }
    if (actual !== expected) {
      throw new CheckpointError(
        `${path}: sha256 ${actual} differs from the ${expected} recorded when the checkpoint was written: ` +
          'the file is damaged, resume from another checkpoint',
      );
    }
  }
}
