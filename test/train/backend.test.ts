import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';

const require = createRequire(import.meta.url);
const installed = (pkg: string): boolean => {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
};

test('auto picks the first backend that loads and says why', async () => {
  const selection = await selectBackend();
  assert.equal(tf.getBackend(), selection.name);
  const native = installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node');
  if (!native) {
    // Without the optional native bindings, wasm is next in line, and the reason lists what was skipped.
    assert.equal(selection.name, 'wasm');
    assert.match(selection.reason, /tensorflow-gpu: not installed; tensorflow: not installed/);
  } else {
    assert.ok(['tensorflow', 'wasm', 'cpu'].includes(selection.name));
  }
  // The wasm backend computes: a small matMul checked by hand.
  const product = tf.matMul(
    tf.tensor2d([
      [1, 2],
      [3, 4],
    ]),
    tf.tensor2d([[5], [6]]),
  );
  assert.deepEqual([...product.dataSync()], [17, 39]);
});

test('a named backend is used or refused, never silently replaced', async () => {
  assert.equal((await selectBackend('cpu')).name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  if (!installed('@tensorflow/tfjs-node-gpu')) {
    await assert.rejects(selectBackend('tensorflow-gpu'), /tensorflow-gpu: not installed/);
  }
  assert.equal((await selectBackend('wasm')).name, 'wasm');
});
