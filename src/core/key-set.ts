// A set of ids by their full key words (core/id-words.ts, width 8: all 256 bits of a sha256 hex id, else the sha256
// of the id): 32 bytes and a hash slot per id, where a Set of the 64-character strings costs ≈ 120 bytes an id (≈ 1.2
// GB a worker at 10M pairs, measured) and a string built for each. What the reader's de-duplication keeps of every
// prompt, image and pair of a dataset.
import type { IdWords } from './id-words.ts';

const WIDTH = 8;

export class IdKeySet {
  private words: Uint32Array;
  private slots: Int32Array;
  private count = 0;

  constructor(expected = 1024) {
    const capacity = Math.max(1024, expected);
    this.words = new Uint32Array(capacity * WIDTH);
    this.slots = new Int32Array(slotsFor(capacity));
  }

  get size(): number {
    return this.count;
  }

  /** Adds the key at `key[at, at + 8)`; true when it was not in the set. */
  add(key: IdWords, at: number): boolean {
    if (this.count * WIDTH >= this.words.length) this.grow();
    const { words, slots } = this;
    const mask = slots.length - 1;
    // The first word of a sha256-derived key is already uniform.
    let slot = key[at]! & mask;
    for (;;) {
      const entry = slots[slot]!;
      if (entry === 0) break;
      if (this.equals(entry - 1, key, at)) return false;
      slot = (slot + 1) & mask;
    }
    const row = this.count++;
    words.set(key.subarray(at, at + WIDTH), row * WIDTH);
    slots[slot] = row + 1;
    return true;
  }

  private equals(row: number, key: IdWords, at: number): boolean {
    const r = row * WIDTH;
    for (let w = 0; w < WIDTH; w++) if (this.words[r + w] !== key[at + w]) return false;
    return true;
  }

  private grow(): void {
    const capacity = (this.words.length / WIDTH) * 2;
    const words = new Uint32Array(capacity * WIDTH);
    words.set(this.words);
    const slots = new Int32Array(slotsFor(capacity));
    const mask = slots.length - 1;
    for (let row = 0; row < this.count; row++) {
      let slot = words[row * WIDTH]! & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = row + 1;
    }
    this.words = words;
    this.slots = slots;
  }
}

/** A power of two at least 1.5× the capacity, so open addressing stays short (load ≤ ⅔). */
export function slotsFor(capacity: number): number {
  let slots = 1024;
  while (slots < capacity * 1.5) slots *= 2;
  return slots;
}
