// Exclusive lock files: the manifest's (held for a read-modify-write, waited for) and a training run folder's (held
// for the whole run, refused at once). A lock names its writer by host, pid and the process's start time, so a lock
// left by a killed process is recognised even after its pid was given to another process.
import { link, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { BdpoError } from '../core/errors.ts';
import { holdLock, holdTempFile } from './leftovers.ts';
import { pidAlive, processStartTime, writerAlive } from './process-identity.ts';

export { processStartTime, writerAlive };

export class LockBusyError extends BdpoError {
  override name = 'LockBusyError';
  constructor(
    readonly lockPath: string,
    readonly holder: LockHolder,
    message: string,
  ) {
    super(message);
  }
}

export interface LockHolder {
  host: string;
  pid: number;
  /** The holder's start time in clock ticks since boot (/proc/<pid>/stat); null where /proc is not readable. */
  start: string | null;
  /** Random per acquisition: tells a lock from a newer one at the same path. */
  token: string;
  since: string;
}

const ownStart = processStartTime(process.pid);

function parseHolder(text: string): LockHolder | null {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (
      typeof value === 'object' &&
      value !== null &&
      typeof value.host === 'string' &&
      Number.isInteger(value.pid) &&
      (value.pid as number) > 0 &&
      (typeof value.start === 'string' || value.start === null) &&
      typeof value.token === 'string'
    ) {
      return { host: value.host, pid: value.pid as number, start: value.start, token: value.token, since: String(value.since ?? '') };
    }
  } catch {
    // not ours: judged below
  }
  return null;
}

/** The old "host pid" lock line, written by versions before the lock named its writer's start time. */
function parseLegacy(text: string): { host: string; pid: number } | null {
  const match = /^(\S+) (\d+)\n?$/.exec(text);
  return match ? { host: match[1]!, pid: Number(match[2]) } : null;
}

export function describeHolder(holder: { host: string; pid: number }): string {
  return `host ${holder.host}, pid ${holder.pid}`;
}

type Verdict = { kind: 'held'; holder: LockHolder; ageRule: boolean } | { kind: 'broken'; reason: string } | { kind: 'gone' };

const STALE_MS = 60_000;
/** A lock file is written whole (linked into place), but one made by open-for-write may be seen empty for a moment. */
const EMPTY_GRACE_MS = 2_000;

const staleReason = (holder: { host: string; pid: number }, staleMs: number): string =>
  `held by ${describeHolder(holder)} for over ${Math.round(staleMs / 1000)} s`;

async function judge(lockPath: string, staleMs: number): Promise<{ verdict: Verdict; text: string }> {
  let text: string;
  let ageMs: number;
  try {
    text = await readFile(lockPath, 'utf8');
    ageMs = Date.now() - (await stat(lockPath)).mtimeMs;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { verdict: { kind: 'gone' }, text: '' };
    throw error;
  }
  const here = hostname();
  const holder = parseHolder(text);
  if (holder) {
    if (holder.host !== here) {
      // Another host of a shared filesystem: its processes cannot be seen from here, only the lock's age tells.
      if (ageMs > staleMs) return { verdict: { kind: 'broken', reason: staleReason(holder, staleMs) }, text };
      return { verdict: { kind: 'held', holder, ageRule: true }, text };
    }
    if (!pidAlive(holder.pid)) return { verdict: { kind: 'broken', reason: `pid ${holder.pid} that took it has exited` }, text };
    if (!writerAlive(holder.pid, holder.start)) {
      return { verdict: { kind: 'broken', reason: `pid ${holder.pid} is now another process than the one that took it` }, text };
    }
    return { verdict: { kind: 'held', holder, ageRule: holder.start === null }, text };
  }
  const legacy = parseLegacy(text);
  if (legacy && legacy.host !== here) {
    const asHolder: LockHolder = { ...legacy, start: null, token: '', since: '' };
    if (ageMs > staleMs) return { verdict: { kind: 'broken', reason: staleReason(legacy, staleMs) }, text };
    return { verdict: { kind: 'held', holder: asHolder, ageRule: true }, text };
  }
  if (legacy) {
    // Every process of this version names its start time: a bare "host pid" here cannot be a live holder of ours.
    const reason = `it names pid ${legacy.pid} without the start time every lock of this version records`;
    return { verdict: { kind: 'broken', reason }, text };
  }
  if (text === '' && ageMs < EMPTY_GRACE_MS) {
    return { verdict: { kind: 'held', holder: { host: '?', pid: 0, start: null, token: '', since: '' }, ageRule: true }, text };
  }
  return { verdict: { kind: 'broken', reason: `its content is not a lock (${JSON.stringify(text.slice(0, 40))})` }, text };
}

/** Removes the lock only if it still holds what was judged, so a lock just taken by another process survives. */
async function breakLock(lockPath: string, judged: string): Promise<void> {
  const aside = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.broken`;
  try {
    await rename(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const moved = await readFile(aside, 'utf8').catch(() => judged);
  if (moved !== judged) await link(aside, lockPath).catch(() => undefined);
  await rm(aside, { force: true });
}

/** Creates the lock file with its content in one step: false when it exists. */
async function tryCreate(lockPath: string, content: string): Promise<boolean> {
  const temp = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.new`;
  const unhold = holdTempFile(temp);
  await writeFile(temp, content);
  try {
    await link(temp, lockPath);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
    // A filesystem without hard links: exclusive create, then write (readers allow an empty lock a moment).
    try {
      await writeFile(lockPath, content, { flag: 'wx' });
      return true;
    } catch (inner) {
      if ((inner as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw inner;
    }
  } finally {
    await rm(temp, { force: true });
    unhold();
  }
}

export interface LockOptions {
  /** Wait for a live holder (true) or fail at once with LockBusyError (false). */
  wait: boolean;
  /** What the lock guards, for messages ("the manifest", "the run folder RUN"). */
  what?: string;
  /** Told, once, what is waited on after `noticeMs`, and of every lock broken. */
  onNotice?: (message: string) => void;
  noticeMs?: number;
  staleMs?: number;
}

let defaultNotice: ((message: string) => void) | null = null;

/** Where notices go for locks taken without an `onNotice` of their own (the CLI sends them to stderr). */
export function setLockNoticeListener(listener: ((message: string) => void) | null): void {
  defaultNotice = listener;
}

export interface Lock {
  path: string;
  holder: LockHolder;
  release(): Promise<void>;
  /** Renews the lock's modification time, so another host does not take a long-held lock for a stale one. */
  touch(): Promise<void>;
}

export async function acquireLock(lockPath: string, options: LockOptions): Promise<Lock> {
  const notice = options.onNotice ?? defaultNotice ?? (() => {});
  const noticeMs = options.noticeMs ?? 1_500;
  const staleMs = options.staleMs ?? STALE_MS;
  const holder: LockHolder = {
    host: hostname(),
    pid: process.pid,
    start: ownStart,
    token: randomBytes(8).toString('hex'),
    since: new Date().toISOString(),
  };
  const content = `${JSON.stringify(holder)}\n`;
  const began = Date.now();
  let noticed = false;
  for (let attempt = 0; ; attempt++) {
    if (await tryCreate(lockPath, content)) break;
    const { verdict, text } = await judge(lockPath, staleMs);
    if (verdict.kind === 'gone') continue;
    if (verdict.kind === 'broken') {
      notice(`removed the lock ${lockPath}: ${verdict.reason}`);
      await breakLock(lockPath, text);
      continue;
    }
    const what = options.what ? ` (${options.what})` : '';
    if (!options.wait) {
      throw new LockBusyError(
        lockPath,
        verdict.holder,
        `${lockPath}${what} is locked by ${describeHolder(verdict.holder)}` +
          `${verdict.holder.since ? ` since ${verdict.holder.since}` : ''}`,
      );
    }
    if (!noticed && Date.now() - began >= noticeMs) {
      noticed = true;
      const until = verdict.ageRule ? `; it is taken over once ${Math.round(staleMs / 1000)} s old` : '';
      notice(`waiting for the lock ${lockPath}${what}, held by ${describeHolder(verdict.holder)}${until}`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(5 + attempt * 5, 100)));
  }
  // A command stopped by a signal removes the lock on its way out instead of leaving it for the next run to break.
  const unhold = holdLock(lockPath, content);
  return {
    path: lockPath,
    holder,
    release: async () => {
      unhold();
      // Only our own lock: one broken by another process and retaken is theirs now.
      const now = await readFile(lockPath, 'utf8').catch(() => null);
      if (now === content) await rm(lockPath, { force: true });
    },
    touch: async () => {
      const now = new Date();
      await utimes(lockPath, now, now).catch(() => undefined);
    },
  };
}

export async function withLock<T>(lockPath: string, options: LockOptions, action: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(lockPath, options);
  try {
    return await action();
  } finally {
    await lock.release();
  }
}
