// Every file and folder a stage writes appears whole or not at all: write beside the target, fsync, rename.
import { lstat, open, readdir, rename, rm, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { processStartTime, writerAlive } from './process-identity.ts';
import { holdStaging, holdTempFile, WRITER_TAG } from './leftovers.ts';

const ownStartTime = processStartTime(process.pid);

/** `.<name>.<host>.<pid>-<start>.<hex>.tmp` beside the target: a dead writer's leftover is known by its name. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${WRITER_TAG}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes every byte of the chunks at the handle's position (a write may take fewer bytes than offered). */
export async function writeChunks(handle: FileHandle, chunks: Uint8Array | Iterable<Uint8Array>): Promise<void> {
  const list = chunks instanceof Uint8Array ? [chunks] : chunks;
  for (const chunk of list) {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
      offset += bytesWritten;
    }
  }
}

/**
 * The one way a file is put in place: `write` fills a temporary file beside `target` through its handle; the file is
 * flushed, renamed over the target, and the folder flushed so the rename itself survives a crash. On failure the
 * temporary file is removed and the target is untouched. The target's folder must exist.
 */
export async function writeStreamAtomic(target: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const temp = tempPathFor(target);
  const unhold = holdTempFile(temp);
  try {
    const handle = await open(temp, 'w');
    try {
      await write(handle);
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    try {
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  } finally {
    unhold();
  }
  await syncFolder(dirname(target));
}

/** Writes the chunks to a temporary file in the target's folder (made if missing), then renames it over the target. */
export async function writeFileAtomic(target: string, chunks: Uint8Array | Iterable<Uint8Array>): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  await writeStreamAtomic(target, (handle) => writeChunks(handle, chunks));
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The staging and set-aside folders `replaceFolder` makes beside `target`: `.<name>.<pid>[-<start>][.<hex>].tmp|old`
 * (the bare `.<name>.<pid>.tmp` is what earlier versions left).
 */
function ownFolderPattern(target: string): RegExp {
  return new RegExp(`^\\.${escapeRegExp(basename(target))}\\.(\\d+)(?:-(\\d+))?(?:\\.[0-9a-f]+)?\\.(tmp|old)$`);
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Some file systems refuse to fsync a folder; the rename has happened then and is as durable as they allow. */
async function syncFolder(dir: string): Promise<void> {
  await syncPath(dir).catch(() => undefined);
}

/** Flushes every file under `dir`, then the folders themselves, so a rename publishes data that is on disk. */
async function syncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(path);
    else if (entry.isFile()) await syncPath(path);
  }
  await syncPath(dir);
}

/**
 * Removes the staging folders of `target` left by processes that no longer run (killed, or out of disk space before
 * they could clean up). A set-aside old copy whose swap never finished is put back when the target is missing.
 */
export async function removeStaleStaging(target: string): Promise<void> {
  const parent = dirname(target);
  const pattern = ownFolderPattern(target);
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    const match = pattern.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    if (writerAlive(pid, match[2] ?? null)) continue;
    const path = join(parent, name);
    if (
      match[3] === 'old' &&
      !(await lstat(target).then(
        () => true,
        () => false,
      ))
    ) {
      await rename(path, target).catch(() => undefined);
      continue;
    }
    await rm(path, { recursive: true, force: true });
  }
}

export interface ReplaceFolderOptions {
  /** Whether an existing folder at the target is one this tool wrote, and so may be replaced. */
  isOurs: (dir: string) => Promise<boolean>;
  /** The error for a target that is not ours to replace. */
  refuse: (target: string, why: string) => Error;
}

/**
 * Builds a folder and puts it at `target` whole: `build` writes into a staging folder beside the target; its files
 * and the folder are flushed; the previous folder (which must be ours) is moved aside, the new one renamed in, the
 * old one removed. On failure the staging folder is removed and the previous folder stays. Nothing but the target,
 * its staging folder and its set-aside copy is touched.
 */
export async function replaceFolder<T>(target: string, build: (staging: string) => Promise<T>, options: ReplaceFolderOptions): Promise<T> {
  await removeStaleStaging(target);
  const existing = await lstat(target).catch(() => null);
  if (existing) {
    if (!existing.isDirectory()) throw options.refuse(target, 'it is not a folder');
    if (!(await options.isOurs(target))) throw options.refuse(target, 'it holds files this tool did not write');
  }
  const suffix = `${process.pid}${ownStartTime === null ? '' : `-${ownStartTime}`}.${randomBytes(4).toString('hex')}`;
  const staging = join(dirname(target), `.${basename(target)}.${suffix}.tmp`);
  const aside = join(dirname(target), `.${basename(target)}.${suffix}.old`);
  const unhold = holdStaging(staging, aside, target);
  await mkdir(staging, { recursive: true });
  let result: T;
  let movedAside = false;
  try {
    result = await build(staging);
    await syncTree(staging);
    movedAside = await rename(target, aside).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return false;
        throw error;
      },
    );
    await rename(staging, target);
  } catch (error) {
    if (
      movedAside &&
      !(await lstat(target).then(
        () => true,
        () => false,
      ))
    )
      await rename(aside, target).catch(() => undefined);
    await rm(staging, { recursive: true, force: true });
    unhold();
    throw error;
  }
  await syncFolder(dirname(target));
  if (movedAside) await rm(aside, { recursive: true, force: true });
  unhold();
  return result;
}
