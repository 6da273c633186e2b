// The checkpoint-<step>/ folders of RUN/ and `latest`, a one-line pointer to the newest complete one. A checkpoint is
// built in a staging folder and swapped into place (replaceFolder) before `latest` is replaced (writeFileAtomic), so
// `latest` always names a whole checkpoint: the trainer state (model, reference, AdamW moments, generator words; see
// checkpoint.ts), run.json (the loader's position and the config) and, with a moving reference, anchor.safetensors.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleStaging, replaceFolder, writeFileAtomic, type ReplaceFolderOptions } from '../io/atomic.ts';
import { JsonFileError, readJsonFile } from '../io/json-file.ts';
import { readSafetensors, writeSafetensors, type TensorDict } from '../io/safetensors.ts';
import { isCheckpoint, loadCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import type { LoaderState } from './pair-order.ts';
import { describeError, TrainError } from './run-api.ts';

const RUN_FORMAT = 'balanced-dpo/train-run@1';
const LATEST = 'latest';

export interface RunState {
  format: typeof RUN_FORMAT;
  step: number;
  rule: string;
  config: TrainConfig;
  loader: LoaderState;
  hasAnchor: boolean;
}

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

export async function readLatest(out: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(join(out, LATEST), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const name = text.trim();
  if (!/^checkpoint-\d+$/.test(name) || !(await isCheckpoint(join(out, name)))) {
    throw new TrainError(`${join(out, LATEST)} names "${name}", which is not a complete checkpoint in ${out}`);
  }
  return name;
}

async function pruneCheckpoints(out: string, keep: number | null, latest: string): Promise<void> {
  if (keep === null) return;
  const steps = (await readdir(out))
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const step of steps.slice(keep)) {
    if (checkpointName(step) !== latest) await rm(join(out, checkpointName(step)), { recursive: true, force: true });
  }
}

/** checkpoint-<step> folders in a RUN/ this run holds the lock of are the run's own, whatever state they are in. */
const CHECKPOINT_FOLDER: ReplaceFolderOptions = {
  isOurs: async () => true,
  refuse: (target, why) => new TrainError(`cannot write the checkpoint ${target}: ${why}`),
};

/** Checkpoint folders an interrupted run did not finish building or swapping in (`.checkpoint-<step>.tmp-<pid>`: earlier versions). */
export async function removeStaleTemporaries(out: string): Promise<void> {
  for (const name of await readdir(out)) {
    if (/^\.checkpoint-\d+\.tmp-/.test(name)) await rm(join(out, name), { recursive: true, force: true });
    const staging = /^\.(checkpoint-\d+)\.\d+(?:-\d+)?(?:\.[0-9a-f]+)?\.(?:tmp|old)$/.exec(name);
    if (staging) await removeStaleStaging(join(out, staging[1]!));
  }
}

/** What a checkpoint holds besides what the run state says: the trainer's state and, with a moving reference, the anchor. */
export interface CheckpointContents {
  state: Omit<RunState, 'format'>;
  trainer: Checkpoint;
  anchor: TensorDict | null;
}

/**
 * Writes checkpoint-<step> whole, points `latest` at it and prunes the older ones beyond `keep`.
 * Returns the folder's name.
 */
export async function writeRunCheckpoint(out: string, contents: CheckpointContents, keep: number | null): Promise<string> {
  const name = checkpointName(contents.state.step);
  await replaceFolder(
    join(out, name),
    async (staging) => {
      if (contents.anchor) await writeSafetensors(join(staging, 'anchor.safetensors'), contents.anchor, { format: 'pt', step: '0' });
      const state: RunState = { format: RUN_FORMAT, ...contents.state };
      await writeFile(join(staging, 'run.json'), `${JSON.stringify(state, null, 2)}\n`);
      // trainer.json, written last by saveCheckpoint, marks the folder complete.
      await saveCheckpoint(staging, contents.trainer);
    },
    CHECKPOINT_FOLDER,
  );
  await writeFileAtomic(join(out, LATEST), Buffer.from(`${name}\n`));
  await pruneCheckpoints(out, keep, name);
  return name;
}

export interface Resumed {
  name: string;
  state: RunState;
  checkpoint: Checkpoint;
  anchor: TensorDict | null;
}

export async function loadResumed(out: string, name: string): Promise<Resumed> {
  const dir = join(out, name);
  let state: RunState;
  try {
    state = (await readJsonFile(join(dir, 'run.json'))) as RunState;
  } catch (error) {
    throw new TrainError(error instanceof JsonFileError ? error.message : `${dir}: no readable run.json (${describeError(error)})`);
  }
  if (state.format !== RUN_FORMAT) throw new TrainError(`${dir}/run.json: format ${String(state.format)}, expected ${RUN_FORMAT}`);
  const checkpoint = await loadCheckpoint(dir);
  const anchor = state.hasAnchor ? (await readSafetensors(join(dir, 'anchor.safetensors'))).tensors : null;
  return { name, state, checkpoint, anchor };
}
