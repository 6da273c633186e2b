// Generated images for evaluation (docs/design.md §3): files named by the 0-based index of their prompt in the list they came
// from, optionally with a seed: `00012.jpg` = prompt 12, `12_3.png` = prompt 12, seed 3.
import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, realpath } from 'node:fs/promises';
import { basename, join, sep } from 'node:path';
import { describeInputs } from '../core/manifest.ts';
import type { RejectReason } from '../core/schema.ts';
import { safeName } from '../io/paths.ts';
import { reject, type Draft, type IngestUnit } from './drafts.ts';
import { runIngest, type IngestOptions, type IngestSummary } from './driver.ts';
import { InputError, errorCode } from '../core/errors.ts';
import { MAX_IMAGE_FILE_BYTES } from '../models/image-check.ts';
import { promptDraft } from './parti.ts';
import { readPromptList } from './prompt-list.ts';

const NAME = /^(\d+)(?:_(\d+))?\.(jpe?g|png|webp)$/i;
const FILES_PER_UNIT = 256;

export interface GenerationsOptions extends IngestOptions {
  prompts: string;
  model?: string;
}

export function parseGenerationName(name: string): { index: number; seed: number | null } | null {
  const match = NAME.exec(name);
  if (!match) return null;
  return { index: Number(match[1]), seed: match[2] === undefined ? null : Number(match[2]) };
}

export async function ingestGenerations(folder: string, options: GenerationsOptions): Promise<IngestSummary> {
  const prompts = await readPromptList(options.prompts);
  const model = options.model ?? basename(folder);
  let names: string[];
  let realFolder: string;
  try {
    // Sub-folders (thumbnails, grids) are not entries; every other entry — symlink, FIFO, socket — is read or rejected.
    names = (await readdir(folder, { withFileTypes: true }))
      .filter((entry) => !entry.isDirectory() && !entry.name.startsWith('.'))
      .map((entry) => entry.name)
      .sort();
    realFolder = await realpath(folder);
  } catch (error) {
    throw new InputError(`${folder}: cannot list (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const listName = basename(options.prompts);
  const modelKey = safeName(model);
  const units: IngestUnit[] = [
    {
      key: `${modelKey}-prompts`,
      rank: 0,
      bytes: 0,
      input: options.prompts,
      drafts: () => prompts.map((entry) => promptDraft(listName, entry, 'images', null)),
    },
  ];
  for (let start = 0; start < names.length; start += FILES_PER_UNIT) {
    const chunk = names.slice(start, start + FILES_PER_UNIT);
    units.push({
      key: `${modelKey}-files-c${String(start / FILES_PER_UNIT).padStart(5, '0')}`,
      rank: 1,
      bytes: 0,
      async *drafts(): AsyncGenerator<Draft> {
        for (const name of chunk) yield await generationDraft(folder, realFolder, name, model, prompts);
      },
    });
  }
  const inputs = await describeInputs(options.out, [options.prompts]);
  return runIngest('images', units, inputs, { model, prompts: options.prompts }, options);
}

async function generationDraft(
  folder: string,
  realFolder: string,
  name: string,
  model: string,
  prompts: Awaited<ReturnType<typeof readPromptList>>,
): Promise<Draft> {
  const sourceRef = `${basename(folder)}/${name}`;
  const parsed = parseGenerationName(name);
  if (!parsed) return reject(sourceRef, 'unrecognised_name', 'expected <prompt index>[_<seed>].jpg|png|webp');
  const entry = prompts[parsed.index];
  if (!entry || entry.malformed || entry.badText) {
    const why = entry?.badText ? `was rejected (${entry.badText})` : `is not in the list (${prompts.length} prompts)`;
    return reject(sourceRef, 'missing_prompt', `prompt ${parsed.index} ${why}`);
  }
  const read = await readEntry(folder, realFolder, name, MAX_IMAGE_FILE_BYTES);
  if (!read.ok) return reject(sourceRef, read.reason, read.detail);
  const bytes = read.bytes;
  return {
    kind: 'image',
    sourceRef,
    prompt: { text: entry.text, source: 'images', split: null, category: entry.category, challenge: entry.challenge },
    image: { bytes, sourceRef, model, seed: parsed.seed },
  };
}

type EntryRead = { ok: true; bytes: Uint8Array } | { ok: false; reason: RejectReason; detail: string };

/**
 * Reads a folder entry as the generated image it claims to be. A symlink is followed only while it stays inside the
 * folder, as HPD's image paths are; anything that is not a regular file is refused before it is opened, and the open
 * itself neither follows a link swapped in since nor waits on a FIFO.
 */
async function readEntry(folder: string, realFolder: string, name: string, limit: number): Promise<EntryRead> {
  const path = join(folder, name);
  let target = path;
  try {
    const entry = await lstat(path);
    if (entry.isSymbolicLink()) {
      let real: string;
      try {
        real = await realpath(path);
      } catch (error) {
        return { ok: false, reason: 'missing_file', detail: `${name}: broken symlink (${errorCode(error)})` };
      }
      if (!real.startsWith(realFolder.endsWith(sep) ? realFolder : realFolder + sep)) {
        return { ok: false, reason: 'path_outside_root', detail: `${name}: symlink resolves outside ${folder}` };
      }
      target = real;
    }
    const handle = await open(target, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const info = await handle.stat();
      if (!info.isFile()) return { ok: false, reason: 'missing_file', detail: `${name}: not a regular file (${entryKind(info)})` };
      if (info.size > limit) return { ok: false, reason: 'bad_image', detail: `file larger than ${limit} bytes` };
      const bytes = Buffer.alloc(info.size);
      let offset = 0;
      while (offset < info.size) {
        const { bytesRead } = await handle.read(bytes, offset, info.size - offset, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
      }
      return { ok: true, bytes: bytes.subarray(0, offset) };
    } finally {
      await handle.close();
    }
  } catch (error) {
    return { ok: false, reason: 'missing_file', detail: `${name}: cannot read (${errorCode(error)})` };
  }
}

function entryKind(info: Stats): string {
  if (info.isFIFO()) return 'FIFO';
  if (info.isSocket()) return 'socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'device';
  if (info.isDirectory()) return 'folder';
  return 'special file';
}
