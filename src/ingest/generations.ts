// Generated images for evaluation (DESIGN §3): files named by the 0-based index of their prompt in the list they came
// from, optionally with a seed: `00012.jpg` = prompt 12, `12_3.png` = prompt 12, seed 3.
import { open, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describeInputs } from '../manifest.ts';
import { safeName } from '../io/paths.ts';
import { reject, type Draft, type IngestUnit } from './drafts.ts';
import { runIngest, type IngestOptions, type IngestSummary } from './driver.ts';
import { InputError } from './pickapic.ts';
import { promptDraft } from './parti.ts';
import { readPromptList } from './prompt-list.ts';

const NAME = /^(\d+)(?:_(\d+))?\.(jpe?g|png|webp)$/i;
const FILES_PER_UNIT = 256;
/** A generated image larger than this is not read: it is a reject, not a memory spike. */
export const MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024;

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
  try {
    names = (await readdir(folder, { withFileTypes: true }))
      .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
      .map((entry) => entry.name)
      .sort();
  } catch (error) {
    throw new InputError(`${folder}: cannot list (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const listName = basename(options.prompts);
  const modelKey = safeName(model);
  const units: IngestUnit[] = [
    { key: `${modelKey}-prompts`, bytes: 0, input: options.prompts, drafts: () => prompts.map((entry) => promptDraft(listName, entry, 'images', null)) },
  ];
  for (let start = 0; start < names.length; start += FILES_PER_UNIT) {
    const chunk = names.slice(start, start + FILES_PER_UNIT);
    units.push({
      key: `${modelKey}-files-c${String(start / FILES_PER_UNIT).padStart(5, '0')}`,
      bytes: 0,
      async *drafts(): AsyncGenerator<Draft> {
        for (const name of chunk) yield await generationDraft(folder, name, model, prompts);
      },
    });
  }
  const inputs = await describeInputs(options.out, [options.prompts]);
  return runIngest('images', units, inputs, { model, prompts: options.prompts }, options);
}

async function generationDraft(
  folder: string,
  name: string,
  model: string,
  prompts: Awaited<ReturnType<typeof readPromptList>>,
): Promise<Draft> {
  const sourceRef = `${basename(folder)}/${name}`;
  const parsed = parseGenerationName(name);
  if (!parsed) return reject(sourceRef, 'unrecognised_name', 'expected <prompt index>[_<seed>].jpg|png|webp');
  const entry = prompts[parsed.index];
  if (!entry || entry.malformed) {
    return reject(sourceRef, 'missing_prompt', `prompt ${parsed.index} is not in the list (${prompts.length} prompts)`);
  }
  const bytes = await readBounded(join(folder, name), MAX_IMAGE_FILE_BYTES);
  if (bytes === 'too_large') return reject(sourceRef, 'bad_image', `file larger than ${MAX_IMAGE_FILE_BYTES} bytes`);
  return {
    kind: 'image',
    sourceRef,
    prompt: { text: entry.text, source: 'images', split: null, category: entry.category, challenge: entry.challenge },
    image: { bytes, sourceRef, model, seed: parsed.seed },
  };
}

/** Reads a file unless it is larger than `limit` bytes. */
export async function readBounded(path: string, limit: number): Promise<Uint8Array | 'too_large'> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > limit) return 'too_large';
    const bytes = Buffer.alloc(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(bytes, offset, size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    return bytes.subarray(0, offset);
  } finally {
    await handle.close();
  }
}
