// Moving parameters between tfjs variables and plain named arrays (what safetensors files and checkpoints hold).
import * as tf from '@tensorflow/tfjs';
import type { TensorDict } from '../io/safetensors.ts';
import { InputError } from '../core/errors.ts';

export function readVariables(variables: ReadonlyMap<string, tf.Variable>, names?: readonly string[]): TensorDict {
  const out: TensorDict = new Map();
  for (const name of names ?? [...variables.keys()]) {
    const variable = variables.get(name);
    if (!variable) throw new InputError(`no parameter named ${name}`);
    out.set(name, { shape: [...variable.shape], data: new Float32Array(variable.dataSync()) });
  }
  return out;
}

/**
 * Assigns every entry of `weights` to the variable of the same name. With `complete`, every variable must get a
 * value; extra or mis-shaped entries are always errors, so a checkpoint of another architecture fails loudly.
 */
export function assignVariables(
  variables: ReadonlyMap<string, tf.Variable>,
  weights: TensorDict,
  options: { complete?: boolean; prefix?: string } = {},
): void {
  const prefix = options.prefix ?? '';
  for (const [name, { shape }] of weights) {
    const variable = variables.get(name);
    if (!variable) throw new InputError(`${prefix}${name}: no such parameter`);
    if (shape.length !== variable.shape.length || shape.some((d, i) => d !== variable.shape[i])) {
      throw new InputError(`${prefix}${name}: shape [${shape.join(', ')}] does not match [${variable.shape.join(', ')}]`);
    }
  }
  if (options.complete) {
    const missing = [...variables.keys()].filter((name) => !weights.has(name));
    if (missing.length > 0)
      throw new InputError(`${prefix}missing parameters: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
  }
  for (const [name, { shape, data }] of weights) {
    tf.tidy(() => variables.get(name)!.assign(tf.tensor(data, shape)));
  }
}
