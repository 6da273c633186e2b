// What every preprocessing profile shares about geometry: the shortest-edge size, Python's rounding of a crop offset,
// and a small LRU of per-geometry plans (the taps of a resize), since a dataset has few distinct image sizes.

/** The resized size HF and torchvision compute for a shortest edge of `size`: the long side is truncated. */
export function shortestEdgeSize(width: number, height: number, size: number): { width: number; height: number } {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  if (short === size) return { width, height };
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? { width: size, height: newLong } : { width: newLong, height: size };
}

/** Python's round(): halves go to the even neighbour, as torchvision's CenterCrop computes its offset. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Plans by geometry key, most recently used last; a Map iterates in insertion order, which makes it an LRU. */
export class PlanCache<T> {
  private readonly plans = new Map<string, T>();

  constructor(readonly limit: number) {}

  get size(): number {
    return this.plans.size;
  }

  get(key: string, make: () => T): T {
    const cached = this.plans.get(key);
    if (cached !== undefined) {
      this.plans.delete(key);
      this.plans.set(key, cached);
      return cached;
    }
    const plan = make();
    this.plans.set(key, plan);
    if (this.plans.size > this.limit) this.plans.delete(this.plans.keys().next().value!);
    return plan;
  }

  clear(): void {
    this.plans.clear();
  }
}
