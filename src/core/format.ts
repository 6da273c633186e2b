/** "key n, key n" sorted by count, for one-line summaries. */
export function listing(map: Record<string, number>): string {
  const entries = Object.entries(map).sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
  return entries.length === 0 ? '—' : entries.map(([key, n]) => `${key} ${n}`).join(', ');
}

/** Characters of a prompt that a report shows: a caption of any length must not make a report of that length. */
export const SHOWN_TEXT_CHARS = 1000;

/** `text`, or its first SHOWN_TEXT_CHARS characters, an ellipsis and the full length ("… (1,048,576 characters)"). */
export function boundedText(text: string, limit = SHOWN_TEXT_CHARS): string {
  if (text.length <= limit) return text;
  const code = text.charCodeAt(limit - 1);
  // Never split a surrogate pair: half an emoji is not a character.
  const end = code >= 0xd800 && code <= 0xdbff ? limit - 1 : limit;
  return `${text.slice(0, end)}… (${text.length.toLocaleString('en-US')} characters)`;
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers on a report page: typographic ('–' for undefined, a real minus sign).

/** A number for the page: fixed digits, a real minus sign, '–' when undefined. */
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const text = x.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text.replace('-', '−');
}

/** A score on any scale with about five significant digits (cosines and logits alike). */
export function fmtScore(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const magnitude = Math.floor(Math.log10(Math.abs(x) || 1));
  return fmt(x, Math.max(0, Math.min(6, 4 - magnitude)));
}

export function pct(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : `${fmt(100 * x, digits)}%`;
}

/** A count with thousands separators (1,234). */
export function countText(n: number): string {
  return n.toLocaleString('en-US');
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers in terminal text: ASCII, 'n/a' for undefined.

/** A share as a percentage with one decimal ("12.5%"), 'n/a' when undefined. */
export function percentOrNa(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`;
}

/** A number with fixed digits, 'n/a' when undefined. */
export function fixedOrNa(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}
