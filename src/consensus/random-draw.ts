// The `random` rule's draw: which metric decides a pair, a pure function of (seed, pair_id).

/**
 * cyrb53 (public domain): a 53-bit hash of a string's UTF-16 code units under a 32-bit seed. Frozen: the
 * `random` rule's draw depends on it, so changing it changes every published `random` consensus file.
 */
export function pairIdHash(seed: number, pairId: string): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < pairId.length; i++) {
    const ch = pairId.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * The metric the `random` rule draws for a pair: a pure function of (seed, pair_id), so results do not depend on
 * batch order or sharding. The 53-bit hash maps to [0, n) by multiply-and-floor (bias below 2^-50).
 */
export function randomMetricIndex(seed: number, pairId: string, nMetrics: number): number {
  return Math.floor((pairIdHash(seed, pairId) / 9007199254740992) * nMetrics);
}
