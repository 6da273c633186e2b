// Content-derived ids (docs/design.md §2): re-ingesting the same data gives the same ids, so duplicates collapse.
import { createHash } from 'node:crypto';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** NFC, trimmed, inner whitespace runs collapsed to one space: the text a prompt id is derived from. */
export function normalisePrompt(text: string): string {
  return text.normalize('NFC').trim().replace(/\s+/gu, ' ');
}

export function promptId(text: string): string {
  return sha256Hex(`prompt\0${normalisePrompt(text)}`);
}

export function imageId(bytes: Uint8Array): string {
  return sha256Hex(bytes);
}

/** A pair keeps the source's orientation: (a, b) and (b, a) are different pairs with complementary labels. */
export function pairId(promptIdHex: string, imageA: string, imageB: string): string {
  return sha256Hex(`pair\0${promptIdHex}\0${imageA}\0${imageB}`);
}
