// The unit engine. A resumable stage declares its units (a stable key, a fingerprint of what the unit reads, the
// version of what computes it) and how to run them; this module alone decides which units this shard owns, which are
// finished, which must be redone, records them (one record file per unit, core/unit-records.ts) and removes the parts
// a redone unit no longer owns.
//
// A unit's output does not depend on the shard layout: shard i of n runs every n-th unit of the run's sorted owner
// keys, starting at the i-th (so each shard gets ⌊N/n⌋ or ⌈N/n⌉ units, where hashing would leave some shards with
// many more), and a unit's parts are the same bytes, under the same names, whatever n. Every shard of a run lists the
// same units (the same inputs); a unit outside the list (a stale record) goes to the shard its key hashes to. Records of directories written by earlier
// versions were keyed by layout (`<key>:s<i>of<n>`, each holding the rows of its shard's ids): the one of layout 1/1
// still counts as the unit's record; all of them are removed, with their parts, when the unit is recorded anew.
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from './ids.ts';
import { resolveInside } from '../io/paths.ts';
import { sweepLeftovers } from '../io/leftovers.ts';
import {
  addCounts,
  emptyCounts,
  isPartIntact,
  recordedPart,
  sha256OfFile,
  type Counts,
  type PartRecord,
  type UnitRecord,
} from './manifest.ts';
import { listUnitRecords, readUnitRecord, removeUnitRecord, writeUnitRecord } from './unit-records.ts';
import { owns, type Shard } from './shard.ts';

export interface UnitSpec {
  /** Stable across runs and shard layouts, e.g. "label:pickscore:pickapic-train-rg0000". */
  key: string;
  /** What the unit reads, condensed: another fingerprint redoes the unit. */
  inputSha256?: string;
  /**
   * The same, computed only when needed (it reads the unit's input): for a finished unit only when `inputSignature`
   * differs from the recorded one, for a unit that runs once.
   */
  fingerprint?: () => Promise<string>;
  /** A cheap stand-in for the fingerprint (the input's size and mtime): while it is unchanged, the input is. */
  inputSignature?: string;
  /** The version of what computes the unit (a metric's version): another version redoes it. */
  version?: string;
  /** The file the unit reads, recorded so that units of a vanished or shrunken input can be found. */
  input?: string;
  /** The key whose hash picks the shard that runs the unit (units that run together share one); default `key`. */
  owner?: string;
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

/** One stage on one shard: which units it owns, which are finished, and recording new ones. */
export class UnitLedger {
  /** Part files → how many of this stage's records name them (label's rejects part is shared by its metrics). */
  private readonly references = new Map<string, number>();
  /** Bytes of record files written by this ledger (bench/shards measures the bookkeeping cost per unit). */
  recordBytes = 0;

  private constructor(
    readonly dir: string,
    readonly stage: string,
    readonly shard: Shard,
    private readonly known: Map<string, UnitRecord>,
  ) {
    for (const [key, record] of known) {
      this.reference(record.parts, 1);
      this.index(key);
    }
  }

  /** Record keys by unit key: a unit's own, and those of legacy layouts (`<key>:s<i>of<n>`) it replaces. */
  private readonly recordKeysOf = new Map<string, Set<string>>();

  private index(recordKey: string): void {
    const unitKey = UnitLedger.unitKeyOf(recordKey);
    let keys = this.recordKeysOf.get(unitKey);
    if (!keys) {
      keys = new Set();
      this.recordKeysOf.set(unitKey, keys);
    }
    keys.add(recordKey);
  }

  /** Reads this stage's records once (a listing per run, not per unit); a legacy manifest is migrated first. */
  static async open(dir: string, stage: string, shard: Shard): Promise<UnitLedger> {
    // What a killed run of any stage left half-written goes first: its temporary files are no one's now.
    await sweepLeftovers(dir);
    return new UnitLedger(dir, stage, shard, new Map(await listUnitRecords(dir, stage)));
  }

  private positions: Map<string, number> | null = null;

  /** The owner keys of every unit of the run, on every shard alike: they are dealt out in sorted order. */
  assign(ownerKeys: Iterable<string>): void {
    const sorted = [...new Set(ownerKeys)].sort();
    this.positions = new Map(sorted.map((key, i) => [key, i]));
  }

  /** Whether this shard runs the unit. */
  owns(unit: UnitSpec): boolean {
    const key = unit.owner ?? unit.key;
    const position = this.positions?.get(key);
    if (position === undefined) return owns(this.shard, key);
    return position % this.shard.count === this.shard.index;
  }

  /** Records of this stage when the ledger was opened, plus those it wrote: [record key, record], by key. */
  records(): Array<[string, UnitRecord]> {
    return [...this.known.entries()];
  }

  /** The unit key a record key belongs to (a legacy record key without its shard label). */
  static unitKeyOf(recordKey: string): string {
    return recordKey.replace(LAYOUT, '');
  }

  /** The record of a finished unit: same input and version, every part intact. Otherwise null. */
  async finished(unit: UnitSpec): Promise<UnitRecord | null> {
    const record = (await readUnitRecord(this.dir, this.stage, unit.key)) ?? this.known.get(`${unit.key}:s0of1`) ?? null;
    if (!record || record.version !== unit.version) return null;
    if (unit.fingerprint !== undefined) {
      const trusted = unit.inputSignature !== undefined && record.inputSignature === unit.inputSignature;
      if (!trusted && record.inputSha256 !== (await this.fingerprintOf(unit))) return null;
    } else if (record.inputSha256 !== unit.inputSha256) {
      return null;
    }
    for (const part of record.parts) if (!(await isPartIntact(this.dir, part))) return null;
    return record;
  }

  /** Records a unit that ran (one small file); then removes the files its earlier records no longer need. */
  async commit(unit: UnitSpec, outcome: UnitOutcome): Promise<UnitRecord> {
    const parts = await Promise.all(outcome.parts.map((part) => this.withMtime(part)));
    const inputSha256 = unit.fingerprint !== undefined ? await this.fingerprintOf(unit) : unit.inputSha256;
    const record: UnitRecord = {
      stage: this.stage,
      parts,
      counts: outcome.counts,
      ...(unit.version === undefined ? {} : { version: unit.version }),
      ...(unit.input === undefined ? {} : { input: unit.input }),
      ...(inputSha256 === undefined ? {} : { inputSha256 }),
      ...(unit.fingerprint !== undefined && unit.inputSignature !== undefined ? { inputSignature: unit.inputSignature } : {}),
    };
    // A lookup, not a scan: committing stays O(1) however many units the stage has.
    const earlier = [...(this.recordKeysOf.get(unit.key) ?? [])].map((key) => [key, this.known.get(key)!] as const);
    this.recordBytes += await writeUnitRecord(this.dir, unit.key, record);
    this.reference(parts, 1);
    for (const [key, old] of earlier) {
      if (key !== unit.key) await removeUnitRecord(this.dir, this.stage, key);
      this.known.delete(key);
      this.reference(old.parts, -1);
    }
    this.recordKeysOf.set(unit.key, new Set([unit.key]));
    this.known.set(unit.key, record);
    await this.removeUnreferenced(earlier.flatMap(([, old]) => old.parts));
    return record;
  }

  /** Removes a unit's record and the parts no other record refers to (a unit whose input no longer has it). */
  async forget(recordKey: string): Promise<void> {
    const record = this.known.get(recordKey);
    if (!record) return;
    await removeUnitRecord(this.dir, this.stage, recordKey);
    this.known.delete(recordKey);
    this.recordKeysOf.get(UnitLedger.unitKeyOf(recordKey))?.delete(recordKey);
    this.reference(record.parts, -1);
    await this.removeUnreferenced(record.parts);
  }

  private readonly fingerprints = new Map<string, Promise<string>>();

  private fingerprintOf(unit: UnitSpec): Promise<string> {
    let found = this.fingerprints.get(unit.key);
    if (!found) {
      found = unit.fingerprint!();
      this.fingerprints.set(unit.key, found);
    }
    return found;
  }

  private reference(parts: readonly PartRecord[], by: number): void {
    for (const part of parts) {
      const n = (this.references.get(part.file) ?? 0) + by;
      if (n > 0) this.references.set(part.file, n);
      else this.references.delete(part.file);
    }
  }

  private async removeUnreferenced(parts: readonly PartRecord[]): Promise<void> {
    // A record names its files; resolveInside keeps a tampered record from deleting outside the directory.
    for (const part of parts) {
      if (!this.references.has(part.file)) await rm(resolveInside(this.dir, part.file), { force: true });
    }
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
    // Units another shard owns are not looked at: not their records, not their input.
    const units = group.units.filter((unit) => ledger.owns(unit));
    if (units.length === 0) continue;
    const todo: S[] = [];
    for (const unit of units) {
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
