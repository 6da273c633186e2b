// What a source reader hands the ingest driver: one draft per input row, in source order. Readers parse their
// format; the driver owns ids, image checks, de-duplication, sharding, parts and counts.
import type { RejectReason } from '../core/schema.ts';

export interface PromptDraft {
  text: string | null | undefined;
  source: string;
  split: string | null;
  category?: string | null;
  challenge?: string | null;
  note?: string | null;
  promptIndex?: number | null;
}

export interface ImageDraft {
  /** null when the reader found no bytes (empty cell); file readers turn missing files into rejects themselves. */
  bytes: Uint8Array | null;
  sourceRef: string;
  model?: string | null;
  seed?: number | null;
}

export type Draft =
  | {
      kind: 'pair';
      sourceRef: string;
      prompt: PromptDraft;
      a: ImageDraft;
      b: ImageDraft;
      humanPref: number | null;
      split: string | null;
    }
  | { kind: 'prompt'; sourceRef: string; prompt: PromptDraft }
  | { kind: 'image'; sourceRef: string; prompt: PromptDraft; image: ImageDraft }
  | { kind: 'reject'; sourceRef: string; reason: RejectReason; detail: string };

/** One resumable unit of work (a row group, a chunk of a JSON list, a chunk of files). */
export interface IngestUnit {
  /** Stable across runs and shards; becomes part of the part names. */
  key: string;
  /** Input bytes this unit covers, for progress (0 when unknown). */
  bytes: number;
  /** The input file the unit reads, if one: when its content changes, a finished unit is redone. */
  input?: string;
  drafts(): AsyncIterable<Draft> | Iterable<Draft>;
}

export function reject(sourceRef: string, reason: RejectReason, detail: string): Draft {
  return { kind: 'reject', sourceRef, reason, detail };
}
