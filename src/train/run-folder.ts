// The RUN/ folder as a whole: train.lock, held while a run goes so a second run of the same RUN/ fails at once instead
// of interleaving with it; removing what a run that could not start created; and metrics.jsonl, one JSON object per
// line (`phase` "pretrain", "train" or "validation"), cut back to the checkpoint's step when a run resumes.
import { readFile, mkdir, rmdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { acquireLock, describeHolder, LockBusyError, type Lock } from '../io/lock.ts';
import { TrainError } from './run-api.ts';

export const METRICS = 'metrics.jsonl';
const RUN_LOCK = 'train.lock';

export function jsonLine(record: Record<string, unknown>): string {
  // NaN (no decisive pair) and ±Infinity are not JSON: null.
  return `${JSON.stringify(record, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value))}\n`;
}

/** Keeps the lines an uninterrupted run would have written up to `step` (the rest came after the checkpoint). */
export async function truncateMetrics(out: string, step: number): Promise<void> {
  let text = '';
  try {
    text = await readFile(join(out, METRICS), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const kept: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let record: { phase?: unknown; step?: unknown };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      continue; // a line cut short by the interruption
    }
    if (record.phase === 'pretrain' || (typeof record.step === 'number' && record.step <= step)) kept.push(line);
  }
  await writeFileAtomic(join(out, METRICS), Buffer.from(kept.map((l) => `${l}\n`).join('')));
}

/** Two runs writing one RUN/ would interleave their metrics and checkpoints: a run holds RUN/train.lock throughout. */
export async function lockRunFolder(out: string): Promise<{ lock: Lock; created: string | undefined }> {
  const created = await mkdir(out, { recursive: true });
  try {
    return { lock: await acquireLock(join(out, RUN_LOCK), { wait: false, staleMs: Number.POSITIVE_INFINITY }), created };
  } catch (error) {
    await removeIfEmpty(out, created);
    if (!(error instanceof LockBusyError)) throw error;
    const { holder } = error;
    const since = holder.since ? ` since ${holder.since}` : '';
    const remote = holder.host !== hostname() ? `; if it no longer runs there, remove ${error.lockPath}` : '';
    const who = `${describeHolder(holder)}${since}`;
    throw new TrainError(`${out} is in use by another train run (${who}): wait for it or choose another --out${remote}`);
  }
}

/** Removes the folders from `out` up to `first` (the first one mkdir created), as long as they are empty. */
export async function removeIfEmpty(out: string, first: string | undefined): Promise<void> {
  if (first === undefined) return;
  for (let folder = resolve(out); folder.length >= first.length; folder = dirname(folder)) {
    if (
      !(await rmdir(folder).then(
        () => true,
        () => false,
      ))
    )
      return;
  }
}
