// What a process leaves half-written, and removing it: the temporary files and staging folders it is writing and the
// locks it holds are registered here while they exist, so that a command stopped by a signal removes them before it
// exits; and what a killed process (SIGKILL, power loss) left behind is recognised by its name and swept by the next
// run. Names carry a tag of the host and the writer's pid and start time, so a sweep on a filesystem shared by several
// machines never removes a file that a live process elsewhere is still writing.
import { lstatSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processStartTime, writerAlive } from './process-identity.ts';

/** Eight hex digits naming this host in leftover names (a host name may hold characters a file name should not). */
export const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

const ownStart = processStartTime(process.pid);

/** `<host tag>.<pid>[-<start time>]`: who writes a temporary file, in its name. */
export const WRITER_TAG = `${HOST_TAG}.${process.pid}${ownStart === null ? '' : `-${ownStart}`}`;

// A leftover of another host cannot be judged by its pid; no write takes this long, so it is dead.
const FOREIGN_LEFTOVER_MS = 24 * 60 * 60 * 1000;
// Lock-making files (`<lock>.<pid>.<hex>.new|broken`) live for microseconds; older ones are a killed writer's.
const LOCK_LEFTOVER_MS = 10 * 60 * 1000;

/** `.<name>.<host>.<pid>[-<start>].<hex>.tmp`: a temporary file of writeFileAtomic. */
const TEMP_FILE = /^\..+\.([0-9a-f]{8})\.(\d+)(?:-(\d+))?\.[0-9a-f]{8}\.tmp$/;
/** `.<name>.<pid>.<hex>.tmp`: a temporary file of earlier versions, without a host tag. */
const LEGACY_TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/;
const LOCK_FILE_LEFTOVER = /\.lock\.\d+\.[0-9a-f]{8}\.(new|broken)$/;

export function isTempFileName(name: string): boolean {
  return TEMP_FILE.test(name) || LEGACY_TEMP_FILE.test(name);
}

function isLeftoverName(name: string): boolean {
  return isTempFileName(name) || LOCK_FILE_LEFTOVER.test(name);
}

interface Held {
  /** Removes it synchronously, as a signal handler must. */
  remove(): void;
}

const held = new Set<Held>();

/** Registers something to remove if the process is stopped by a signal; the returned function unregisters it. */
export function holdUntilDone(remove: () => void): () => void {
  const entry: Held = { remove };
  held.add(entry);
  return () => {
    held.delete(entry);
  };
}

/** A temporary file being written. */
export function holdTempFile(path: string): () => void {
  return holdUntilDone(() => rmSync(path, { force: true }));
}

/** A lock this process holds: removed only while it still holds `content` (one broken and retaken is another's). */
export function holdLock(path: string, content: string): () => void {
  return holdUntilDone(() => {
    let now: string | null = null;
    try {
      now = readFileSync(path, 'utf8');
    } catch {
      return;
    }
    if (now === content) rmSync(path, { force: true });
  });
}

/**
 * A staging folder of replaceFolder and, once the old folder is moved aside, that copy: a stop between the two
 * renames puts the old folder back, so the target is never missing; a stop after them removes the old copy.
 */
export function holdStaging(staging: string, aside: string, target: string): () => void {
  return holdUntilDone(() => {
    rmSync(staging, { recursive: true, force: true });
    if (!exists(aside)) return;
    if (exists(target)) rmSync(aside, { recursive: true, force: true });
    else renameSync(aside, target);
  });
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes everything registered, newest first; what fails to go is left for the next run's sweep. */
export function removeHeldSync(): void {
  for (const entry of [...held].reverse()) {
    try {
      entry.remove();
    } catch {
      // Best effort: the process is stopping, and sweepLeftovers recognises the rest.
    }
    held.delete(entry);
  }
}

/** Whether a leftover named `name`, last modified at `mtimeMs`, belongs to no process that could still write it. */
function isDead(name: string, mtimeMs: number, now: number): boolean {
  const tagged = TEMP_FILE.exec(name);
  if (tagged) {
    if (tagged[1] !== HOST_TAG) return now - mtimeMs > FOREIGN_LEFTOVER_MS;
    return !writerAlive(Number(tagged[2]), tagged[3] ?? null);
  }
  const legacy = LEGACY_TEMP_FILE.exec(name);
  if (legacy) return now - mtimeMs > FOREIGN_LEFTOVER_MS || !writerAlive(Number(legacy[1]), null);
  if (LOCK_FILE_LEFTOVER.test(name)) return now - mtimeMs > LOCK_LEFTOVER_MS;
  return false;
}

/**
 * Removes the temporary files and lock-making files under `dir` (its folders too, not following links) that no live
 * process is writing. Returns what it removed, relative to `dir`.
 */
export async function sweepLeftovers(dir: string, depth = 4): Promise<string[]> {
  const removed: string[] = [];
  const now = Date.now();
  const walk = async (folder: string, prefix: string, left: number): Promise<void> => {
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (left > 0) await walk(path, `${prefix}${entry.name}/`, left - 1);
        continue;
      }
      // The name decides first: a folder of 50k unit records costs a listing, not 50k stats.
      if (!entry.isFile() || !isLeftoverName(entry.name)) continue;
      const info = await lstat(path).catch(() => null);
      if (info === null || !isDead(entry.name, info.mtimeMs, now)) continue;
      await rm(path, { force: true });
      removed.push(`${prefix}${entry.name}`);
    }
  };
  await walk(dir, '', depth);
  return removed;
}
