// The 128-bit id keys the score table joins on: the same words from a string and from its UTF-8 bytes, hex ids
// read as hex, and any other string hashed, so unlike strings never share a key.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idWordsFromBytes, idWordsFromString } from '../../src/core/id-words.ts';
import { sha256Hex } from '../../src/core/ids.ts';

const fromString = (id: string): number[] => {
  const out = new Uint32Array(4);
  idWordsFromString(id, out, 0);
  return [...out];
};
const fromBytes = (id: string): number[] => {
  const bytes = new TextEncoder().encode(`xx${id}yy`);
  const out = new Uint32Array(6);
  idWordsFromBytes(bytes, 2, bytes.length - 2, out, 1);
  return [...out.subarray(1, 5)];
};
const wordsOfHex = (hex: string): number[] => [0, 8, 16, 24].map((at) => parseInt(hex.slice(at, at + 8), 16));

test('a sha256 hex id is its first 128 bits, from a string or from bytes inside a buffer', () => {
  const id = sha256Hex('image 1');
  assert.deepEqual(fromString(id), wordsOfHex(id));
  assert.deepEqual(fromBytes(id), wordsOfHex(id));
});

test('ids that are not 64 lowercase hex digits get the words of their sha256 behind a prefix, the same from both paths', () => {
  const upper = sha256Hex('image 1').toUpperCase();
  for (const id of ['img-1', '', 'é'.repeat(64), upper, `${sha256Hex('x').slice(0, 63)}g`]) {
    assert.deepEqual(fromString(id), wordsOfHex(sha256Hex(`balanced-dpo id\u0000${id}`)), id);
    assert.deepEqual(fromBytes(id), fromString(id), id);
  }
  assert.notDeepEqual(fromString(upper), fromString(upper.toLowerCase()), 'case matters, as it does for the string');
});

test('an id and the hex of its own sha256 are two keys, in the joins (128 bits) and the de-duplication (256)', () => {
  for (const id of ['prompt 5', 'img-1', '']) {
    assert.notDeepEqual(fromString(id), fromString(sha256Hex(id)), id);
    assert.notDeepEqual(fromBytes(id), fromBytes(sha256Hex(id)), id);
    const wide = (text: string): number[] => {
      const out = new Uint32Array(8);
      idWordsFromString(text, out, 0, 8);
      return [...out];
    };
    assert.notDeepEqual(wide(id), wide(sha256Hex(id)), id);
  }
});

test('one non-hex character anywhere in 64 makes the id hashed, whichever half of the key it falls in', () => {
  const hex = sha256Hex('image 2');
  for (let at = 0; at < 64; at++) {
    for (const c of ['g', 'A', '/', ':', '`', '\u0000']) {
      const id = `${hex.slice(0, at)}${c}${hex.slice(at + 1)}`;
      assert.deepEqual(fromString(id), wordsOfHex(sha256Hex(`balanced-dpo id\u0000${id}`)), `${c} at ${at}`);
      assert.deepEqual(fromBytes(id), fromString(id), `${c} at ${at}`);
    }
  }
});
