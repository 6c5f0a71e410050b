/**
 * Small fast hashes over UTF-16 code units (no allocation), and a set of 64-bit keys in typed arrays
 * (a JS Set of strings would cost ~100 bytes per document; this costs 16 at 50% load).
 */
import { mulberry32 } from '../../util/random';

/** 32-bit FNV-1a variant over s[start, end). */
export function hash32(s: string, start = 0, end = s.length, seed = 0x811c9dc5): number {
  let h = seed | 0;
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche (murmur3 fmix) so low bits are usable as a table index.
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const HASH64_A = 0x811c9dc5 | 0;
export const HASH64_B = 0x9747b28c | 0;

/**
 * Two independent 32-bit hashes = a 64-bit key; collision odds ~ n^2 / 2^65. (The quality scan
 * computes the same two running values in its own pass; see quality.ts.)
 */
export function hash64(s: string): [number, number] {
  let a = HASH64_A;
  let b = HASH64_B;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return hash64Finish(a, b, s.length);
}

export function hash64Finish(a: number, b: number, length: number): [number, number] {
  return [fmix(a) >>> 0, fmix(b ^ length) >>> 0];
}

export function fmix(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** Open-addressing set of 64-bit keys (given as two uint32); grows at 50% load. Key (0,0) is remapped. */
export class HashSet64 {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private mask: number;
  size = 0;
  constructor(capacity = 1 << 16) {
    let n = 16;
    while (n < capacity * 2) n <<= 1;
    this.hi = new Uint32Array(n);
    this.lo = new Uint32Array(n);
    this.mask = n - 1;
  }
  /** Adds the key; returns false when it was already present. */
  add(h1: number, h2: number): boolean {
    if (h1 === 0 && h2 === 0) h2 = 1;
    let i = (h1 ^ Math.imul(h2, 0x9e3779b1)) & this.mask;
    for (;;) {
      const a = this.hi[i]!;
      const b = this.lo[i]!;
      if (a === 0 && b === 0) break;
      if (a === h1 >>> 0 && b === h2 >>> 0) return false;
      i = (i + 1) & this.mask;
    }
    this.hi[i] = h1;
    this.lo[i] = h2;
    if (++this.size * 2 > this.hi.length) this.grow();
    return true;
  }
  private grow(): void {
    const oh = this.hi, ol = this.lo;
    this.hi = new Uint32Array(oh.length * 2);
    this.lo = new Uint32Array(oh.length * 2);
    this.mask = this.hi.length - 1;
    this.size = 0;
    for (let i = 0; i < oh.length; i++) if (oh[i] !== 0 || ol[i] !== 0) this.add(oh[i]!, ol[i]!);
  }
  get bytes(): number { return this.hi.byteLength * 2; }
}

/** Deterministic PRNG (mulberry32) for seeds, permutations and sampling. */
export const rng = mulberry32;

/**
 * Every line of a text (split at \n): hash32 of the line without surrounding whitespace (≤ U+0020),
 * that trimmed length, and the raw length. One instance per thread is reused as scratch; the
 * boilerplate check and the quality filter's repeated-lines measure share one hashing pass.
 */
export class LineHashes {
  n = 0;
  hash: Uint32Array<ArrayBuffer> = new Uint32Array(256);
  trimmed: Uint32Array<ArrayBuffer> = new Uint32Array(256);
  raw: Uint32Array<ArrayBuffer> = new Uint32Array(256);

  of(text: string): this {
    let n = 0;
    for (let start = 0; start <= text.length;) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      if (n === this.hash.length) this.grow();
      let a = start, b = end;
      while (a < b && text.charCodeAt(a) <= 32) a++;
      while (b > a && text.charCodeAt(b - 1) <= 32) b--;
      this.hash[n] = hash32(text, a, b);
      this.trimmed[n] = b - a;
      this.raw[n] = end - start;
      n++;
      start = end + 1;
    }
    this.n = n;
    return this;
  }

  private grow(): void {
    const g = (x: Uint32Array<ArrayBuffer>): Uint32Array<ArrayBuffer> => { const y = new Uint32Array(x.length * 2); y.set(x); return y; };
    this.hash = g(this.hash);
    this.trimmed = g(this.trimmed);
    this.raw = g(this.raw);
  }
}
