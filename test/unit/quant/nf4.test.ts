import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NF4_VALUES, dequantizeAbsmax, dequantizeNf4, dynamicMap, nf4Bytes, quantizeNf4, unpackCodes } from '../../../src-main/engine/quant/nf4';

interface Case { name: string; shape: number[]; w: number[]; codes: number[]; absCodes: number[]; scale2: number[]; offset: number; dequant: number[]; absmax: number[] }
const fx = JSON.parse(readFileSync(new URL('../../oracle/quant/nf4_fixture.json', import.meta.url), 'utf8')) as {
  version: number; nf4: number[]; dynamicMap: number[]; cases: Case[];
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('NF4 against the PyTorch oracle', () => {
  it('uses the same code tables', () => {
    expect(fx.version).toBe(1);
    expect(maxDiff(NF4_VALUES, fx.nf4)).toBe(0);
    const map = dynamicMap();
    expect(map.length).toBe(256);
    expect(maxDiff(map, fx.dynamicMap)).toBeLessThan(1e-7);
  });

  for (const c of fx.cases) {
    it(`${c.name} ${JSON.stringify(c.shape)}: identical codes, dequantized values within 1e-6 relative`, () => {
      const q = quantizeNf4(Float32Array.from(c.w), c.shape);
      const codes = unpackCodes(q);
      let mismatched = 0;
      for (let i = 0; i < c.codes.length; i++) if (codes[i] !== c.codes[i]) mismatched++;
      expect(mismatched, `${mismatched} of ${c.codes.length} NF4 codes differ`).toBe(0);
      expect(Array.from(q.absCodes.subarray(0, q.nb))).toEqual(c.absCodes);
      expect(maxDiff(q.scale2, c.scale2)).toBe(0);
      expect(q.offset).toBe(Math.fround(c.offset));
      const deq = dequantizeNf4(q);
      const scale = Math.max(...c.absmax, 1e-30);
      const d = maxDiff(deq, c.dequant);
      console.log(`${c.name}: max |ours - torch| = ${d.toExponential(2)} (absmax ${scale.toPrecision(3)})`);
      expect(d / scale).toBeLessThan(1e-6);
    });
  }

  it('round-trip error is what 4 bits allow and double quantization adds little', () => {
    const c = fx.cases.find((k) => k.name === 'normal')!;
    const w = Float32Array.from(c.w);
    const q = quantizeNf4(w, c.shape);
    const deq = dequantizeNf4(q);
    let se = 0, ss = 0;
    for (let i = 0; i < w.length; i++) { se += (deq[i]! - w[i]!) ** 2; ss += w[i]! ** 2; }
    const rel = Math.sqrt(se / ss);
    // NF4 on N(0, σ) weights: ~10% relative RMS error (QLoRA reports NF4 as the best 4-bit type for normal weights)
    expect(rel).toBeGreaterThan(0.05);
    expect(rel).toBeLessThan(0.12);
    // second-level quantization error on the absmax values: under 1% of the absmax
    const absErr = maxDiff(dequantizeAbsmax(q), c.absmax);
    expect(absErr / Math.max(...c.absmax)).toBeLessThan(0.01);
  });

  it('stores ≤ 4.2 bits per parameter', () => {
    const w = new Float32Array(1024 * 1024);
    for (let i = 0; i < w.length; i++) w[i] = Math.sin(i);
    const t0 = performance.now();
    const q = quantizeNf4(w, [1024, 1024]);
    console.log(`quantized 1M parameters in ${(performance.now() - t0).toFixed(0)} ms`);
    const bits = (nf4Bytes(q) * 8) / q.n;
    expect(bits).toBeLessThan(4.2);
    expect(bits).toBeGreaterThan(4.12);
  });
});
