import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readdirSync, truncateSync, statSync, writeFileSync, unlinkSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  SafetensorsReader, SafetensorsWriter, writeSafetensors, writeModelWeights, ModelWeights,
  f32ToBf16Bits, bf16BitsToF32, f32ToF16Bits, f16BitsToF32, f32ToBf16Array, bf16ToF32Array, f32ToF16Array, f16ToF32Array,
} from '../../../../src-main/engine/safetensors';
import { UserError } from '../../../../src-main/util/progress';

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'lathe-st-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

function seq(n: number, scale = 0.37): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 1.7 + 0.3) * scale * (1 + i);
  return a;
}

async function expectUserError(p: Promise<unknown>, code: string, ...fragments: string[]): Promise<UserError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  const ue = err as UserError;
  expect(ue.code).toBe(code);
  for (const f of fragments) expect(ue.message + ' ' + (ue.hint ?? '')).toContain(f);
  return ue;
}

describe('float conversions', () => {
  it('rounds f32 -> bf16 to nearest, ties to even', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // exact tie -> even (down)
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // exact tie -> even (up)
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // above the tie -> up
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80); // max f32 rounds up to inf, as torch does
    expect(bf16BitsToF32(0x3fc0)).toBe(1.5);
  });

  it('rounds f32 -> f16 to nearest, ties to even, with subnormals and overflow', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(1 / 3)).toBe(0x3555);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // tie between max and 2^16 -> even -> inf
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie -> even (zero)
    expect(f32ToF16Bits(3 * 2 ** -26)).toBe(0x0001);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16BitsToF32(0x3555)).toBeCloseTo(1 / 3, 3);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
  });

  it('array conversions agree with the scalar ones', () => {
    const x = seq(1000, 3);
    const b = f32ToBf16Array(x);
    const h = f32ToF16Array(x);
    for (let i = 0; i < x.length; i++) {
      expect(b[i]).toBe(f32ToBf16Bits(x[i]!));
      expect(h[i]).toBe(f32ToF16Bits(x[i]!));
    }
    const bb = bf16ToF32Array(b);
    const hh = f16ToF32Array(h);
    for (let i = 0; i < x.length; i++) {
      expect(Math.abs(bb[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -8);
      expect(Math.abs(hh[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -11 + 2 ** -25);
    }
  });
});

describe('safetensors reader and writer', () => {
  it('reads a file laid out by hand per the format', async () => {
    const header = JSON.stringify({
      __metadata__: { format: 'pt' },
      b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    });
    const hb = Buffer.from(header);
    const data = Buffer.alloc(12);
    data.writeFloatLE(1.5, 0);
    data.writeFloatLE(-2.25, 4);
    data.writeUInt16LE(0x3c00, 8);
    data.writeUInt16LE(0xc000, 10);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    const f = path.join(dir, 'hand.safetensors');
    writeFileSync(f, Buffer.concat([len, hb, data]));
    const r = await SafetensorsReader.open(f);
    try {
      expect(r.metadata).toEqual({ format: 'pt' });
      expect([...(await r.readF32('a'))]).toEqual([1.5, -2.25]);
      expect([...(await r.readF32('b'))]).toEqual([1, -2]);
      expect([...(await r.readF16('b'))]).toEqual([0x3c00, 0xc000]);
      expect(r.entry('b').fileOffset).toBe(8 + hb.length + 8);
      expect(r.entry('a').byteLength).toBe(8);
    } finally {
      await r.close();
    }
  });

  it('round-trips f32, f16 and bf16 and exposes byte offsets that point at the data', async () => {
    const f = path.join(dir, 'rt.safetensors');
    const x = seq(6 * 5);
    await writeSafetensors(f, [
      { name: 'w32', dtype: 'F32', shape: [6, 5], data: x },
      { name: 'w16', dtype: 'F16', shape: [6, 5], data: x },
      { name: 'wbf', dtype: 'BF16', shape: [30], data: x },
      { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      { name: 'odd16', dtype: 'F16', shape: [7], data: x.subarray(0, 7) },
      { name: 'oddbf', dtype: 'BF16', shape: [1, 7], data: x.subarray(3, 10) },
      { name: 'emptybf', dtype: 'BF16', shape: [0], data: new Float32Array(0) },
    ], { note: 'hello' });
    const r = await SafetensorsReader.open(f);
    try {
      expect(r.metadata.note).toBe('hello');
      expect(r.dataOffset % 8).toBe(0);
      expect(await r.readF32('w32')).toEqual(x);
      expect(await r.readF32('w16')).toEqual(f16ToF32Array(f32ToF16Array(x)));
      expect(await r.readF32('wbf')).toEqual(bf16ToF32Array(f32ToBf16Array(x)));
      expect(await r.readF16('wbf')).toEqual(f32ToF16Array(bf16ToF32Array(f32ToBf16Array(x))));
      expect((await r.readF32('empty')).length).toBe(0);
      expect((await r.readF32('emptybf')).length).toBe(0);
      expect(await r.readF32('odd16')).toEqual(f16ToF32Array(f32ToF16Array(x.slice(0, 7))));
      expect(await r.readF32('oddbf')).toEqual(bf16ToF32Array(f32ToBf16Array(x.slice(3, 10))));
      const e = r.entry('w16');
      expect(e.shape).toEqual([6, 5]);
      const bytes = readFileSync(f).subarray(e.fileOffset, e.fileOffset + e.byteLength);
      expect(new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))).toEqual(f32ToF16Array(x));
    } finally {
      await r.close();
    }
  });

  it('reports a truncated file naming the file and the first cut tensor', async () => {
    const f = path.join(dir, 'trunc.safetensors');
    await writeSafetensors(f, [
      { name: 'first', dtype: 'F32', shape: [100], data: seq(100) },
      { name: 'second', dtype: 'F32', shape: [100], data: seq(100) },
    ]);
    truncateSync(f, statSync(f).size - 10);
    await expectUserError(SafetensorsReader.open(f), 'safetensors-truncated', 'trunc.safetensors', '"second"');
    truncateSync(f, 20);
    await expectUserError(SafetensorsReader.open(f), 'safetensors-truncated', 'header');
  });

  it('rejects inconsistent headers', async () => {
    const make = (h: object): string => {
      const hb = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(hb.length));
      const f = path.join(dir, 'bad.safetensors');
      writeFileSync(f, Buffer.concat([len, hb, Buffer.alloc(64)]));
      return f;
    };
    await expectUserError(SafetensorsReader.open(make({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } })), 'safetensors-corrupt', '"a"', '12 bytes');
    await expectUserError(SafetensorsReader.open(make({ a: { dtype: 'Q4', shape: [3], data_offsets: [0, 8] } })), 'safetensors-corrupt', 'dtype');
    await expectUserError(SafetensorsReader.open(make({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    })), 'safetensors-corrupt', 'overlap');
    await expectUserError(SafetensorsReader.open(path.join(dir, 'nope.safetensors')), 'safetensors-missing', 'nope.safetensors');
  });

  it('writes atomically: nothing appears under the target until finish, abort leaves nothing', async () => {
    const f = path.join(dir, 'atomic.safetensors');
    const w = await SafetensorsWriter.create(f, [
      { name: 'a', dtype: 'F32', shape: [4] }, { name: 'b', dtype: 'BF16', shape: [4] },
    ]);
    await w.write('a', seq(4));
    expect(readdirSync(dir)).not.toContain('atomic.safetensors');
    await expect(w.write('a', seq(4))).rejects.toThrow(/declaration order/);
    await w.abort();
    expect(readdirSync(dir).filter((n) => n.includes('atomic'))).toEqual([]);
    const w2 = await SafetensorsWriter.create(f, [{ name: 'a', dtype: 'F32', shape: [4] }, { name: 'b', dtype: 'F32', shape: [4] }]);
    await w2.write('a', seq(4));
    await expect(w2.finish()).rejects.toThrow(/Only 1 of 2/);
    expect(readdirSync(dir).filter((n) => n.includes('atomic'))).toEqual([]);
    await expect(writeSafetensors(f, [{ name: 'a', dtype: 'F32', shape: [4], data: seq(3) }])).rejects.toThrow(/needs 4 values, got 3/);
  });
});

describe('sharded weights', () => {
  it('splits above a size, writes the index, and reads back through one name map', async () => {
    const d = path.join(dir, 'sharded');
    (await import('node:fs')).mkdirSync(d);
    const specs = Array.from({ length: 5 }, (_, i) => ({ name: `layer.${i}.weight`, dtype: 'F32' as const, shape: [10, 10] }));
    const { files } = await writeModelWeights(d, specs, (s) => seq(100, Number(s.name.split('.')[1]) + 1), { maxShardBytes: 900 });
    expect(files).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const index = JSON.parse(readFileSync(path.join(d, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(2000);
    expect(index.weight_map['layer.4.weight']).toBe('model-00003-of-00003.safetensors');
    const mw = await ModelWeights.open(d);
    try {
      expect(mw.sharded).toBe(true);
      expect(mw.names().sort()).toEqual(specs.map((s) => s.name));
      expect(await mw.readF32('layer.3.weight')).toEqual(seq(100, 4));
      expect(mw.entry('layer.4.weight').file).toBe(path.join(d, 'model-00003-of-00003.safetensors'));
    } finally {
      await mw.close();
    }
    unlinkSync(path.join(d, 'model-00002-of-00003.safetensors'));
    await expectUserError(ModelWeights.open(d), 'model-shard-missing', 'model-00002-of-00003.safetensors');
  });

  it('says what is missing when there are no safetensors weights', async () => {
    const d = path.join(dir, 'binonly');
    (await import('node:fs')).mkdirSync(d);
    writeFileSync(path.join(d, 'pytorch_model.bin'), 'x');
    await expectUserError(ModelWeights.open(d), 'model-weights-missing', 'pytorch_model.bin');
  });
});
