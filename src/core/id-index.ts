// A compact index from content ids (64-character hex) to row locations: 8 bytes of key and 8 of location per id,
// where a Map of strings would take ~150. Stages use it to know which images and prompts a selection holds.
import { sha256Hex } from './ids.ts';

/** The first 52 bits of an id: its leading 13 hex digits, or those of its sha256 when it is not hex. */
export function idKey(id: string): number {
  const hex = /^[0-9a-f]{13}/i.test(id) ? id : sha256Hex(id);
  return parseInt(hex.slice(0, 13), 16);
}

export interface RowLocation {
  file: number;
  row: number;
}

/**
 * Sorted keys with their (file, row) locations: 16 bytes per id instead of a Map of strings (≈ 150 bytes per
 * 64-character id). A key is only 52 bits of the id, so a lookup returns candidates that the caller confirms
 * against the id stored in the row (two ids sharing a key — or one id stored twice — give two candidates).
 */
export class IdIndex {
  private constructor(
    private readonly keys: Float64Array,
    private readonly files: Uint32Array,
    private readonly rows: Uint32Array,
  ) {}

  static builder(): IdIndexBuilder {
    return new IdIndexBuilder();
  }

  /** @internal */
  static fromSorted(keys: Float64Array, files: Uint32Array, rows: Uint32Array): IdIndex {
    return new IdIndex(keys, files, rows);
  }

  get size(): number {
    return this.keys.length;
  }

  /** sha256 of the sorted keys: the same ids (with the same multiplicities) give the same digest on every host. */
  digest(): string {
    const bytes = new DataView(new ArrayBuffer(this.keys.length * 8));
    this.keys.forEach((key, i) => bytes.setFloat64(i * 8, key, true));
    return sha256Hex(new Uint8Array(bytes.buffer));
  }

  /** Whether an id with this id's key was added: never false for an added id; rarely true for another one. */
  mayContain(id: string): boolean {
    const key = idKey(id);
    const i = this.lowerBound(key);
    return i < this.keys.length && this.keys[i] === key;
  }

  /** Locations of the rows whose id has this id's key, in the order they were added. */
  candidates(id: string): RowLocation[] {
    const key = idKey(id);
    const out: RowLocation[] = [];
    for (let i = this.lowerBound(key); i < this.keys.length && this.keys[i] === key; i++) {
      out.push({ file: this.files[i]!, row: this.rows[i]! });
    }
    return out;
  }

  private lowerBound(key: number): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export class IdIndexBuilder {
  private keys: number[] = [];
  private files: number[] = [];
  private rows: number[] = [];

  add(id: string, file = 0, row = 0): void {
    this.keys.push(idKey(id));
    this.files.push(file);
    this.rows.push(row);
  }

  build(): IdIndex {
    const n = this.keys.length;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const keys = this.keys;
    // Stable by insertion order among equal keys, so the first stored copy of an id is found first.
    order.sort((x, y) => keys[x]! - keys[y]! || x - y);
    const sortedKeys = new Float64Array(n);
    const files = new Uint32Array(n);
    const rows = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const j = order[i]!;
      sortedKeys[i] = keys[j]!;
      files[i] = this.files[j]!;
      rows[i] = this.rows[j]!;
    }
    this.keys = [];
    this.files = [];
    this.rows = [];
    return IdIndex.fromSorted(sortedKeys, files, rows);
  }
}
