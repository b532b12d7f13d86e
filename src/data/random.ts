// Seeded randomness for shuffling, splits and augmentation. Every draw is a pure function of its
// keys (seed, epoch, sample index, ...), so results never depend on Math.random, on libtorch's
// global generator, or on the order in which parallel decodes finish.

/** Stream tags keep the shuffle, per-sample, batch-mixing and split streams independent. */
export const STREAM = { shuffle: 1, sample: 2, mix: 3, split: 4 } as const;

// murmur3's finaliser: a cheap 32-bit avalanche mix.
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** sfc32 (PractRand-clean, 128-bit state) seeded by hashing a list of non-negative integer keys. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(...keys: number[]) {
    // Keys may exceed 32 bits (seeds up to 2^53): hash the low and high words separately.
    let h = 0x9e3779b9;
    for (const k of keys) {
      if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`Rng: keys must be non-negative safe integers, got ${k}`);
      h = fmix32(h ^ (k >>> 0)) + 0x6d2b79f5;
      h = fmix32(h ^ Math.floor(k / 2 ** 32)) + 0x6d2b79f5;
    }
    this.#a = fmix32(h ^ 0x243f6a88);
    this.#b = fmix32(h ^ 0x85a308d3);
    this.#c = fmix32(h ^ 0x13198a2e);
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    return ((this.uint32() >>> 5) * 67108864 + (this.uint32() >>> 6)) / 9007199254740992;
  }

  uniform(low: number, high: number): number {
    return low + (high - low) * this.float();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  normal(): number {
    // Box-Muller; 1 - float() is in (0, 1], so the log is finite.
    return Math.sqrt(-2 * Math.log(1 - this.float())) * Math.cos(2 * Math.PI * this.float());
  }

  /** Gamma(alpha, 1) by Marsaglia and Tsang. */
  gamma(alpha: number): number {
    if (alpha < 1) return this.gamma(alpha + 1) * Math.pow(1 - this.float(), 1 / alpha);
    const d = alpha - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = 1 - this.float();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
    }
  }

  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    return x / (x + y);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: number }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i]!;
      arr[i] = arr[j]!;
      arr[j] = t;
    }
    return arr;
  }
}

/** Python's round(): halves go to the even neighbour (torchvision's crop arithmetic uses it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Validates a seed-like option: a non-negative safe integer. */
export function checkSeed(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}
