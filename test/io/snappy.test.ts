import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { snappyCompress as libraryCompress } from 'hyparquet-writer/src/snappy.js';
import { snappyUncompress } from 'hyparquet';
import { snappyCompress } from '../../src/io/snappy.ts';
import { uniformGenerator } from '../../tools/onnx-builder/seeded-random.ts';
import { testCommittedWasm } from '../support/wasm-build.ts';

testCommittedWasm(new URL('../../src/io/wasm/snappy.wat', import.meta.url).pathname);

const random = uniformGenerator(7);
const hex = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => '0123456789abcdef'.charCodeAt(Math.floor(random() * 16)));
const runs = (n: number): Uint8Array => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; ) {
    const length = 1 + Math.floor(random() * 300);
    const value = Math.floor(random() * 4);
    out.fill(value, i, Math.min(n, i + length));
    i += length;
  }
  return out;
};
/** Parquet-page-like: length-prefixed 64-character ids, and doubles whose high bytes repeat. */
const idPage = (rows: number): Uint8Array => {
  const out = new Uint8Array(rows * 68);
  const view = new DataView(out.buffer);
  for (let r = 0; r < rows; r++) {
    view.setUint32(r * 68, 64, true);
    out.set(hex(64), r * 68 + 4);
  }
  return out;
};
const doubles = (rows: number): Uint8Array => {
  const values = Float64Array.from({ length: rows }, () => (random() < 0.3 ? 0.5 : random()));
  return new Uint8Array(values.buffer);
};
/** Near copies of earlier bytes at every distance up to past the 64 KiB window. */
const echoes = (n: number): Uint8Array => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const back = [3, 17, 2048, 2049, 65535, 65536, 70000][Math.floor(random() * 7)]!;
    out[i] = i >= back && random() < 0.9 ? out[i - back]! : Math.floor(random() * 256);
  }
  return out;
};

test('snappy: the same bytes as the writer’s built-in compressor, on every kind of input', () => {
  const inputs: Array<[string, Uint8Array]> = [['empty', new Uint8Array(0)]];
  for (let n = 1; n <= 80; n++) inputs.push([`${n} random bytes`, randomBytes(n)], [`${n} zeros`, new Uint8Array(n)]);
  for (const n of [100, 1000, 4096, 16_383, 16_384, 16_385, 65_536, 200_000, 1_100_000]) {
    inputs.push(
      [`${n} random`, randomBytes(n)],
      [`${n} hex`, hex(n)],
      [`${n} runs`, runs(n)],
      [`${n} zeros`, new Uint8Array(n)],
      [`${n} echoes`, echoes(n)],
      [`${n} doubles`, doubles(Math.ceil(n / 8))],
    );
  }
  inputs.push(['ids page', idPage(20_000)]);
  for (const [what, input] of inputs) {
    const ours = snappyCompress(input);
    const theirs = libraryCompress(input);
    assert.deepEqual(Buffer.from(ours), Buffer.from(theirs), what);
    assert.deepEqual(Buffer.from(snappyUncompressed(ours, input.length)), Buffer.from(input), `${what}: round trip`);
  }
});

test('snappy: a control — a changed byte of input changes the output, so the comparison can fail', () => {
  const input = idPage(100);
  const changed = input.slice();
  changed[500] = changed[500]! ^ 1;
  assert.notDeepEqual(Buffer.from(snappyCompress(changed)), Buffer.from(libraryCompress(input)));
});

function snappyUncompressed(compressed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  snappyUncompress(compressed, out);
  return out;
}
