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
