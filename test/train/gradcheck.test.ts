// Finite differences against tfjs' gradients of the full DPO loss through the DiT, for a few parameters of
// different kinds (attention, MLP, modulation, head, timestep MLP; and LoRA factors); and the wasm backend's
// whole-model gradient against the pure-JS cpu backend's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import type { Denoiser } from '../../src/train/denoiser.ts';
import { createDit } from '../../src/train/dit.ts';
import { diffusionDpoLoss } from '../../src/train/dpo.ts';
import { createRng } from '../../src/train/rng.ts';
import { addNoise, scaledLinearSchedule } from '../../src/train/schedule.ts';
import { Trainer } from '../../src/train/trainer-step.ts';
import { BrightnessTask, disposePairs, normalTensor, randomizeParameters, TEXT_LENGTH, tinyConfig } from './helpers.ts';

await selectBackend();

function fixture(model: Denoiser, seed: number) {
  const rng = createRng(seed);
  const pairs = 2;
  const schedule = scaledLinearSchedule();
  const a = normalTensor<tf.Tensor4D>(rng, [pairs, 4, 8, 8]);
  const b = normalTensor<tf.Tensor4D>(rng, [pairs, 4, 8, 8]);
  const eps = normalTensor<tf.Tensor4D>(rng, [pairs, 4, 8, 8]);
  const steps = [150, 600];
  const x = tf.concat([addNoise(schedule, a, eps, steps), addNoise(schedule, b, eps, steps)]) as tf.Tensor4D;
  const t = tf.tensor1d([...steps, ...steps]);
  const text = normalTensor<tf.Tensor3D>(rng, [pairs, TEXT_LENGTH, tinyConfig.textWidth]);
  const textBoth = tf.concat([text, text]) as tf.Tensor3D;
  // A fixed stand-in for the reference's predictions: the gradient does not flow into them.
  const ref = tf.mul(eps, 0.9);
  const refBoth = tf.concat([ref, tf.add(ref, 0.05)]);
  const [refA, refB] = tf.split(refBoth, 2);
  const label = tf.tensor1d([1, 0.25]);
  const loss = (): tf.Scalar =>
    tf.tidy(() => {
      const [modelA, modelB] = tf.split(model.predict(x, t, textBoth), 2);
      return diffusionDpoLoss({ modelA: modelA!, modelB: modelB!, refA: refA!, refB: refB!, noise: eps, label, beta: 20 }).loss;
    });
  return { loss, dispose: () => tf.dispose([a, b, eps, x, t, text, textBoth, ref, refBoth, refA!, refB!, label]) };
}

function check(model: Denoiser, names: string[], seed: number): void {
  const { loss, dispose } = fixture(model, seed);
  const variables = model.trainableNames().map((n) => model.parameters.get(n)!);
  const { value, grads } = tf.variableGrads(loss, variables);
  value.dispose();
  const h = 1e-2;
  for (const name of names) {
    const variable = model.parameters.get(name)!;
    const analytic = grads[variable.name]!.dataSync();
    // The entry with the largest gradient: a meaningful comparison in float32.
    let index = 0;
    for (let i = 0; i < analytic.length; i++) if (Math.abs(analytic[i]!) > Math.abs(analytic[index]!)) index = i;
    const original = variable.dataSync().slice();
    const at = (delta: number): number => {
      const moved = original.slice();
      moved[index] = moved[index]! + delta;
      tf.tidy(() => variable.assign(tf.tensor(moved, variable.shape)));
      const l = loss();
      const out = l.dataSync()[0]!;
      l.dispose();
      return out;
    };
    const numeric = (at(h) - at(-h)) / (2 * h);
    tf.tidy(() => variable.assign(tf.tensor(original, variable.shape)));
    const g = analytic[index]!;
    assert.ok(Math.abs(g) > 1e-3, `${name}: gradient ${g} too small to test`);
    // float32 losses limit the numeric side to ≈ 1e-4 absolute at this step size.
    assert.ok(Math.abs(numeric - g) <= 0.05 * Math.abs(g) + 2e-4, `${name}[${index}]: analytic ${g}, numeric ${numeric}`);
  }
  tf.dispose(Object.values(grads));
  dispose();
}

test('DPO loss gradient through the DiT matches central differences', () => {
  const model = createDit(tinyConfig, 21);
  randomizeParameters(model, 22, 0.12);
  check(
    model,
    [
      'final_layer.linear.weight',
      'blocks.0.attn.q.weight',
      'blocks.0.cross_attn.v.weight',
      'blocks.0.mlp.fc1.weight',
      'blocks.0.adaLN_modulation.weight',
      't_embedder.mlp.0.weight',
      'x_embedder.proj.bias',
    ],
    23,
  );
  model.dispose();
});

test('with LoRA, the adapter gradients match central differences', () => {
  const model = createDit({ ...tinyConfig, lora: { rank: 2, alpha: 2 } }, 24);
  randomizeParameters(model, 25, 0.12);
  check(model, ['blocks.0.attn.k.lora_A', 'blocks.0.attn.o.lora_B', 'blocks.0.cross_attn.q.lora_B'], 26);
  model.dispose();
});

test('a whole DPO gradient on the wasm backend matches the pure-JS cpu backend', async () => {
  const gradientsOn = async (backend: 'wasm' | 'cpu'): Promise<Map<string, Float32Array>> => {
    await selectBackend(backend);
    const model = createDit(tinyConfig, 3);
    randomizeParameters(model, 4);
    const trainer = new Trainer(model, { seed: 4, learningRate: 1e-3, reference: { mode: 'none' } });
    randomizeParameters(model, 5, 0.16);
    const batch = new BrightnessTask(tinyConfig, 4, 31).pairs(createRng(1), 3, 'true');
    const { gradients } = trainer.dpoGradients(batch);
    const out = new Map([...gradients].map(([name, g]) => [name, g.dataSync().slice() as Float32Array]));
    tf.dispose([...gradients.values()]);
    disposePairs(batch);
    trainer.dispose();
    model.dispose();
    return out;
  };
  const wasm = await gradientsOn('wasm');
  const cpu = await gradientsOn('cpu');
  await selectBackend();
  let worst = 0;
  let scale = 0;
  for (const [name, g] of wasm) {
    const h = cpu.get(name)!;
    for (let i = 0; i < g.length; i++) {
      worst = Math.max(worst, Math.abs(g[i]! - h[i]!));
      scale = Math.max(scale, Math.abs(g[i]!));
    }
  }
  assert.ok(scale > 1, `gradient scale ${scale}`);
  assert.ok(worst < 1e-5 * scale, `max difference ${worst} at scale ${scale}`);
});
