// The encode stage's public entry.
export { EncodeError, runEncode, type EncodeOptions, type EncodeProgress, type EncodeSummary } from './encode.ts';
