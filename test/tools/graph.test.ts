import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { float, floats, GraphBuilder } from '../../tools/onnx-builder/graph.ts';
import { ProtoWriter } from '../../tools/onnx-builder/protobuf-writer.ts';
import { createSession, float32Output } from '../../src/models/session.ts';
import { SeededRandom } from '../../tools/onnx-builder/seeded-random.ts';

const PYTHON = '/usr/bin/python3';
const pythonOnnx = spawnSync(PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;

test('protobuf wire encoding matches the examples of the protobuf encoding guide', () => {
  // "150 in field 1" is the guide's canonical example: 08 96 01.
  assert.deepEqual([...new ProtoWriter().varint(1, 150).toBytes()], [0x08, 0x96, 0x01]);
  assert.deepEqual([...new ProtoWriter().varint(2, 300).toBytes()], [0x10, 0xac, 0x02]);
  // Negative int64: ten bytes of two's complement.
  assert.deepEqual([...new ProtoWriter().varint(1, -1).toBytes()], [0x08, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1]);
  assert.deepEqual([...new ProtoWriter().varint(1, -2n).toBytes()], [0x08, 254, 255, 255, 255, 255, 255, 255, 255, 255, 1]);
  // "testing" in field 2: 12 07 74 65 73 74 69 6e 67.
  assert.deepEqual([...new ProtoWriter().string(2, 'testing').toBytes()], [0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]);
  // Embedded message: field 3 holding {field 1 = 150}: 1a 03 08 96 01.
  assert.deepEqual([...new ProtoWriter().message(3, new ProtoWriter().varint(1, 150)).toBytes()], [0x1a, 0x03, 0x08, 0x96, 0x01]);
  // Packed repeated int: field 4 = [3, 270, 86942]: 22 06 03 8e 02 9e a7 05.
  assert.deepEqual([...new ProtoWriter().packedVarints(4, [3, 270, 86942]).toBytes()], [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]);
  // float 1.5 in field 2 (fixed32): 15 00 00 c0 3f.
  assert.deepEqual([...new ProtoWriter().float(2, 1.5).toBytes()], [0x15, 0x00, 0x00, 0xc0, 0x3f]);
});

test('large payloads are shared, not copied, and lengths stay right across chunks', () => {
  const big = new Uint8Array(10_000).map((_, i) => i % 251);
  const inner = new ProtoWriter().varint(1, 7).bytes(2, big).varint(3, 9);
  const outer = new ProtoWriter().message(5, inner).varint(6, 1);
  const chunks = outer.toChunks();
  assert.ok(chunks.includes(big), 'the payload chunk is the caller’s array');
  const bytes = outer.toBytes();
  // 5<<3|2 = 0x2a; inner length = 2 + (1 + 2 + 10000) + 2 = 10007 → varint 97 4e.
  assert.deepEqual([...bytes.subarray(0, 3)], [0x2a, 0x97, 0x4e]);
  assert.equal(bytes.length, 3 + 10007 + 2);
  assert.deepEqual([...bytes.subarray(5, 8)], [0x12, 0x90, 0x4e]); // field 2, length 10000
  assert.deepEqual([...bytes.subarray(8, 11)], [0, 1, 2]);
  assert.deepEqual([...bytes.subarray(-4)], [0x18, 0x09, 0x30, 0x01]);
});

/** A graph exercising each attribute kind and int64/float initializers; returns bytes and a TS reference. */
function attributeGraph() {
  const rng = new SeededRandom(7);
  const g = new GraphBuilder('attrs');
  const x = g.input('x', 'float32', ['batch', 6]);
  const wData = rng.normals(4 * 6); // Gemm with transB: weight [4, 6]
  const bData = rng.normals(4);
  const w = g.initializer('w', wData, [4, 6]);
  const b = g.initializer('b', bData, [4]);
  const gemm = g.op('Gemm', [x, w, b], { alpha: float(0.5), beta: float(2), transB: 1 });
  const leaky = g.op('LeakyRelu', [gemm], { alpha: float(0.1) });
  const reshaped = g.op('Reshape', [leaky, g.ints([-1, 2, 2])]); // [batch, 2, 2]
  const transposed = g.op('Transpose', [reshaped], { perm: [0, 2, 1] });
  const padded = g.op('Pad', [transposed, g.ints([0, 0, 1, 0, 0, 1])], { mode: 'reflect' }); // [batch, 2, 4]
  const extra = g.op('Constant', [], { value_floats: floats([0.25, -1.5, 3, 0.125]) }); // [4]
  const shifted = g.op('Add', [padded, extra]);
  const ones = g.op('ConstantOfShape', [g.ints([1, 1, 4])], {
    value: { kind: 'tensor', value: { name: 'value', elemType: 'float32', dims: [1], data: Float32Array.of(2.5) } },
  });
  g.op(
    'Concat',
    [
      shifted,
      g.op('Expand', [ones, g.op('Concat', [g.op('Slice', [g.op('Shape', [x]), g.ints([0]), g.ints([1])]), g.ints([1, 4])], { axis: 0 })]),
    ],
    { axis: -2 },
    { out: 'y' },
  );
  g.output({ name: 'y' }, 'float32', ['batch', 3, 4]);

  const reference = (xs: Float32Array, batch: number): Float64Array => {
    const out = new Float64Array(batch * 12);
    for (let n = 0; n < batch; n++) {
      const h: number[] = [];
      for (let o = 0; o < 4; o++) {
        let s = 0;
        for (let i = 0; i < 6; i++) s += (xs[n * 6 + i] as number) * (wData[o * 6 + i] as number);
        const v = 0.5 * s + 2 * (bData[o] as number);
        h.push(v < 0 ? 0.1 * v : v);
      }
      // reshape [2,2] = [[h0,h1],[h2,h3]], transpose → [[h0,h2],[h1,h3]]; reflect-pad each row by 1 on both sides.
      const rows = [
        [h[0], h[2]],
        [h[1], h[3]],
      ] as number[][];
      const extraRow = [0.25, -1.5, 3, 0.125];
      rows.forEach((r, ri) => {
        const paddedRow = [r[1], r[0], r[1], r[0]] as number[];
        paddedRow.forEach((v, c) => (out[n * 12 + ri * 4 + c] = v + (extraRow[c] as number)));
      });
      for (let c = 0; c < 4; c++) out[n * 12 + 8 + c] = 2.5;
    }
    return out;
  };
  return { bytes: g.toBytes(), reference };
}

test('ONNX Runtime runs a built graph with float/int/ints/string/floats/tensor attributes and matches plain TS', async () => {
  const { bytes, reference } = attributeGraph();
  const session = await createSession(bytes, { device: 'cpu' });
  try {
    assert.deepEqual(session.inputs, [{ name: 'x', type: 'float32', shape: ['batch', 6] }]);
    assert.deepEqual(session.outputs, [{ name: 'y', type: 'float32', shape: ['batch', 3, 4] }]);
    const xs = new SeededRandom(11).normals(3 * 6);
    const y = float32Output(await session.run({ x: { data: xs, dims: [3, 6] } }), 'y');
    assert.deepEqual(y.dims, [3, 3, 4]);
    const expected = reference(xs, 3);
    for (let i = 0; i < expected.length; i++) {
      assert.ok(Math.abs((y.data[i] as number) - (expected[i] as number)) < 1e-5, `y[${i}] = ${y.data[i]}, expected ${expected[i]}`);
    }
    // Not trivially constant: the leaky branch and the reflect padding both matter.
    assert.ok(expected.some((v, i) => i % 12 < 8 && v < -0.5) && expected.some((v) => v > 1));
  } finally {
    await session.dispose();
  }
});

test('the same graph encodes to the same bytes; writeFile streams exactly those bytes', async () => {
  const a = attributeGraph().bytes;
  const b = attributeGraph().bytes;
  assert.deepEqual(a, b);
  const dir = mkdtempSync(join(tmpdir(), 'bdpo-graph-'));
  try {
    const g = new GraphBuilder('copy');
    const x = g.input('x', 'float32', [2]);
    g.output(g.op('Add', [x, g.initializer('big', new SeededRandom(3).normals(5000), [5000])]), 'float32', [5000], 'y');
    const path = join(dir, 'm.onnx');
    const n = await g.writeFile(path);
    const onDisk = readFileSync(path);
    assert.equal(n, onDisk.length);
    assert.deepEqual(new Uint8Array(onDisk), g.toBytes());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('builder refuses duplicate names and unwrapped non-integer attributes', () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [1]);
  assert.throws(() => g.input('x', 'float32', [1]), /already used/);
  assert.throws(() => g.op('LeakyRelu', [x], { alpha: 0.1 }), /float\(\)/);
  assert.throws(() => new GraphBuilder().toBytes(), /no outputs/);
});

test('a tensor whose data does not fill its dims is rejected at encoding', () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [2, 3]);
  g.output(g.op('Add', [x, g.initializer('w', new Float32Array(5), [2, 3])]), 'float32', [2, 3], 'y');
  assert.throws(() => g.toBytes(), /5 values for dims \[2, 3\]/);
});

test('python onnx decodes the model to the same structure and passes check_model(full_check)', {
  skip: !pythonOnnx && 'python3-onnx not installed',
}, () => {
  const { bytes } = attributeGraph();
  const dir = mkdtempSync(join(tmpdir(), 'bdpo-graph-py-'));
  try {
    const path = join(dir, 'm.onnx');
    writeFileSync(path, bytes);
    const script =
      `
import json, sys, onnx
from onnx import helper, numpy_helper
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
def dims(v): return [d.dim_param if d.HasField('dim_param') else d.dim_value for d in v.type.tensor_type.shape.dim]
print(json.dumps({
  'ir': m.ir_version, 'opset': [(o.domain, o.version) for o in m.opset_import], 'producer': m.producer_name,
  'inputs': [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in m.graph.input],
  'outputs': [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in m.graph.output],
  'ops': [n.op_type for n in m.graph.node],
  'attrs': {n.op_type: {a.name: (lambda v: v.tolist() if hasattr(v, 'tolist') else (v.decode() if isinstance(v, bytes) else ` +
      `(list(v) if not isinstance(v, (int, float)) else v)))` +
      `(numpy_helper.to_array(a.t) if a.type == 4 else helper.get_attribute_value(a)) for a in n.attribute} for n in m.graph.node},
  'init': {t.name: numpy_helper.to_array(t).tolist() for t in m.graph.initializer if t.name in ('b',) or t.data_type == 7},
}))
`;
    const r = spawnSync(PYTHON, ['-c', script, path], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const d = JSON.parse(r.stdout) as {
      ir: number;
      opset: [string, number][];
      producer: string;
      inputs: [string, number, (string | number)[]][];
      outputs: [string, number, (string | number)[]][];
      ops: string[];
      attrs: Record<string, Record<string, unknown>>;
      init: Record<string, unknown>;
    };
    assert.equal(d.ir, 8);
    assert.deepEqual(d.opset, [['', 17]]);
    assert.equal(d.producer, 'balanced-dpo');
    assert.deepEqual(d.inputs, [['x', 1, ['batch', 6]]]);
    assert.deepEqual(d.outputs, [['y', 1, ['batch', 3, 4]]]);
    assert.equal(d.ops[0], 'Gemm');
    assert.deepEqual(d.attrs['Gemm'], { alpha: 0.5, beta: 2, transB: 1 });
    assert.ok(Math.abs((d.attrs['LeakyRelu']?.['alpha'] as number) - 0.1) < 1e-7);
    assert.deepEqual(d.attrs['Transpose'], { perm: [0, 2, 1] });
    assert.deepEqual(d.attrs['Pad'], { mode: 'reflect' });
    assert.deepEqual(d.attrs['Constant'], { value_floats: [0.25, -1.5, 3, 0.125] });
    assert.deepEqual(d.attrs['ConstantOfShape'], { value: [2.5] });
    assert.equal(d.attrs['Concat']?.['axis'], -2);
    const b = d.init['b'] as number[];
    const expectedB = Array.from(new SeededRandom(7).normals(28).subarray(24));
    assert.deepEqual(b, expectedB);
    // int64 initializers, including the negative reshape dim.
    assert.ok(Object.values(d.init).some((v) => JSON.stringify(v) === '[-1,2,2]'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
