import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { createSession, float32Output } from '../../src/models/session.ts';
import { tinyAestheticModel, tinyClipTextModel } from '../../tools/onnx-builder/tiny-models.ts';

// Whether this machine has onnxruntime-node's CUDA provider library (it does not in CI or on the dev box).
const ortBin = join(
  dirname(createRequire(import.meta.url).resolve('onnxruntime-node')),
  '..',
  'bin',
  'napi-v6',
  process.platform,
  process.arch,
);
const hasCudaLibrary = existsSync(join(ortBin, 'libonnxruntime_providers_cuda.so'));

const IDS = [49406, 320, 1125, 49407, 49406, 555, 49407, 49407];
const MASK = [1, 1, 1, 1, 1, 1, 1, 0];
const AESTHETIC = tinyAestheticModel({ inputDim: 4, hidden: [8, 4] });

test('device auto picks the CPU on a machine without the CUDA provider, and says why', {
  skip: hasCudaLibrary && 'CUDA provider installed',
}, async () => {
  const s = await createSession(AESTHETIC);
  try {
    assert.equal(s.provider, 'cpu');
    assert.match(s.providerReason, /^auto: CUDA execution provider not available \(.+\); using CPU$/);
    assert.equal(s.intraOpNumThreads, availableParallelism());
  } finally {
    await s.dispose();
  }
  const cpu = await createSession(AESTHETIC, { device: 'cpu', intraOpNumThreads: 1 });
  assert.equal(cpu.provider, 'cpu');
  assert.equal(cpu.providerReason, 'cpu requested');
  assert.equal(cpu.intraOpNumThreads, 1);
  await cpu.dispose();
});

test('device cuda without the CUDA provider is a clear error, not a silent CPU fallback', {
  skip: hasCudaLibrary && 'CUDA provider installed',
}, async () => {
  await assert.rejects(
    createSession(AESTHETIC, { device: 'cuda' }),
    /cannot use the CUDA execution provider for <\d+-byte model>: .+\(install onnxruntime-node with its CUDA libraries/,
  );
  await assert.rejects(createSession(AESTHETIC, { device: 'gpu' as 'cuda' }), /unknown device "gpu"/);
  await assert.rejects(createSession(AESTHETIC, { intraOpNumThreads: 0 }), /intraOpNumThreads must be a positive integer/);
});

test('declared inputs and outputs are exposed; a model opens from a path as well as from bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bdpo-session-'));
  try {
    const path = join(dir, 'text.onnx');
    writeFileSync(path, tinyClipTextModel());
    const s = await createSession(path, { device: 'cpu' });
    assert.deepEqual(s.inputNames, ['input_ids', 'attention_mask']);
    assert.deepEqual(s.outputNames, ['text_embeds', 'last_hidden_state']);
    assert.deepEqual(s.inputs[0], { name: 'input_ids', type: 'int64', shape: ['batch_size', 'sequence_length'] });
    await s.dispose();
    await assert.rejects(createSession(join(dir, 'missing.onnx'), { device: 'cpu' }), /cannot load ONNX model .*missing\.onnx/);
    await assert.rejects(createSession(new Uint8Array([1, 2, 3, 4]), { device: 'cpu' }), /cannot load ONNX model <4-byte model>/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('extra feeds are dropped; number arrays and Int32Array convert to int64; outputs can be restricted', async () => {
  const s = await createSession(tinyClipTextModel(), { device: 'cpu' });
  try {
    const exact = await s.run({
      input_ids: { data: BigInt64Array.from(IDS.map(BigInt)), dims: [2, 4] },
      attention_mask: { data: BigInt64Array.from(MASK.map(BigInt)), dims: [2, 4] },
    });
    const withExtras = await s.run({
      input_ids: { data: IDS, dims: [2, 4] },
      attention_mask: { data: Int32Array.from(MASK), dims: [2, 4] },
      pixel_values: { data: new Float32Array(3 * 224 * 224), dims: [1, 3, 224, 224] },
      token_type_ids: { data: [0], dims: [1] },
    });
    const a = float32Output(exact, 'text_embeds');
    const b = float32Output(withExtras, 'text_embeds');
    assert.deepEqual(b.dims, [2, 16]);
    assert.deepEqual(b.data, a.data);
    assert.ok(a.data.some((v) => Math.abs(v) > 0.1));
    const only = await s.run({ input_ids: { data: IDS, dims: [2, 4] }, attention_mask: { data: MASK, dims: [2, 4] } }, ['text_embeds']);
    assert.deepEqual(Object.keys(only), ['text_embeds']);
    await assert.rejects(
      s.run({ input_ids: { data: IDS, dims: [2, 4] }, attention_mask: { data: MASK, dims: [2, 4] } }, ['logits']),
      /has no output "logits" \(outputs: text_embeds, last_hidden_state\)/,
    );
  } finally {
    await s.dispose();
  }
});

test('missing, mistyped or misshaped inputs are clear errors naming the input', async () => {
  const s = await createSession(tinyClipTextModel(), { device: 'cpu' });
  const a = await createSession(AESTHETIC, { device: 'cpu' });
  try {
    await assert.rejects(
      s.run({ input_ids: { data: IDS, dims: [2, 4] } }),
      /needs input "attention_mask" \(int64 \[batch_size, sequence_length\]\); feeds given: input_ids/,
    );
    await assert.rejects(
      s.run({ input_ids: { data: new Float32Array(8), dims: [2, 4] }, attention_mask: { data: MASK, dims: [2, 4] } }),
      /input input_ids: the model declares int64, got Float32Array/,
    );
    await assert.rejects(
      s.run({ input_ids: { data: [1.5, 2, 3, 4], dims: [1, 4] }, attention_mask: { data: [1, 1, 1, 1], dims: [1, 4] } }),
      /input_ids: int64 expected, got 1.5/,
    );
    await assert.rejects(
      s.run({ input_ids: { data: IDS, dims: [8] }, attention_mask: { data: MASK, dims: [2, 4] } }),
      /input input_ids: dims \[8\] do not match the declared \[batch_size, sequence_length\]/,
    );
    await assert.rejects(
      a.run({ embedding: { data: new Float32Array(8), dims: [1, 8] } }),
      /input embedding: dims \[1, 8\] do not match the declared \[batch_size, 4\]/,
    );
    await assert.rejects(a.run({ embedding: { data: new Float32Array(7), dims: [2, 4] } }), /7 values do not fill dims \[2, 4\] \(8\)/);
    // Float64 and plain numbers are accepted for float32 inputs.
    const x = [0.5, -0.5, 0.5, 0.5];
    const r1 = float32Output(await a.run({ embedding: { data: x, dims: [1, 4] } }), 'score');
    const r2 = float32Output(await a.run({ embedding: { data: Float64Array.from(x), dims: [1, 4] } }), 'score');
    assert.deepEqual(r1.data, r2.data);
    assert.deepEqual(r1.dims, [1, 1]);
  } finally {
    await s.dispose();
    await a.dispose();
  }
});

test('dispose waits for an in-flight run, is idempotent, and later runs fail clearly', async () => {
  const s = await createSession(AESTHETIC, { device: 'cpu' });
  const inFlight = s.run({ embedding: { data: [1, 0, 0, 0], dims: [1, 4] } });
  const first = s.dispose();
  const second = s.dispose();
  assert.equal(first, second);
  const result = float32Output(await inFlight, 'score');
  assert.ok(Number.isFinite(result.data[0]));
  await first;
  await s.dispose();
  await assert.rejects(s.run({ embedding: { data: [1, 0, 0, 0], dims: [1, 4] } }), /session for <\d+-byte model> has been disposed/);
});
