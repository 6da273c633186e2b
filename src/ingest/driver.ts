// The ingest driver: turns drafts into the dataset directory's tables, one resumable unit at a time.
//
// Sharding (docs/architecture.md "Sharding") without a coordinator: shard i of n runs every n-th unit of the sorted
// unit keys and reads nothing of the others. A unit stores each prompt, image and pair once within itself, so its parts are the
// same bytes whatever n; the same id held by two units is resolved by the dataset reader (io/part-dedupe.ts), which
// yields the copy of the first part in its order (unit rank, then name) and counts the others as duplicates. Beside its parts a
// unit writes .state/ingest/<part name>.json: the ids of its rows, table by table, in row order, which is all that
// reader needs to know of a part it does not read.
import type { ImageRow, PairRow, PromptRow, RejectReason, RejectRow, SourceName } from '../core/schema.ts';
import { imageId, normalisePrompt, pairId, promptId } from '../core/ids.ts';
import { WHOLE, type Shard } from '../core/shard.ts';
import { duplicateRowCounts, writeRowsPart } from '../io/arrow-table.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { resolveInside } from '../io/paths.ts';
import { loneSurrogateAt } from '../io/text.ts';
import { sha256Hex } from '../core/ids.ts';
import { emptyCounts, runRecord, recordRun, type Counts, type InputStat, type PartRecord } from '../core/manifest.ts';
import { runUnits, UnitLedger, type UnitJob, type UnitSpec } from '../core/units.ts';
import { checkImage, DEFAULT_MAX_PIXELS, type ImageCheck } from '../models/image-check.ts';
import { ImagePool, workerCountProblem } from '../models/image-pool.ts';
import { InputError } from '../core/errors.ts';
import type { Draft, ImageDraft, IngestUnit, PromptDraft } from './drafts.ts';

export interface IngestOptions {
  out: string;
  shard?: Shard;
  maxPixels?: number;
  /** Decode every image to prove it is whole (default true); false trusts headers. */
  decode?: boolean;
  /**
   * @deprecated Ignored since images are verified in the image worker pool (`workers`); still validated, so that a
   * caller's bad value stays an error.
   */
  concurrency?: number;
  /** Image worker threads that verify images (0 or absent: one per core). */
  workers?: number;
  onProgress?: (progress: IngestProgress) => void;
}

export interface IngestProgress {
  unitsDone: number;
  unitsTotal: number;
  rows: number;
  bytes: number;
}

export interface IngestSummary {
  source: SourceName;
  out: string;
  shard: Shard;
  counts: Counts;
  unitsWritten: number;
  unitsSkipped: number;
  tables: { prompts: number; images: number; pairs: number; rejects: number };
}

/** The ids of a unit's stored rows, table by table, in row order (images: image, prompt, model and seed). */
interface SeenState {
  /** The unit's rank (IngestUnit.rank): the reader orders parts by it, then by name. */
  rank: number;
  prompts: string[];
  images: string[];
  pairs: string[];
}

const STAGE = 'ingest';

interface SeenSets {
  prompts: Set<string>;
  images: Set<string>;
  pairs: Set<string>;
}

export async function runIngest(
  source: SourceName,
  units: IngestUnit[],
  inputs: InputStat[],
  runOptions: Record<string, unknown>,
  options: IngestOptions,
): Promise<IngestSummary> {
  const { concurrency, workers } = options;
  if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1))
    throw new InputError(`concurrency must be a positive integer, got ${concurrency}`);
  const workersProblem = workerCountProblem(workers);
  if (workersProblem !== null) throw new InputError(workersProblem);
  // Workers start with the first image to verify, so a run whose units are all finished spawns none.
  const pool = new ImagePool(workers);
  try {
    return await ingestWithPool(source, units, inputs, runOptions, options, pool);
  } finally {
    await pool.dispose();
  }
}

async function ingestWithPool(
  source: SourceName,
  units: IngestUnit[],
  inputs: InputStat[],
  runOptions: Record<string, unknown>,
  options: IngestOptions,
  pool: ImagePool,
): Promise<IngestSummary> {
  const started = new Date();
  const shard = options.shard ?? WHOLE;
  const dir = options.out;
  const ledger = await UnitLedger.open(dir, STAGE, shard);
  const keyOf = (unit: IngestUnit): string => `${STAGE}:${source}:${unit.key}`;
  const runKeys = new Set(units.map(keyOf));
  ledger.assign(runKeys);
  const inputPaths = new Set(inputs.map((i) => i.path));
  for (const [recordKey, record] of ledger.records()) {
    const key = UnitLedger.unitKeyOf(recordKey);
    if (runKeys.has(key) || !ledger.owns({ key })) continue;
    // A unit of one of our inputs that the input no longer has (the file shrank): its parts are stale.
    if (record.input !== undefined && inputPaths.has(record.input) && key.startsWith(`${STAGE}:${source}:`)) await ledger.forget(recordKey);
  }
  const owned = units.filter((unit) => ledger.owns({ key: keyOf(unit) }));
  const hashes = new Map<string, string>();
  for (const input of inputs) if ('sha256' in input) hashes.set(input.path, (input as { sha256: string }).sha256);
  const checks = new CheckCache(pool);
  const tables = { prompts: 0, images: 0, pairs: 0, rejects: 0 };
  const summary: IngestSummary = { source, out: dir, shard, counts: emptyCounts(), unitsWritten: 0, unitsSkipped: 0, tables };
  let bytesDone = 0;
  let unitsDone = 0;
  const runParts: PartRecord[] = [];

  const specs = owned.map((unit): UnitSpec => {
    const inputSha256 = unit.input === undefined ? undefined : hashes.get(unit.input);
    return {
      key: keyOf(unit),
      ...(unit.input === undefined ? {} : { input: unit.input }),
      // A unit that fingerprints what it reads (a Parquet row group) is checked by that; else by its input's hash.
      ...(unit.fingerprint !== undefined
        ? { fingerprint: unit.fingerprint, ...(unit.signature === undefined ? {} : { inputSignature: unit.signature }) }
        : inputSha256 === undefined
          ? {}
          : { inputSha256 }),
    };
  });
  // The next unit's rows are read and its images queued for the workers while this unit's are decoded, so the workers
  // do not wait for the main thread between units (two units in memory at most). A finished next unit is not read.
  const prefetched = new Map<number, Promise<PreparedUnit | null>>();
  const prepare = (i: number): Promise<PreparedUnit> => {
    const early = prefetched.get(i);
    prefetched.delete(i);
    return early?.then((ready) => ready ?? prepareUnit(owned[i]!, checks, options)) ?? prepareUnit(owned[i]!, checks, options);
  };
  const prefetch = (i: number): void => {
    if (i >= owned.length || prefetched.has(i)) return;
    const ready = ledger.finished(specs[i]!).then((record) => (record === null ? prepareUnit(owned[i]!, checks, options) : null));
    // Awaited when unit i runs; a unit that turns out finished never awaits it, and its failure must not crash the run.
    ready.catch(() => undefined);
    prefetched.set(i, ready);
  };

  const jobs = owned.map((unit, i): UnitJob => {
    return {
      unit: specs[i]!,
      skipped: (record) => {
        addTableRows(tables, record.parts);
        runParts.push(...record.parts);
      },
      run: async () => {
        // No shard label: a unit's parts have one name under any layout.
        const partName = `${source}-${unit.key}`;
        const prepared = await prepare(i);
        prefetch(i + 1);
        const result = await ingestUnit(unit, prepared);
        const parts: PartRecord[] = [];
        if (result.prompts.length > 0) parts.push(await writeRowsPart(dir, 'prompts', partName, result.prompts));
        if (result.images.length > 0) parts.push(await writeRowsPart(dir, 'images', partName, result.images));
        if (result.pairs.length > 0) parts.push(await writeRowsPart(dir, 'pairs', partName, result.pairs));
        if (result.rejects.length > 0) parts.push(await writeRowsPart(dir, 'rejects', partName, result.rejects));
        const statePath = `.state/${STAGE}/${partName}.json`;
        const stateBytes = Buffer.from(JSON.stringify(result.state));
        await writeFileAtomic(resolveInside(dir, statePath), stateBytes);
        parts.push({ file: statePath, rows: 0, bytes: stateBytes.byteLength, sha256: sha256Hex(stateBytes) });
        addTableRows(tables, parts);
        runParts.push(...parts);
        return { parts, counts: result.counts };
      },
    };
  });
  const done = await runUnits(ledger, jobs, (sofar) => {
    bytesDone += owned[unitsDone]!.bytes;
    unitsDone++;
    options.onProgress?.({ unitsDone, unitsTotal: owned.length, rows: sofar.counts.read, bytes: bytesDone });
  });
  summary.counts = done.counts;
  await countAsTheReaderSees(dir, runParts, summary);
  summary.unitsWritten = done.written;
  summary.unitsSkipped = done.skipped;

  await recordRun(dir, runRecord(`${STAGE} ${source}`, runOptions, inputs, summary.counts, started, shard));
  return summary;
}

/**
 * The run's tables and counts as every reader sees them: rows that a part earlier in the reader's order holds too are
 * not stored twice, and such a pair is a duplicate_pair reject (an unsharded run counts exactly what earlier versions
 * did). A shard sees the parts that exist when it ends; `bdpo inspect` counts the union.
 */
async function countAsTheReaderSees(dir: string, parts: readonly PartRecord[], summary: IngestSummary): Promise<void> {
  const counts = await duplicateRowCounts(
    dir,
    parts.map((part) => part.file),
  );
  for (const part of parts) {
    const table = part.file.split('/')[0];
    if (table !== 'prompts' && table !== 'images' && table !== 'pairs') continue;
    const duplicates = counts.get(part.file) ?? 0;
    summary.tables[table] -= duplicates;
    if (table !== 'pairs' || duplicates === 0) continue;
    summary.tables.rejects += duplicates;
    summary.counts.taken -= duplicates;
    summary.counts.rejected += duplicates;
    summary.counts.byReason.duplicate_pair = (summary.counts.byReason.duplicate_pair ?? 0) + duplicates;
  }
}

function addTableRows(tables: IngestSummary['tables'], parts: PartRecord[]): void {
  for (const part of parts) {
    const table = part.file.split('/')[0] as keyof IngestSummary['tables'];
    if (table in tables) tables[table] += part.rows;
  }
}

interface UnitResult {
  prompts: PromptRow[];
  images: ImageRow[];
  pairs: PairRow[];
  rejects: RejectRow[];
  counts: Counts;
  state: SeenState;
}

interface CheckedImage {
  id: string;
  draft: ImageDraft;
  check: ImageCheck;
}

/** A unit's rows, read, with its images queued for verification. */
interface PreparedUnit {
  drafts: Draft[];
  checked: Map<ImageDraft, Promise<CheckedImage>>;
}

async function prepareUnit(unit: IngestUnit, checks: CheckCache, options: IngestOptions): Promise<PreparedUnit> {
  const drafts: Draft[] = [];
  for await (const draft of unit.drafts()) drafts.push(draft);

  // The unit's images are verified in the worker pool all at once (a unit's bytes are in memory already); decisions
  // below are taken in source order, so output stays deterministic.
  const checked = new Map<ImageDraft, Promise<CheckedImage>>();
  for (const draft of drafts) {
    const images = draft.kind === 'pair' ? [draft.a, draft.b] : draft.kind === 'image' ? [draft.image] : [];
    for (const image of images) {
      const check = checks.check(image, options);
      // Awaited in source order below; if an earlier one fails, the run stops and these must not crash the process.
      check.catch(() => undefined);
      checked.set(image, check);
    }
  }
  return { drafts, checked };
}

async function ingestUnit(unit: IngestUnit, { drafts, checked }: PreparedUnit): Promise<UnitResult> {
  // Within the unit only: what other units hold is the reader's to resolve, so the parts do not depend on them.
  const seen: SeenSets = { prompts: new Set(), images: new Set(), pairs: new Set() };
  const result: UnitResult = {
    prompts: [],
    images: [],
    pairs: [],
    rejects: [],
    counts: emptyCounts(),
    state: { rank: unit.rank ?? 0, prompts: [], images: [], pairs: [] },
  };
  const counts = result.counts;
  const rejectRow = (sourceRef: string, reason: RejectReason, detail: string): void => {
    counts.read++;
    counts.rejected++;
    counts.byReason[reason] = (counts.byReason[reason] ?? 0) + 1;
    result.rejects.push({ source_ref: sourceRef, stage: STAGE, reason, detail });
  };
  const takeRow = (): void => {
    counts.read++;
    counts.taken++;
  };
  const storePrompt = (id: string, text: string, draft: PromptDraft): void => {
    if (seen.prompts.has(id)) return;
    seen.prompts.add(id);
    result.state.prompts.push(id);
    result.prompts.push({
      prompt_id: id,
      text,
      source: draft.source,
      split: draft.split,
      category: draft.category ?? null,
      challenge: draft.challenge ?? null,
      note: draft.note ?? null,
      prompt_index: draft.promptIndex ?? null,
    });
  };
  const storeImage = (image: CheckedImage, prompt: string): void => {
    if (!image.check.ok) return;
    const dedupKey = `${image.id}:${prompt}:${image.draft.model ?? ''}:${image.draft.seed ?? ''}`;
    if (seen.images.has(dedupKey)) return;
    seen.images.add(dedupKey);
    result.state.images.push(dedupKey);
    result.images.push({
      image_id: image.id,
      prompt_id: prompt,
      bytes: image.draft.bytes!,
      mime: image.check.mime,
      width: image.check.width,
      height: image.check.height,
      source_ref: image.draft.sourceRef,
      model: image.draft.model ?? null,
      seed: image.draft.seed ?? null,
    });
  };

  for (const draft of drafts) {
    if (draft.kind === 'reject') {
      rejectRow(draft.sourceRef, draft.reason, draft.detail);
      continue;
    }
    const lone = typeof draft.prompt.text === 'string' ? loneSurrogateAt(draft.prompt.text) : -1;
    if (lone >= 0) {
      // Written as UTF-8 it would become U+FFFD and merge with other prompts.
      rejectRow(draft.sourceRef, 'bad_text', `prompt text has a lone surrogate at character ${lone}`);
      continue;
    }
    const text = typeof draft.prompt.text === 'string' ? normalisePrompt(draft.prompt.text) : '';
    if (text === '') {
      rejectRow(draft.sourceRef, 'missing_prompt', 'empty or missing prompt text');
      continue;
    }
    const prompt = promptId(text);
    if (draft.kind === 'prompt') {
      // A prompt listed twice (or in two lists) is present, not rejected; it is stored once.
      takeRow();
      storePrompt(prompt, text, draft.prompt);
      continue;
    }
    if (draft.kind === 'image') {
      const image = await checked.get(draft.image)!;
      if (!image.check.ok) {
        rejectRow(draft.sourceRef, image.check.reason, image.check.detail);
        continue;
      }
      takeRow();
      storePrompt(prompt, text, draft.prompt);
      storeImage(image, prompt);
      continue;
    }
    const a = await checked.get(draft.a)!;
    const b = await checked.get(draft.b)!;
    const bad = !a.check.ok ? a : !b.check.ok ? b : null;
    if (bad && !bad.check.ok) {
      rejectRow(draft.sourceRef, bad.check.reason, `${bad.draft.sourceRef}: ${bad.check.detail}`);
      continue;
    }
    if (a.id === b.id) {
      rejectRow(draft.sourceRef, 'identical_images', `both sides are image ${a.id.slice(0, 12)}`);
      continue;
    }
    const pref = draft.humanPref;
    if (pref !== null && pref !== 1 && pref !== 0 && pref !== 0.5) {
      rejectRow(draft.sourceRef, 'bad_label', `human preference ${String(pref)} not in {1, 0, 0.5}`);
      continue;
    }
    const id = pairId(prompt, a.id, b.id);
    if (seen.pairs.has(id)) {
      rejectRow(draft.sourceRef, 'duplicate_pair', 'same prompt and images as an earlier pair');
      continue;
    }
    seen.pairs.add(id);
    result.state.pairs.push(id);
    result.pairs.push({
      pair_id: id,
      prompt_id: prompt,
      image_a: a.id,
      image_b: b.id,
      human_pref: pref,
      split: draft.split,
      source_ref: draft.sourceRef,
    });
    takeRow();
    storePrompt(prompt, text, draft.prompt);
    storeImage(a, prompt);
    storeImage(b, prompt);
  }
  return result;
}

/**
 * Remembers recent verdicts by content hash (HPD's train pairs reuse each image many times). The promise is kept, not
 * the result, so that copies of one image submitted together are decoded once.
 */
class CheckCache {
  private readonly results = new Map<string, Promise<ImageCheck>>();
  private static readonly LIMIT = 100_000;

  constructor(private readonly pool: ImagePool) {}

  async check(draft: ImageDraft, options: IngestOptions): Promise<CheckedImage> {
    const bytes = draft.bytes;
    const id = bytes && bytes.byteLength > 0 ? imageId(bytes) : '';
    let check = id ? this.results.get(id) : undefined;
    if (check === undefined) {
      const checkOptions = { maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS, decode: options.decode ?? true };
      // Only a decode is worth a worker: a header alone is read in microseconds.
      check = id && checkOptions.decode ? this.pool.checkImage(bytes!, checkOptions) : checkImage(bytes, checkOptions);
      if (id) {
        if (this.results.size >= CheckCache.LIMIT) this.results.clear();
        this.results.set(id, check);
      }
    }
    return { id, draft, check: await check };
  }
}
