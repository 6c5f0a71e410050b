/** Numeric comparisons and inputs shared by the engine tests that check one backend against another. */
import { Rng } from '../../src-main/engine/models/rng';

/** max |a − b| / max |b| */
export function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, s = 1e-30;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / s;
}

/** ‖a − b‖₂ / ‖b‖₂ */
export function rel2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, s = 1e-30;
  for (let i = 0; i < b.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    s += b[i]! ** 2;
  }
  return Math.sqrt(d / s);
}

/** n values uniform in [−scale, scale), reproducible from `seed`. */
export function uniform(n: number, seed: number, scale = 1): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => (r.next() * 2 - 1) * scale);
}
