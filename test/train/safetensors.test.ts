import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors, type TensorDict } from '../../src/io/safetensors.ts';

test('a tiny file is byte for byte what the format specifies', () => {
  const tensors: TensorDict = new Map([
    ['b', { shape: [2], data: new Float32Array([1, -2]) }],
    ['a', { shape: [1, 1], data: new Float32Array([0.5]) }],
  ]);
  const bytes = encodeSafetensors(tensors, { format: 'pt' });
  const json =
    '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
  // 8 + header must be a multiple of 8: the header is padded with spaces.
  const padded = json + ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  assert.equal((8 + padded.length) % 8, 0);
  const expected = Buffer.concat([
    Buffer.from([padded.length, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from(padded, 'utf8'),
    // 0.5, 1.0, −2.0 as little-endian IEEE-754 singles.
    Buffer.from([0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]),
  ]);
  assert.equal(padded.length < 256, true);
  assert.deepEqual(Buffer.from(bytes), expected);
  const back = decodeSafetensors(bytes);
  assert.deepEqual(back.metadata, { format: 'pt' });
  assert.deepEqual([...back.tensors.keys()], ['a', 'b']);
  assert.deepEqual(back.tensors.get('b'), { shape: [2], data: new Float32Array([1, -2]) });
});

test('round trip through a file keeps names, shapes, values and metadata', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bdpo-st-'));
  try {
    const tensors: TensorDict = new Map();
    tensors.set('blocks.0.attn.q.weight', { shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => Math.sin(i) * 1e3) });
    tensors.set('scalar', { shape: [], data: new Float32Array([Math.PI]) });
    tensors.set('empty', { shape: [0, 4], data: new Float32Array(0) });
    tensors.set('tiny', { shape: [2], data: new Float32Array([1e-40, -0]) });
    const path = join(dir, 'w.safetensors');
    await writeSafetensors(path, tensors, { step: '12', config: '{"width":32}' });
    const back = await readSafetensors(path);
    assert.deepEqual(back.metadata, { step: '12', config: '{"width":32}' });
    assert.deepEqual([...back.tensors.keys()], ['blocks.0.attn.q.weight', 'empty', 'scalar', 'tiny']);
    for (const [name, value] of tensors) assert.deepEqual(back.tensors.get(name), value, name);
    assert.ok(Object.is(back.tensors.get('tiny')!.data[1], -0));
    const raw = await readFile(path);
    assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('malformed files are refused with a reason', () => {
  const good = encodeSafetensors(new Map([['x', { shape: [2], data: new Float32Array([1, 2]) }]]));
  assert.throws(() => decodeSafetensors(good.subarray(0, 4)), /shorter/);
  assert.throws(() => decodeSafetensors(good.subarray(0, good.length - 1)), /outside the data/);
  const withHeader = (header: object, dataBytes: number): Uint8Array => {
    const json = Buffer.from(JSON.stringify(header));
    const out = Buffer.alloc(8 + json.length + dataBytes);
    out.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(out, 8);
    return out;
  };
  assert.throws(() => decodeSafetensors(withHeader({ x: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, 4)), /only F32/);
  assert.throws(() => decodeSafetensors(withHeader({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), /shape needs 12/);
  assert.throws(
    () =>
      decodeSafetensors(
        withHeader({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8),
      ),
    /gap or overlap/,
  );
  assert.throws(() => decodeSafetensors(withHeader({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8)), /trailing/);
  assert.throws(() => encodeSafetensors(new Map([['x', { shape: [3], data: new Float32Array(2) }]])), /holds 3 values/);
});
