// Untrusted image paths of the HPD lists: where an entry's path may point (it must stay under <root>/<split>/ as
// written and under the dataset root once symlinks are resolved), and the bounded reads of the files it names.
import { constants } from 'node:fs';
import { lstat, open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { join, posix, sep, win32 } from 'node:path';
import type { RejectReason } from '../core/schema.ts';
import { Limiter } from '../core/limiter.ts';
import { errorCode } from '../core/errors.ts';

const READS_IN_FLIGHT = 8;

export type PathCheck = { ok: true; candidates: string[] } | { ok: false; reason: RejectReason; detail: string };

/**
 * Where an entry's image path may point, relative to <root>/<split>/, without touching the disk. Absolute paths and
 * paths whose normalised form climbs out of the split folder are refused. A path that already starts with
 * `<split>/` is tried as written, then without that prefix.
 */
export function checkEntryPath(split: string, raw: unknown): PathCheck {
  if (typeof raw !== 'string' || raw === '') return malformed('path is not a non-empty string');
  if (raw.includes('\0')) return malformed('path contains a NUL byte');
  // Backslashes are separators where the data was made or read on Windows: treat them so everywhere.
  const path = raw.replace(/\\/g, '/');
  if (posix.isAbsolute(path) || win32.isAbsolute(raw)) {
    return { ok: false, reason: 'path_outside_root', detail: 'absolute path' };
  }
  const normal = posix.normalize(path);
  if (normal === '..' || normal.startsWith('../')) {
    return { ok: false, reason: 'path_outside_root', detail: `climbs out of ${split}/` };
  }
  if (normal === '.' || normal === './') return malformed('path names the folder, not a file');
  const candidates = [normal];
  const prefix = `${split}/`;
  if (normal.startsWith(prefix) && normal.length > prefix.length) candidates.push(normal.slice(prefix.length));
  return { ok: true, candidates };
}

function malformed(detail: string): PathCheck {
  return { ok: false, reason: 'malformed_entry', detail };
}

export type FileRead = { ok: true; bytes: Uint8Array; ref: string } | { ok: false; reason: RejectReason; detail: string };

/** Reads image files under the dataset root, refusing what resolves outside it and what is too large to read. */
export class ImageFiles {
  private readonly containers = new Map<string, Promise<string[]>>();

  private constructor(
    private readonly root: string,
    private readonly realRoot: string,
    private readonly maxBytes: number,
  ) {}

  static async open(root: string, maxBytes: number): Promise<ImageFiles> {
    return new ImageFiles(root, await realpath(root), maxBytes);
  }

  /**
   * A file may resolve anywhere under the root, or under the real location of its base folder (train/, test/,
   * benchmark_imgs/), which users put on another disk with one symlink.
   */
  private allowed(base: string): Promise<string[]> {
    let found = this.containers.get(base);
    if (!found) {
      found = realpath(join(this.root, base)).then(
        (real) => [this.realRoot, real],
        () => [this.realRoot],
      );
      this.containers.set(base, found);
    }
    return found;
  }

  /** The first candidate (relative to <root>/<base>/) that exists, checked and read; never throws. */
  async read(base: string, candidates: string[]): Promise<FileRead> {
    let chosen: string | undefined;
    for (const candidate of candidates) {
      if (
        await lstat(join(this.root, base, candidate)).then(
          () => true,
          () => false,
        )
      ) {
        chosen = candidate;
        break;
      }
    }
    if (chosen === undefined) return { ok: false, reason: 'missing_file', detail: 'no such file' };
    const ref = `${base}/${chosen}`;
    let real: string;
    try {
      real = await realpath(join(this.root, base, chosen));
    } catch (error) {
      return { ok: false, reason: 'missing_file', detail: `cannot resolve (${errorCode(error)})` };
    }
    const containers = await this.allowed(base);
    if (!containers.some((container) => isInside(real, container))) {
      return { ok: false, reason: 'path_outside_root', detail: 'resolves (through a symlink) outside the dataset root' };
    }
    let handle: FileHandle | undefined;
    try {
      const info = await stat(real);
      if (!info.isFile()) return { ok: false, reason: 'missing_file', detail: 'not a regular file' };
      if (info.size > this.maxBytes) return tooLarge(this.maxBytes);
      // NOFOLLOW and NONBLOCK: a path swapped for a symlink or a FIFO since the checks fails instead of escaping
      // or hanging.
      handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const opened = await handle.stat();
      if (!opened.isFile()) return { ok: false, reason: 'missing_file', detail: 'not a regular file' };
      if (opened.size > this.maxBytes) return tooLarge(this.maxBytes);
      const bytes = Buffer.alloc(opened.size);
      let offset = 0;
      while (offset < bytes.byteLength) {
        const { bytesRead } = await handle.read(bytes, offset, bytes.byteLength - offset, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
      }
      return { ok: true, bytes: bytes.subarray(0, offset), ref };
    } catch (error) {
      return { ok: false, reason: 'missing_file', detail: `cannot read (${errorCode(error)})` };
    } finally {
      await handle?.close();
    }
  }
}

function tooLarge(maxBytes: number): FileRead {
  return { ok: false, reason: 'bad_image', detail: `file larger than ${maxBytes} bytes` };
}

function isInside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

/** One unit's file reads: each distinct file read once, a few at a time, started as soon as they are asked for. */
export class UnitReads {
  private readonly reads = new Map<string, Promise<FileRead>>();
  private readonly limiter = new Limiter(READS_IN_FLIGHT);

  constructor(
    private readonly files: ImageFiles,
    private readonly base: string,
  ) {}

  get(candidates: string[]): Promise<FileRead> {
    const key = candidates.join('\0');
    let read = this.reads.get(key);
    if (!read) {
      read = this.limiter.run(() => this.files.read(this.base, candidates));
      this.reads.set(key, read);
    }
    return read;
  }
}
