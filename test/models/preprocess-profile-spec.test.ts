import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricSpecError } from '../../src/core/errors.ts';
import { PREPROCESS_PROFILES, parseMetricSpec, visionKey } from '../../src/models/metric-spec.ts';

const towers = { text_model: 't.onnx', vision_model: 'v.onnx', tokenizer: 'tokenizer.json' };

test('"preprocess" defaults to the reference of each kind', () => {
  const defaults: Record<string, string> = { pickscore: 'hf-clip', hps: 'hpsv2', aesthetic: 'openai-clip', clip: 'hf-clip' };
  for (const [kind, profile] of Object.entries(defaults)) {
    const json = kind === 'aesthetic' ? { vision_model: 'v.onnx', head_model: 'h.onnx' } : towers;
    assert.equal(parseMetricSpec({ name: kind, kind, ...json }, `/m/${kind}.json`).preprocess, profile, kind);
  }
});

test('"preprocess" names any profile, and anything else is a MetricSpecError naming the file and the field', () => {
  assert.deepEqual([...PREPROCESS_PROFILES], ['hf-clip', 'openai-clip', 'hpsv2', 'hpsv2-legacy']);
  for (const profile of PREPROCESS_PROFILES) {
    assert.equal(parseMetricSpec({ name: 'x', kind: 'clip', ...towers, preprocess: profile }, '/m/x.json').preprocess, profile);
  }
  for (const bad of ['torchvision', 'HF-CLIP', '', 3]) {
    assert.throws(
      () => parseMetricSpec({ name: 'x', kind: 'clip', ...towers, preprocess: bad }, '/m/bad.json'),
      (error: unknown) => error instanceof MetricSpecError && /\/m\/bad\.json: "preprocess"/.test(error.message),
      String(bad),
    );
  }
});

test('metrics on one tower with different profiles do not share a forward pass', () => {
  const a = parseMetricSpec({ name: 'a', kind: 'clip', ...towers }, '/m/a.json');
  const b = parseMetricSpec({ name: 'b', kind: 'clip', ...towers, preprocess: 'openai-clip' }, '/m/b.json');
  const c = parseMetricSpec({ name: 'c', kind: 'pickscore', ...towers }, '/m/c.json');
  assert.notEqual(visionKey(a), visionKey(b));
  assert.equal(visionKey(a), visionKey(c));
});
