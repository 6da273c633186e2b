// Every random number a training run uses comes from here, never from tf.random: the generator's state is four
// 32-bit words that go into the checkpoint, so a resumed run draws exactly what an uninterrupted one would.

/** xoshiro128** state: four unsigned 32-bit words, not all zero. */
export type RngState = readonly [number, number, number, number];

export interface Rng {
  /** Uniform in the open interval (0, 1). */
  uniform(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Fills `out` with standard normal draws (Box–Muller, consumed in pairs so the state stays four words). */
  fillNormal(out: Float32Array): Float32Array;
  state(): RngState;
  setState(state: RngState): void;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

export function createRng(seed: number): Rng {
  const init = splitmix32(seed);
  const s = new Uint32Array([init(), init(), init(), init()]);
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;

  const next = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  };

  const uniform = (): number => (next() + 0.5) / 4294967296;

  return {
    uniform,
    int(n: number): number {
      if (!Number.isInteger(n) || n <= 0) throw new Error(`rng.int: n must be a positive integer, got ${n}`);
      return Math.min(n - 1, Math.floor(uniform() * n));
    },
    fillNormal(out: Float32Array): Float32Array {
      for (let i = 0; i < out.length; i += 2) {
        const r = Math.sqrt(-2 * Math.log(uniform()));
        const theta = 2 * Math.PI * uniform();
        out[i] = r * Math.cos(theta);
        if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
      }
      return out;
    },
    state: () => [s[0]!, s[1]!, s[2]!, s[3]!],
    setState(state: RngState): void {
      if (state.length !== 4 || state.every((w) => w === 0)) throw new Error('rng state must be four words, not all zero');
      for (let i = 0; i < 4; i++) s[i] = state[i]! >>> 0;
    },
  };
}

/** Independent streams from one seed (the loader and the trainer must not share draws). */
export function derivedSeed(seed: number, stream: number): number {
  return (seed ^ Math.imul(stream, 0x9e3779b9)) >>> 0;
}
