// Deterministic weights for generated models: the same seed gives the same bytes on every machine, because
// all arithmetic here is exact 32-bit integer math or IEEE double math with a fixed order.
import { mulberry32 } from '../../src/core/random.ts';

/** mulberry32, uniform in [0, 1): the project's one seeded generator outside training. */
export const uniformGenerator = mulberry32;

export class SeededRandom {
  private readonly next: () => number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.next = uniformGenerator(seed);
  }

  uniform(): number {
    return this.next();
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = this.next();
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** `count` values from N(mean, std²) as float32. */
  normals(count: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = mean + std * this.normal();
    return out;
  }
}
