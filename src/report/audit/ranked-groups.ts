// HPD ranked groups: pairs `test.json#<group>:<i>-<j>` of one prompt; the group's human ranks are rebuilt from them
// for Kendall's τ.

export const RANKED_PAIR = /^test\.json#(\d+):(\d+)-(\d+)$/;

export interface RankedGroup {
  promptId: string;
  split: string | null;
  category: string | null;
  images: Map<number, string>;
  prefs: { i: number; j: number; pref: number | null }[];
}

/**
 * Human ranks (1 = best, equal ranks for ties) of a group's positions from its pairwise labels: rank_i = 1 + the
 * number of positions preferred over i. Null when a pair of the group is absent or unlabelled, as the ranks could
 * then not be rebuilt exactly.
 */
export function ranksFromPairs(
  positions: readonly number[],
  prefs: readonly { i: number; j: number; pref: number | null }[],
): number[] | null {
  const k = positions.length;
  if (prefs.length !== (k * (k - 1)) / 2) return null;
  const at = new Map(positions.map((p, index) => [p, index]));
  const ranks = new Array<number>(k).fill(1);
  const seen = new Set<string>();
  for (const { i, j, pref } of prefs) {
    const x = at.get(i);
    const y = at.get(j);
    if (x === undefined || y === undefined || pref === null || seen.has(`${i}-${j}`)) return null;
    seen.add(`${i}-${j}`);
    if (pref > 0.5) ranks[y]! += 1;
    else if (pref < 0.5) ranks[x]! += 1;
  }
  return ranks;
}
