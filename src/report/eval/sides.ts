// Reading the two sides of an eval: each dataset directory's generations keyed by (prompt, seed), and its prompts.
// A side must hold one model and one image per (prompt, seed); anything else is an error naming what is wrong.
import { listParts, readPart, readRows } from '../../io/arrow-table.ts';
import { BdpoError } from '../../core/errors.ts';

export class EvalInputError extends BdpoError {}

/** The two sides do not hold the same (prompt, seed)s. */
export class EvalCoverageError extends EvalInputError {
  constructor(
    message: string,
    readonly missingFromB: GenerationKey[],
    readonly missingFromA: GenerationKey[],
  ) {
    super(message);
  }
}

export interface GenerationKey {
  promptId: string;
  promptIndex: number | null;
  text: string | null;
  seed: number | null;
}

interface PromptInfo {
  index: number | null;
  text: string;
  category: string | null;
  challenge: string | null;
}

export interface Side {
  dir: string;
  models: Set<string>;
  /** key(prompt, seed) → image_id */
  images: Map<string, string>;
  prompts: Map<string, PromptInfo>;
  duplicates: GenerationKey[];
  count: number;
}

const SEP = '\u0000';
export const keyOf = (promptId: string, seed: number | null): string => `${promptId}${SEP}${seed ?? ''}`;

function splitKey(key: string): { promptId: string; seed: number | null } {
  const [promptId, seed] = key.split(SEP) as [string, string];
  return { promptId, seed: seed === '' ? null : Number(seed) };
}

export async function readSide(dir: string, only?: string): Promise<Side> {
  const parts = await listParts(dir, 'images');
  if (parts.length === 0) throw new EvalInputError(`${dir}: no images/part-*.arrow (run bdpo ingest images first)`);
  const side: Side = { dir, models: new Set(), images: new Map(), prompts: new Map(), duplicates: [], count: 0 };
  const present = new Set<string>();
  for (const file of parts) {
    // The whole part is one buffer anyway; only the small columns are touched.
    const part = await readPart(dir, file);
    const ids = part.getChild('image_id')!;
    const prompts = part.getChild('prompt_id')!;
    const models = part.getChild('model');
    const seeds = part.getChild('seed');
    for (let i = 0; i < part.numRows; i++) {
      const promptId = prompts.get(i) as string;
      const seed = (seeds?.get(i) as number | null | undefined) ?? null;
      const model = (models?.get(i) as string | null | undefined) ?? null;
      if (model !== null) present.add(model);
      if (only !== undefined && model !== only) continue;
      if (model !== null) side.models.add(model);
      side.count++;
      const key = keyOf(promptId, seed);
      if (side.images.has(key)) side.duplicates.push({ promptId, promptIndex: null, text: null, seed });
      else side.images.set(key, ids.get(i) as string);
    }
  }
  if (only !== undefined && side.count === 0) {
    throw new EvalInputError(`${dir}: no images of model "${only}" (models: ${[...present].sort().join(', ') || 'none recorded'})`);
  }
  for await (const p of readRows(dir, 'prompts')) {
    if (!side.prompts.has(p.prompt_id)) {
      side.prompts.set(p.prompt_id, { index: p.prompt_index, text: p.text, category: p.category, challenge: p.challenge });
    }
  }
  return side;
}

export function describeKeys(keys: readonly GenerationKey[], limit = 5): string {
  const shown = keys.slice(0, limit).map((k) => {
    const text = k.text === null ? k.promptId.slice(0, 12) : JSON.stringify(k.text.length > 40 ? `${k.text.slice(0, 39)}…` : k.text);
    return `${k.promptIndex === null ? '' : `#${k.promptIndex} `}${text} seed ${k.seed ?? '–'}`;
  });
  return `${shown.join('; ')}${keys.length > limit ? `; … ${keys.length - limit} more` : ''}`;
}

export function withPrompt(key: string, a: Side, b: Side): GenerationKey {
  const { promptId, seed } = splitKey(key);
  const info = a.prompts.get(promptId) ?? b.prompts.get(promptId);
  return { promptId, promptIndex: info?.index ?? null, text: info?.text ?? null, seed };
}

/** Keys sorted by prompt index (then id), then seed, so messages and galleries read in prompt-list order. */
export function orderKeys(keys: Iterable<string>, a: Side, b: Side): GenerationKey[] {
  return [...keys]
    .map((k) => withPrompt(k, a, b))
    .sort(
      (x, y) =>
        (x.promptIndex ?? Infinity) - (y.promptIndex ?? Infinity) ||
        (x.promptId < y.promptId ? -1 : x.promptId > y.promptId ? 1 : 0) ||
        (x.seed ?? -1) - (y.seed ?? -1),
    );
}
