/** "key n, key n" sorted by count, for one-line summaries. */
export function listing(map: Record<string, number>): string {
  const entries = Object.entries(map).sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
  return entries.length === 0 ? '—' : entries.map(([key, n]) => `${key} ${n}`).join(', ');
}
