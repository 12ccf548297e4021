// Deterministic, seedable random numbers for everything that must reproduce across runs and machines: data
// partitions, sampling, simulations, initialisation. Math.random is never used for anything that affects results.

/** A stream of uniform floats in [0, 1) from 32-bit state (mulberry32); cheap to create, one per purpose. */
export class Rng {
  private state: number;
  private spareNormal: number | undefined;

  constructor(seed: number) {
    // Mix the seed once (splitmix32 finaliser) so nearby seeds give unrelated streams.
    let z = (seed | 0) + 0x9e3779b9;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    this.state = (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal;
      this.spareNormal = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, 1) by Marsaglia and Tsang (2000), with the shape < 1 boost. */
  gamma(shape: number): number {
    if (!(shape > 0)) throw new RangeError(`gamma shape must be > 0, got ${shape}`);
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(this.next() || Number.MIN_VALUE, 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /**
   * A sample from Dirichlet(alpha, ..., alpha) over k categories. Works in log space: for small alpha the gamma
   * draws u^(1/alpha) underflow to zero in every category, and normalising them would give 0/0.
   */
  dirichlet(alpha: number, k: number): number[] {
    if (!(alpha > 0)) throw new RangeError(`dirichlet alpha must be > 0, got ${alpha}`);
    const logs = Array.from({ length: k }, () => this.logGamma(alpha));
    const top = Math.max(...logs);
    const w = logs.map((l) => Math.exp(l - top));
    const s = w.reduce((a, b) => a + b, 0);
    return w.map((x) => x / s);
  }

  /** log of a Gamma(shape, 1) draw, finite even where the draw itself underflows. */
  private logGamma(shape: number): number {
    if (shape >= 1) return Math.log(this.gamma(shape));
    return Math.log(this.gamma(shape + 1)) + Math.log(this.next() || Number.MIN_VALUE) / shape;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** An independent child stream, for handing to a sub-task without disturbing this one. */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296));
  }
}
