// The ingest driver: turns drafts into the dataset directory's tables, one resumable unit at a time.
//
// Sharding (docs/design.md §7) without a coordinator: every shard reads every row, so each makes the same decisions; it then
// keeps only what it owns. A taken pair (and a duplicate of it) belongs to the shard of its pair id, an image to the
// shard of its image id, a prompt to the shard of its prompt id, any other reject to the shard of its source ref.
// Each row thus lands in exactly one shard, and the union of n shards is one unsharded run.
import { readFile } from 'node:fs/promises';
import { parseJsonText } from '../io/json-file.ts';
import { join } from 'node:path';
import type { ImageRow, PairRow, PromptRow, RejectReason, RejectRow, SourceName } from '../core/schema.ts';
import { imageId, normalisePrompt, pairId, promptId } from '../core/ids.ts';
import { owns, shardLabel, WHOLE, type Shard } from '../core/shard.ts';
import { writeRowsPart } from '../io/arrow-table.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { resolveInside } from '../io/paths.ts';
import { loneSurrogateAt } from '../io/text.ts';
import { sha256Hex } from '../core/ids.ts';
import { emptyCounts, runRecord, recordRun, verifyPartBytes, type Counts, type InputFile, type PartRecord } from '../core/manifest.ts';
import { runUnits, UnitLedger, type UnitJob } from '../core/units.ts';
import { checkImage, DEFAULT_MAX_PIXELS, type ImageCheck } from '../models/image-check.ts';
import { ImagePool } from '../models/image-pool.ts';
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

/** Ids this shard has stored, so that later units store each prompt, image and pair once. */
interface SeenState {
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
  inputs: InputFile[],
  runOptions: Record<string, unknown>,
  options: IngestOptions,
): Promise<IngestSummary> {
  const { concurrency, workers } = options;
  if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1))
    throw new InputError(`concurrency must be a positive integer, got ${concurrency}`);
  if (workers !== undefined && !(Number.isSafeInteger(workers) && workers >= 0))
    throw new InputError(`workers must be an integer ≥ 0 (0: one per core), got ${workers}`);
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
  inputs: InputFile[],
  runOptions: Record<string, unknown>,
  options: IngestOptions,
  pool: ImagePool,
): Promise<IngestSummary> {
  const started = new Date();
  const shard = options.shard ?? WHOLE;
  const dir = options.out;
  const ledger = await UnitLedger.open(dir, STAGE, shard);
  const seen = { prompts: new Set<string>(), images: new Set<string>(), pairs: new Set<string>() };
  const keyOf = (unit: IngestUnit): string => `${STAGE}:${source}:${unit.key}`;
  const runKeys = new Set(units.map(keyOf));
  const inputPaths = new Set(inputs.map((i) => i.path));
  for (const [recordKey, record] of ledger.records()) {
    const key = UnitLedger.unitKeyOf(recordKey);
    if (runKeys.has(key)) continue;
    if (record.input !== undefined && inputPaths.has(record.input) && key.startsWith(`${STAGE}:${source}:`)) {
      // A unit of one of our inputs that the input no longer has (the file shrank): its parts are stale.
      await ledger.forget(recordKey);
      continue;
    }
    // What earlier runs into this directory stored is stored: prompts, images and pairs stay unique across runs.
    // Another shard's ids are never ours to store, so loading them too changes nothing.
    await loadState(dir, record.parts, seen);
  }
  const checks = new CheckCache(pool);
  const tables = { prompts: 0, images: 0, pairs: 0, rejects: 0 };
  const summary: IngestSummary = { source, out: dir, shard, counts: emptyCounts(), unitsWritten: 0, unitsSkipped: 0, tables };
  let bytesDone = 0;
  let unitsDone = 0;

  const jobs = units.map((unit): UnitJob => {
    const inputSha256 = unit.input === undefined ? undefined : inputs.find((i) => i.path === unit.input)?.sha256;
    return {
      unit: {
        key: keyOf(unit),
        ...(unit.input === undefined ? {} : { input: unit.input }),
        ...(inputSha256 === undefined ? {} : { inputSha256 }),
      },
      skipped: async (record) => {
        await loadState(dir, record.parts, seen);
        addTableRows(tables, record.parts);
      },
      run: async () => {
        const partName = `${source}-${unit.key}-${shardLabel(shard)}`;
        const result = await ingestUnit(unit, shard, seen, checks, options);
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
        return { parts, counts: result.counts };
      },
    };
  });
  const done = await runUnits(ledger, jobs, (sofar) => {
    bytesDone += units[unitsDone]!.bytes;
    unitsDone++;
    options.onProgress?.({ unitsDone, unitsTotal: units.length, rows: sofar.counts.read, bytes: bytesDone });
  });
  summary.counts = done.counts;
  summary.unitsWritten = done.written;
  summary.unitsSkipped = done.skipped;

  await recordRun(dir, runRecord(`${STAGE} ${source}`, runOptions, inputs, summary.counts, started, shard));
  return summary;
}

async function loadState(dir: string, parts: readonly PartRecord[], seen: SeenSets): Promise<void> {
  const statePart = parts.find((part) => part.file.startsWith(`.state/${STAGE}/`));
  if (!statePart) return;
  const bytes = await readFile(join(dir, statePart.file)).catch(() => null);
  if (bytes === null) return;
  await verifyPartBytes(dir, statePart.file, bytes);
  const state = parseJsonText(bytes.toString('utf8'), join(dir, statePart.file)) as SeenState;
  state.prompts.forEach((id) => seen.prompts.add(id));
  state.images.forEach((id) => seen.images.add(id));
  state.pairs.forEach((id) => seen.pairs.add(id));
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

async function ingestUnit(unit: IngestUnit, shard: Shard, seen: SeenSets, checks: CheckCache, options: IngestOptions): Promise<UnitResult> {
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

  const result: UnitResult = {
    prompts: [],
    images: [],
    pairs: [],
    rejects: [],
    counts: emptyCounts(),
    state: { prompts: [], images: [], pairs: [] },
  };
  const counts = result.counts;
  const rejectRow = (ownerKey: string, sourceRef: string, reason: RejectReason, detail: string): void => {
    if (!owns(shard, ownerKey)) return;
    counts.read++;
    counts.rejected++;
    counts.byReason[reason] = (counts.byReason[reason] ?? 0) + 1;
    result.rejects.push({ source_ref: sourceRef, stage: STAGE, reason, detail });
  };
  const takeRow = (ownerKey: string): void => {
    if (!owns(shard, ownerKey)) return;
    counts.read++;
    counts.taken++;
  };
  const storePrompt = (id: string, text: string, draft: PromptDraft): void => {
    if (!owns(shard, id) || seen.prompts.has(id)) return;
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
    if (!owns(shard, image.id) || seen.images.has(dedupKey)) return;
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
      rejectRow(draft.sourceRef, draft.sourceRef, draft.reason, draft.detail);
      continue;
    }
    const lone = typeof draft.prompt.text === 'string' ? loneSurrogateAt(draft.prompt.text) : -1;
    if (lone >= 0) {
      // Written as UTF-8 it would become U+FFFD and merge with other prompts.
      rejectRow(draft.sourceRef, draft.sourceRef, 'bad_text', `prompt text has a lone surrogate at character ${lone}`);
      continue;
    }
    const text = typeof draft.prompt.text === 'string' ? normalisePrompt(draft.prompt.text) : '';
    if (text === '') {
      rejectRow(draft.sourceRef, draft.sourceRef, 'missing_prompt', 'empty or missing prompt text');
      continue;
    }
    const prompt = promptId(text);
    if (draft.kind === 'prompt') {
      // A prompt listed twice (or in two lists) is present, not rejected; it is stored once.
      takeRow(prompt);
      storePrompt(prompt, text, draft.prompt);
      continue;
    }
    if (draft.kind === 'image') {
      const image = await checked.get(draft.image)!;
      if (!image.check.ok) {
        rejectRow(draft.sourceRef, draft.sourceRef, image.check.reason, image.check.detail);
        continue;
      }
      takeRow(image.id);
      storePrompt(prompt, text, draft.prompt);
      storeImage(image, prompt);
      continue;
    }
    const a = await checked.get(draft.a)!;
    const b = await checked.get(draft.b)!;
    const bad = !a.check.ok ? a : !b.check.ok ? b : null;
    if (bad && !bad.check.ok) {
      rejectRow(draft.sourceRef, draft.sourceRef, bad.check.reason, `${bad.draft.sourceRef}: ${bad.check.detail}`);
      continue;
    }
    if (a.id === b.id) {
      rejectRow(draft.sourceRef, draft.sourceRef, 'identical_images', `both sides are image ${a.id.slice(0, 12)}`);
      continue;
    }
    const pref = draft.humanPref;
    if (pref !== null && pref !== 1 && pref !== 0 && pref !== 0.5) {
      rejectRow(draft.sourceRef, draft.sourceRef, 'bad_label', `human preference ${String(pref)} not in {1, 0, 0.5}`);
      continue;
    }
    const id = pairId(prompt, a.id, b.id);
    if (seen.pairs.has(id)) {
      rejectRow(id, draft.sourceRef, 'duplicate_pair', 'same prompt and images as an earlier pair');
      continue;
    }
    if (owns(shard, id)) {
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
    }
    takeRow(id);
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
