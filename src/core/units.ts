// The unit engine. A resumable stage declares its units (a stable key, a fingerprint of what the unit reads, the
// version of what computes it) and how to run them; this module alone decides which units are finished, which must be
// redone, records them in the manifest and removes the parts a redone or superseded unit no longer owns.
//
// A unit's record is keyed by its key and the shard that ran it. Running a unit under another shard layout (another
// n of --shard i/n) supersedes the records of the old layout: their parts are removed once the new ones are recorded,
// so a directory never holds the same rows twice, whichever layouts were mixed in it.
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from './ids.ts';
import { resolveInside } from '../io/paths.ts';
import { sweepLeftovers } from '../io/leftovers.ts';
import {
  addCounts,
  emptyCounts,
  isPartIntact,
  readManifest,
  recordedPart,
  sha256OfFile,
  updateManifest,
  type Counts,
  type Manifest,
  type PartRecord,
  type UnitRecord,
} from './manifest.ts';
import { shardLabel, type Shard } from './shard.ts';

export interface UnitSpec {
  /** Stable across runs and shard layouts, e.g. "label:pickscore:pickapic-train-rg0000-s0of1". */
  key: string;
  /** What the unit reads, condensed: another fingerprint redoes the unit. */
  inputSha256?: string;
  /** The version of what computes the unit (a metric's version): another version redoes it. */
  version?: string;
  /** The file the unit reads, recorded so that units of a vanished or shrunken input can be found. */
  input?: string;
}

export interface UnitOutcome {
  parts: PartRecord[];
  counts: Counts;
}

/** Units that run together (label scores all metrics of one images part in one pass over its images). */
export interface UnitGroup<S extends UnitSpec = UnitSpec> {
  units: S[];
  /** Runs the units that are not finished; returns an outcome for each of them, by key. */
  run(todo: S[]): Promise<Map<string, UnitOutcome>>;
  /** Told about each finished unit that is skipped, in declaration order, before `run`. */
  skipped?(unit: S, record: UnitRecord): Promise<void> | void;
}

export interface UnitsSummary {
  written: number;
  skipped: number;
  /** The counts of every unit of this run, written or skipped. */
  counts: Counts;
}

const LAYOUT = /:s(\d+)of(\d+)$/;

/** The manifest's view of one stage on one shard: which units are finished, and recording new ones. */
export class UnitLedger {
  private constructor(
    readonly dir: string,
    readonly stage: string,
    readonly shard: Shard,
    private readonly manifest: Manifest,
  ) {}

  static async open(dir: string, stage: string, shard: Shard): Promise<UnitLedger> {
    // What a killed run of any stage left half-written goes first: its temporary files are no one's now.
    await sweepLeftovers(dir);
    return new UnitLedger(dir, stage, shard, await readManifest(dir));
  }

  recordKey(unit: UnitSpec): string {
    return `${unit.key}:${shardLabel(this.shard)}`;
  }

  /** Records of this stage: [record key, record], in the manifest's order. */
  records(): Array<[string, UnitRecord]> {
    return Object.entries(this.manifest.units).filter(([, record]) => record.stage === this.stage);
  }

  /** The unit key a record key belongs to (the record key without its shard label). */
  static unitKeyOf(recordKey: string): string {
    return recordKey.replace(LAYOUT, '');
  }

  /** The record of a finished unit: same input and version, every part intact. Otherwise null. */
  async finished(unit: UnitSpec): Promise<UnitRecord | null> {
    const record = this.manifest.units[this.recordKey(unit)];
    if (!record || record.inputSha256 !== unit.inputSha256 || record.version !== unit.version) return null;
    for (const part of record.parts) if (!(await isPartIntact(this.dir, part))) return null;
    return record;
  }

  /** Records a unit that ran; then removes the files its previous record and superseded layouts no longer need. */
  async commit(unit: UnitSpec, outcome: UnitOutcome): Promise<UnitRecord> {
    const key = this.recordKey(unit);
    const parts = await Promise.all(outcome.parts.map((part) => this.withMtime(part)));
    const record: UnitRecord = {
      stage: this.stage,
      shard: shardLabel(this.shard),
      parts,
      counts: outcome.counts,
      ...(unit.version === undefined ? {} : { version: unit.version }),
      ...(unit.input === undefined ? {} : { input: unit.input }),
      ...(unit.inputSha256 === undefined ? {} : { inputSha256: unit.inputSha256 }),
    };
    const previous = this.manifest.units[key];
    const superseded = this.otherLayouts(unit.key);
    await this.update((units) => {
      units[key] = record;
      for (const old of superseded) delete units[old];
    });
    const dropped = [...(previous?.parts ?? []), ...superseded.flatMap((old) => this.dropped.get(old) ?? [])];
    await this.removeUnreferenced(dropped);
    return record;
  }

  /** Removes a unit's record and the parts no other record refers to (a unit whose input no longer has it). */
  async forget(recordKey: string): Promise<void> {
    const record = this.manifest.units[recordKey];
    if (!record) return;
    await this.update((units) => {
      delete units[recordKey];
    });
    await this.removeUnreferenced(record.parts);
  }

  /** Parts of records deleted by the last update, by record key (their files are removed after the update). */
  private readonly dropped = new Map<string, PartRecord[]>();

  private otherLayouts(unitKey: string): string[] {
    const count = this.shard.count;
    const found: string[] = [];
    for (const [key, record] of Object.entries(this.manifest.units)) {
      if (record.stage !== this.stage || UnitLedger.unitKeyOf(key) !== unitKey) continue;
      const layout = LAYOUT.exec(key);
      if (layout && Number(layout[2]) !== count) {
        found.push(key);
        this.dropped.set(key, record.parts);
      }
    }
    return found;
  }

  private async update(mutate: (units: Manifest['units']) => void): Promise<void> {
    const fresh = await updateManifest(this.dir, (m) => mutate(m.units));
    // Other shards record their units concurrently: keep their records in view too.
    this.manifest.units = fresh.units;
  }

  private async removeUnreferenced(parts: readonly PartRecord[]): Promise<void> {
    if (parts.length === 0) return;
    const referenced = new Set<string>();
    for (const record of Object.values(this.manifest.units)) for (const part of record.parts) referenced.add(part.file);
    // A record names its files; resolveInside keeps a tampered manifest from deleting outside the directory.
    for (const part of parts) if (!referenced.has(part.file)) await rm(resolveInside(this.dir, part.file), { force: true });
  }

  private async withMtime(part: PartRecord): Promise<PartRecord> {
    const { mtimeMs } = await stat(join(this.dir, part.file));
    return { file: part.file, rows: part.rows, bytes: part.bytes, sha256: part.sha256, mtimeMs };
  }
}

/** Runs groups of units in order: finished ones are skipped, the rest run and are recorded. */
export async function runUnitGroups<S extends UnitSpec>(
  ledger: UnitLedger,
  groups: Iterable<UnitGroup<S>> | AsyncIterable<UnitGroup<S>>,
  onGroup?: (sofar: UnitsSummary) => void,
): Promise<UnitsSummary> {
  const summary: UnitsSummary = { written: 0, skipped: 0, counts: emptyCounts() };
  for await (const group of groups) {
    const todo: S[] = [];
    for (const unit of group.units) {
      const record = await ledger.finished(unit);
      if (record === null) {
        todo.push(unit);
        continue;
      }
      await group.skipped?.(unit, record);
      addCounts(summary.counts, record.counts);
      summary.skipped++;
    }
    if (todo.length > 0) {
      const outcomes = await group.run(todo);
      for (const unit of todo) {
        const outcome = outcomes.get(unit.key);
        if (!outcome) throw new Error(`unit ${unit.key} ran but returned no outcome`);
        await ledger.commit(unit, outcome);
        addCounts(summary.counts, outcome.counts);
        summary.written++;
      }
    }
    onGroup?.(summary);
  }
  return summary;
}

/** One unit per group: the common case. */
export interface UnitJob<S extends UnitSpec = UnitSpec> {
  unit: S;
  run(): Promise<UnitOutcome>;
  skipped?(record: UnitRecord): Promise<void> | void;
}

export function runUnits<S extends UnitSpec>(
  ledger: UnitLedger,
  jobs: Iterable<UnitJob<S>> | AsyncIterable<UnitJob<S>>,
  onUnit?: (sofar: UnitsSummary) => void,
): Promise<UnitsSummary> {
  const groups = async function* (): AsyncGenerator<UnitGroup<S>> {
    for await (const job of jobs) {
      yield {
        units: [job.unit],
        run: async () => new Map([[job.unit.key, await job.run()]]),
        ...(job.skipped ? { skipped: (_unit: S, record: UnitRecord) => job.skipped!(record) } : {}),
      };
    }
  };
  return runUnitGroups(ledger, groups(), onUnit);
}

/**
 * The fingerprint of a dataset part a unit reads: the sha256 its writer recorded (cheap), else the file's own hash
 * (a part written by hand or by another tool), combined with whatever else changes the unit's output.
 */
export async function partFingerprint(dir: string, file: string, ...extra: string[]): Promise<string> {
  const content = (await recordedPart(dir, file))?.sha256 ?? (await sha256OfFile(join(dir, file)));
  return sha256Hex([file, content, ...extra].join('\0'));
}

/** A unit that records itself in its own output (a Parquet copy that holds the sha256 of its source). */
export interface SelfRecordedJob {
  /** True when the output exists and records the current input: the unit is skipped. */
  current(): Promise<boolean>;
  run(): Promise<void>;
}

/**
 * The same loop for units whose record is their output, for a stage that writes outside any dataset directory's
 * manifest (`tables --out`): skip the current ones, run the rest, count both.
 */
export async function runSelfRecordedUnits(
  jobs: Iterable<SelfRecordedJob> | AsyncIterable<SelfRecordedJob>,
): Promise<{ written: number; skipped: number }> {
  const summary = { written: 0, skipped: 0 };
  for await (const job of jobs) {
    if (await job.current()) {
      summary.skipped++;
      continue;
    }
    await job.run();
    summary.written++;
  }
  return summary;
}
