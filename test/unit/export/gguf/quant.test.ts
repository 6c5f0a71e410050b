/**
 * Quantizers: dequantize(quantize(x)) within each type's error bound, exact on values the grid represents,
 * and block layouts checked against hand-built blocks. (That llama.cpp reads the layouts the same way is
 * checked in gguf.test.ts by comparing each quantized file with its dequantized F32 twin in llama.cpp.)
 */
import { describe, expect, it } from 'vitest';
import { BLOCK, GgmlType } from '../../../../src-main/export/gguf/format';
import { dequantize, quantize } from '../../../../src-main/export/gguf/quant';
import { Rng } from '../../../../src-main/engine/models/rng';
import { f32ToBf16Array, f32ToF16Array, f32ToF16Bits } from '../../../../src-main/engine/safetensors/dtype';
import { QuantPool } from '../../../../src-main/export/gguf/pool';

const x = new Rng(3).normalArray(256 * 64, 1);

function errors(t: GgmlType, data: Float32Array, rowLen = 256): { rmse: number; max: number; y: Float32Array } {
  const y = dequantize(t, quantize(t, data, rowLen), data.length);
  let se = 0, max = 0;
  for (let i = 0; i < data.length; i++) { const e = Math.abs(data[i]! - y[i]!); se += e * e; max = Math.max(max, e); }
  return { rmse: Math.sqrt(se / data.length), max, y };
}

describe('GGUF quantizers', () => {
  it('Q8_0: every value within half a step (amax/127 per block, f16 scale) of the original', () => {
    const y = dequantize(GgmlType.Q8_0, quantize(GgmlType.Q8_0, x, 256), x.length);
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[32 * b + j]!));
      const step = amax / 127;
      for (let j = 0; j < 32; j++) expect(Math.abs(x[32 * b + j]! - y[32 * b + j]!)).toBeLessThanOrEqual(step * 0.5 + amax * 1e-3);
    }
  });

  it.each([
    // Gaussian data, σ = 1: RMS error bounds (measured 0.0054, 0.018, 0.036, 0.043, 0.038, 0.072) and max error bounds.
    [GgmlType.Q8_0, 0.007, 0.03], [GgmlType.Q6_K, 0.022, 0.1], [GgmlType.Q5_K, 0.045, 0.2],
    [GgmlType.Q5_0, 0.05, 0.2], [GgmlType.Q5_1, 0.045, 0.16], [GgmlType.Q4_K, 0.085, 0.35],
  ])('%s round trip error bounds', (t, rmseMax, maxMax) => {
    const e = errors(t as GgmlType, x);
    expect(e.rmse).toBeLessThan(rmseMax as number);
    expect(e.max).toBeLessThan(maxMax as number);
    // Finer types err less: the round trip is not a no-op and not a constant.
    expect(e.rmse).toBeGreaterThan(1e-4);
    expect(quantize(t as GgmlType, x, 256).length).toBe((x.length / BLOCK[t as GgmlType].size) * BLOCK[t as GgmlType].bytes);
  });

  it('values on the quantization grid come back exactly; zeros stay zero', () => {
    // Q8_0 with amax 127·2^-4: d = 2^-4 exactly in f16, every multiple of d is exact.
    const g = Float32Array.from({ length: 64 }, (_, i) => (i % 32 === 0 ? 127 : 3 * (i % 32) - 40 - (i >> 5)) / 16);
    expect(dequantize(GgmlType.Q8_0, quantize(GgmlType.Q8_0, g, 64), 64)).toEqual(g);
    for (const t of [GgmlType.Q8_0, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q4_K, GgmlType.Q5_0, GgmlType.Q5_1]) {
      expect([...dequantize(t, quantize(t, new Float32Array(256), 256), 256)].every((v) => v === 0)).toBe(true);
    }
    // Q4_K: 16 levels 0..15 times 1/8 in one sub-block fit exactly (scale 1/8, min 0).
    const lv = new Float32Array(256);
    for (let i = 0; i < 256; i++) lv[i] = (i % 16) / 8;
    const e = errors(GgmlType.Q4_K, lv);
    expect(e.max).toBeLessThan(1e-3);
  });

  it('hand-built blocks dequantize as ggml defines them', () => {
    // Q8_0: d = 0.5, q = 0..31 -> 0, 0.5, ...
    const q8 = new Uint8Array(34);
    new DataView(q8.buffer).setUint16(0, f32ToF16Bits(0.5), true);
    for (let j = 0; j < 32; j++) q8[2 + j] = (j - 16) & 0xff;
    expect([...dequantize(GgmlType.Q8_0, q8, 32)]).toEqual(Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5));
    // Q4_K: d = 1, dmin = 1; sub-block j has scale j+1 and min j; all q = 3 except value 0 of sub-block 1 (q = 15).
    const q4 = new Uint8Array(144);
    const dv = new DataView(q4.buffer);
    dv.setUint16(0, f32ToF16Bits(1), true);
    dv.setUint16(2, f32ToF16Bits(1), true);
    const sc = [1, 2, 3, 4, 5, 6, 7, 40], mn = [0, 1, 2, 3, 4, 5, 6, 50];
    for (let j = 0; j < 4; j++) { q4[4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6); q4[8 + j] = mn[j]! | ((mn[j + 4]! >> 4) << 6); }
    for (let j = 4; j < 8; j++) q4[4 + j + 4] = (sc[j]! & 15) | ((mn[j]! & 15) << 4);
    q4.fill(0x33, 16);
    q4[16] = 0xf3; // byte 0 of pair 0: low nibble sub-block 0, high nibble sub-block 1
    const y = dequantize(GgmlType.Q4_K, q4, 256);
    expect(y[0]).toBe(1 * 3 - 0);
    expect(y[32]).toBe(2 * 15 - 1);
    expect(y[33]).toBe(2 * 3 - 1);
    expect(y[7 * 32]).toBe(40 * 3 - 50);
    expect(y[6 * 32 + 5]).toBe(7 * 3 - 6);
    // And our quantizer packs those scales the same way: quantize(dequantize(block)) reproduces the values.
    const again = dequantize(GgmlType.Q4_K, quantize(GgmlType.Q4_K, y, 256), 256);
    for (let i = 0; i < 256; i++) expect(Math.abs(again[i]! - y[i]!)).toBeLessThan(0.75);
  });

  it('F16 (fast path) gives the bits of the exact converter for any f32: normals, subnormals, overflow, inf, NaN', () => {
    const bits = new Uint32Array(1 << 16);
    const rng = new Rng(9);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(rng.next() * 2 ** 32) >>> 0;
    const y = new Float32Array(bits.buffer);
    y.set([0, -0, 65504, 65519.99, 65520, 6.1e-5, 2 ** -14, 5.96e-8, NaN, Infinity, -Infinity, 1e-10, 1 + 2 ** -11, 1 + 3 * 2 ** -11]);
    expect(new Uint16Array(quantize(GgmlType.F16, y, 1).buffer)).toEqual(f32ToF16Array(y));
  });

  it('BF16 gives the bits of the exact converter (round to nearest even, NaN quiet) for any f32', () => {
    const bits = new Uint32Array(1 << 16);
    const rng = new Rng(10);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(rng.next() * 2 ** 32) >>> 0;
    const y = new Float32Array(bits.buffer);
    y.set([0, -0, 3.4e38, -3.4e38, NaN, Infinity, -Infinity, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -1 - 2 ** -8]);
    expect(new Uint16Array(quantize(GgmlType.BF16, y, 1).buffer)).toEqual(f32ToBf16Array(y));
  });

  it('QuantPool.stream: every type\'s chunks, in order, are the bytes of quantize on the whole tensor', async () => {
    // 2.5 M values: three elementwise chunks (the last short) and, for the block types, three worker chunks.
    const big = new Rng(4).normalArray(2_500_096, 0.05);
    big.set([0, NaN, 70000, -1e-9], 12345);
    const pool = new QuantPool(2);
    try {
      for (const t of [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0]) {
        const parts: Uint8Array[] = [];
        let inFlight = 0;
        await pool.stream(t, big, 256, async (b) => {
          expect(inFlight).toBe(0);
          inFlight++;
          parts.push(b.slice()); // the pool reuses its buffers once this call resolves
          await new Promise((r) => setTimeout(r, 1));
          inFlight--;
        });
        expect(parts.length).toBeGreaterThan(1);
        const joined = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
        let o = 0;
        for (const b of parts) { joined.set(b, o); o += b.length; }
        expect(Buffer.from(joined.buffer).equals(Buffer.from(quantize(t, big, 256).buffer))).toBe(true); // toEqual: minutes on 10 MB
      }
    } finally {
      await pool.close();
    }
  });

  it('refuses rows that do not split into blocks', () => {
    expect(() => quantize(GgmlType.Q4_K, new Float32Array(128), 128)).toThrow(/blocks of 256/);
  });
});
