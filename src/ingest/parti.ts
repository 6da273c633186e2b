// PartiPrompts: the evaluation prompt set (1632 prompts, 12 categories, 11 challenges); prompts only.
import { basename } from 'node:path';
import { describeInputs } from '../core/manifest.ts';
import { safeName } from '../io/paths.ts';
import { reject, type Draft, type IngestUnit } from './drafts.ts';
import { runIngest, type IngestOptions, type IngestSummary } from './driver.ts';
import { readPromptList, type ListedPrompt } from './prompt-list.ts';

export async function ingestParti(tsvPath: string, options: IngestOptions): Promise<IngestSummary> {
  const list = await readPromptList(tsvPath);
  const unit: IngestUnit = {
    key: safeName(basename(tsvPath).replace(/\.[^.]+$/, '')),
    bytes: 0,
    input: tsvPath,
    drafts: () => list.map((entry) => promptDraft(basename(tsvPath), entry, 'parti', 'eval')),
  };
  const inputs = await describeInputs(options.out, [tsvPath]);
  return runIngest('parti', [unit], inputs, {}, options);
}

export function promptDraft(file: string, entry: ListedPrompt, source: string, split: string | null): Draft {
  const sourceRef = `${file}:${entry.ref}`;
  if (entry.badText) return reject(sourceRef, 'bad_text', entry.badText);
  if (entry.malformed) return reject(sourceRef, 'malformed_entry', entry.malformed);
  return {
    kind: 'prompt',
    sourceRef,
    prompt: {
      text: entry.text,
      source,
      split,
      category: entry.category,
      challenge: entry.challenge,
      note: entry.note,
      promptIndex: entry.index,
    },
  };
}
