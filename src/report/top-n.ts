// TopN: the one bounded top-k keeper of the reports (contested pairs, mismatches, the eval gallery). A bounded heap
// of the best items: the worst kept item sits at the root, so a better newcomer replaces it.

export class TopN<T> {
  private readonly items: T[] = [];
  /** `before(x, y)`: x ranks ahead of y. */
  constructor(
    readonly limit: number,
    private readonly before: (x: T, y: T) => boolean,
  ) {}

  push(item: T): void {
    if (this.limit <= 0) return;
    const heap = this.items;
    if (heap.length < this.limit) {
      heap.push(item);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!this.before(heap[parent]!, heap[i]!)) break;
        [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
        i = parent;
      }
    } else if (this.before(item, heap[0]!)) {
      heap[0] = item;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let worst = i;
        if (l < heap.length && this.before(heap[worst]!, heap[l]!)) worst = l;
        if (r < heap.length && this.before(heap[worst]!, heap[r]!)) worst = r;
        if (worst === i) break;
        [heap[worst], heap[i]] = [heap[i]!, heap[worst]!];
        i = worst;
      }
    }
  }

  /**
   * Whether an item would be kept, asked before it is built: true while there is room, else whether `isAhead` says
   * it ranks ahead of the worst kept item. For callers that would otherwise build an item for every candidate.
   */
  wouldKeep(isAhead: (worst: T) => boolean): boolean {
    if (this.limit <= 0) return false;
    return this.items.length < this.limit || isAhead(this.items[0]!);
  }

  /** The kept items, best first. */
  sorted(): T[] {
    return [...this.items].sort((x, y) => (this.before(x, y) ? -1 : this.before(y, x) ? 1 : 0));
  }
}
