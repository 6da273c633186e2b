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
  /**
   * Where the unit's rows come in the dataset reader's order (rank, then part name; default 0): of an id that two
   * units hold, the reader keeps the copy of the first. HPD ranks its benchmark lists first, so a prompt keeps their
   * category and index, as a source declares its units.
   */
  rank?: number;
  /** Input bytes this unit covers, for progress (0 when unknown). */
  bytes: number;
  /** The input file the unit reads, if one: when its content changes, a finished unit is redone. */
  input?: string;
  /**
   * The sha256 of what the unit reads (a Parquet row group's bytes), when it reads part of its input: a shard then
   * hashes only the units it owns, never whole inputs. Units without one are checked by their input's whole hash.
   */
  fingerprint?: () => Promise<string>;
  /** The input's size and mtime: while unchanged, the recorded fingerprint is trusted without reading again. */
  signature?: string;
  drafts(): AsyncIterable<Draft> | Iterable<Draft>;
}

export function reject(sourceRef: string, reason: RejectReason, detail: string): Draft {
  return { kind: 'reject', sourceRef, reason, detail };
}
