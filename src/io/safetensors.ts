// The safetensors format (as the Hugging Face library writes it): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}} padded with spaces to
// a multiple of 8 bytes, then the raw little-endian tensor bytes back to back. Only F32 is written and read.
import { readFile } from 'node:fs/promises';
import { writeChunks, writeStreamAtomic } from './atomic.ts';
import { describeJsonSyntaxError } from './json-file.ts';
import { BdpoError } from '../core/errors.ts';

export interface FloatArray {
  shape: number[];
  data: Float32Array;
}

export type TensorDict = Map<string, FloatArray>;

export interface Safetensors {
  tensors: TensorDict;
  metadata: Record<string, string>;
}

const METADATA_KEY = '__metadata__';

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** Tensors in name order; `metadata` values must be strings (the format says so). */
export function encodeSafetensors(tensors: TensorDict, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new Error(`safetensors metadata ${key} must be a string`);
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new Error(`a tensor cannot be called ${METADATA_KEY}`);
    const { shape, data } = tensors.get(name)!;
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`${name}: bad shape [${shape.join(', ')}]`);
    if (elementCount(shape) !== data.length) {
      throw new Error(`${name}: shape [${shape.join(', ')}] holds ${elementCount(shape)} values, data has ${data.length}`);
    }
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  const padding = (8 - ((8 + headerBytes.length) % 8)) % 8;
  if (padding > 0) {
    json += ' '.repeat(padding);
    headerBytes = encoder.encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const name of names) {
    const { data } = tensors.get(name)!;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (isLittleEndian) out.set(bytes, position);
    else for (let i = 0; i < data.length; i++) view.setFloat32(position + 4 * i, data[i]!, true);
    position += data.byteLength;
  }
  return out;
}

const isLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function isHeaderEntry(value: unknown): value is HeaderEntry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  const offsets = entry['data_offsets'];
  const shape = entry['shape'];
  return (
    typeof entry['dtype'] === 'string' &&
    Array.isArray(shape) &&
    shape.every((d) => Number.isInteger(d) && d >= 0) &&
    Array.isArray(offsets) &&
    offsets.length === 2 &&
    offsets.every((o) => Number.isInteger(o) && o >= 0)
  );
}

export class SafetensorsError extends BdpoError {}

/** `source` names the bytes in errors: the file's path, or "safetensors" for bytes from elsewhere. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): Safetensors {
  const fail = (problem: string): SafetensorsError => new SafetensorsError(`${source}: ${problem}`);
  if (bytes.length < 8) throw fail(`${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.length) {
    throw fail(`header length ${headerLength} exceeds the file (${bytes.length} bytes): truncated or not a safetensors file`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    throw fail('header is not UTF-8 text: not a safetensors file');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    throw fail(`header is not JSON (${describeJsonSyntaxError(text)} of the header)`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw fail('header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorDict = new Map();
  const spans: [number, number, string][] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(`${METADATA_KEY} is not an object`);
      for (const [key, text] of Object.entries(value as Record<string, unknown>)) {
        if (typeof text !== 'string') throw fail(`metadata ${key} is not a string`);
        metadata[key] = text;
      }
      continue;
    }
    if (!isHeaderEntry(value)) {
      throw fail(`tensor ${name}: malformed entry (needs dtype, shape of non-negative integers, data_offsets [begin, end])`);
    }
    if (value.dtype !== 'F32') throw fail(`tensor ${name} has dtype ${value.dtype}; only F32 is supported`);
    const [begin, end] = value.data_offsets;
    if (end < begin || end > dataLength) throw fail(`tensor ${name}: offsets [${begin}, ${end}] outside the data (${dataLength} bytes)`);
    if (end - begin !== elementCount(value.shape) * 4) {
      const needed = elementCount(value.shape) * 4;
      throw fail(`tensor ${name} spans ${end - begin} bytes, its shape needs ${needed} ([${value.shape.join(', ')}] × 4)`);
    }
    spans.push([begin, end, name]);
    const data = new Float32Array(elementCount(value.shape));
    if (isLittleEndian) new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    else for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(dataStart + begin + 4 * i, true);
    tensors.set(name, { shape: [...value.shape], data });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cursor = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== cursor) throw fail(`tensor ${name} starts at ${begin}, expected ${cursor} (gap or overlap)`);
    cursor = end;
  }
  if (cursor !== dataLength) throw fail(`${dataLength - cursor} trailing bytes after the last tensor`);
  return { tensors, metadata };
}

/** Atomic (see writeStreamAtomic): a reader never sees half a weights file. */
export async function writeSafetensors(path: string, tensors: TensorDict, metadata: Record<string, string> = {}): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  await writeStreamAtomic(path, (handle) => writeChunks(handle, bytes));
}

export async function readSafetensors(path: string): Promise<Safetensors> {
  return decodeSafetensors(await readFile(path), path);
}
