import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromFloat16Bits, toFloat16Bits } from '../../src/io/float16.ts';
import { GraphBuilder } from '../../tools/onnx-builder/graph.ts';
import { createSession, float32Output } from '../../src/models/session.ts';
import { SeededRandom } from '../../tools/onnx-builder/seeded-random.ts';

test('float16 bit patterns of known values, with round-half-to-even', () => {
  const table: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [65504, 0x7bff],
    [65519, 0x7bff], // below the midpoint to the next (unrepresentable) step
    [65520, 0x7c00], // the midpoint rounds to even: Infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 1 ulp → even (0)
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 ulps → even (2)
    [1 + 2 ** -11, 0x3c00], // tie → even mantissa
    [1 + 3 * 2 ** -11, 0x3c02],
  ];
  for (const [v, bits] of table) assert.equal(toFloat16Bits(v), bits, `toFloat16Bits(${v}) = 0x${toFloat16Bits(v).toString(16)}`);
  assert.equal(toFloat16Bits(NaN) & 0x7c00, 0x7c00);
  assert.ok(Number.isNaN(fromFloat16Bits(0x7e00)));
  assert.equal(fromFloat16Bits(0x7bff), 65504);
  assert.equal(fromFloat16Bits(0x0001), 2 ** -24);
  assert.equal(fromFloat16Bits(0xfc00), -Infinity);
  // Every finite half survives a round trip.
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00) continue;
    assert.equal(toFloat16Bits(fromFloat16Bits(h)), h);
  }
});

test('fp16 models: float32 feeds become float16 and float16 outputs come back as numbers, agreeing with ORT casts', async () => {
  const g = new GraphBuilder('fp16');
  const x = g.input('x', 'float16', ['n']);
  const w = g.input('w', 'float32', ['n']);
  g.output(g.op('Cast', [x], { to: 1 }, { out: 'x_as_float' }), 'float32', ['n']);
  g.output(g.op('Cast', [w], { to: 10 }, { out: 'w_as_half' }), 'float16', ['n']);
  const s = await createSession(g.toBytes(), { device: 'cpu' });
  try {
    const rng = new SeededRandom(9);
    const values = Float32Array.from([...rng.normals(200, 100), 1e-6, 3e-5, -7e-8, 65504, 70000, 1 / 3]);
    const out = await s.run({ x: { data: values, dims: [values.length] }, w: { data: values, dims: [values.length] } });
    const expected = Array.from(values, (v) => fromFloat16Bits(toFloat16Bits(v)));
    // Our encoding, decoded by ORT.
    assert.deepEqual(Array.from(float32Output(out, 'x_as_float').data), expected);
    // ORT's encoding, decoded by us.
    const half = float32Output(out, 'w_as_half');
    assert.deepEqual(Array.from(half.data), expected);
    assert.ok(
      expected.some((v, i) => v !== values[i]),
      'rounding happened',
    );
  } finally {
    await s.dispose();
  }
});
