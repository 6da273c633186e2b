/**
 * Seeded pseudo-random numbers (reports' bootstrap, tiny models' weights). Everything draws from here rather than
 * Math.random, so the same seed gives the same numbers on every machine and every run. (Training keeps its own
 * generator, src/train/rng.ts, whose state must go into checkpoints.)
 */

/** A generator of uniform numbers in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32: 32 bits of state and a period of 2^32, plenty for bootstrap index draws; not for cryptography.
 * Any number seeds it (only its low 32 bits are used).
 */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer uniform in [0, n). n must be a positive integer below 2^32 (modulo bias is then below 2^-32·n). */
export function randomInt(rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`randomInt: n must be a positive integer, got ${n}`);
  return randomIndex(rng, n);
}

/** randomInt's draw without its check of n, for loops that check n once and draw millions of times (the bootstrap). */
export function randomIndex(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}
