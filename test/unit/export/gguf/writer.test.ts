/** The GGUF writer, read back by our reader: every metadata type, arrays, tensor infos, alignment, data. */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGUF_ALIGNMENT, GgmlType, GgufType } from '../../../../src-main/export/gguf/format';
import { readGguf, readGgufTensor } from '../../../../src-main/export/gguf/reader';
import { GgufFileWriter, encodeGgufHeader, kv, type GgufKv } from '../../../../src-main/export/gguf/writer';
import { quantize } from '../../../../src-main/export/gguf/quant';

const dir = mkdtempSync(path.join(tmpdir(), 'lathe-gguf-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('GGUF writer', () => {
  it('writes every value type and arrays that read back exactly', async () => {
    const kvs: GgufKv[] = [
      { key: 'a.u8', type: GgufType.UINT8, value: 255 },
      { key: 'a.i8', type: GgufType.INT8, value: -128 },
      { key: 'a.u16', type: GgufType.UINT16, value: 65535 },
      { key: 'a.i16', type: GgufType.INT16, value: -32768 },
      kv.u32('a.u32', 4294967295),
      kv.i32('a.i32', -2147483648),
      kv.f32('a.f32', 1e-5),
      kv.bool('a.bool', true),
      kv.str('a.str', 'héllo ✓ <|im_end|>'),
      { key: 'a.u64', type: GgufType.UINT64, value: 2n ** 63n + 5n },
      { key: 'a.i64', type: GgufType.INT64, value: -(2n ** 62n) },
      { key: 'a.f64', type: GgufType.FLOAT64, value: Math.PI },
      kv.arr('a.strs', GgufType.STRING, ['Ġthe', '', 'ü']),
      kv.arr('a.i32s', GgufType.INT32, Int32Array.from([1, -2, 3])),
      kv.arr('a.f32s', GgufType.FLOAT32, [0.5, -0.25]),
      kv.arr('a.empty', GgufType.UINT32, []),
      kv.u32('general.alignment', GGUF_ALIGNMENT),
    ];
    const a = Float32Array.from({ length: 3 * 5 }, (_, i) => i - 7.5);
    const b = Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i));
    const tensors = [
      { name: 'a', shape: [3, 5], type: GgmlType.F32 },
      { name: 'b', shape: [2, 64], type: GgmlType.Q8_0 },
      { name: 'c', shape: [7], type: GgmlType.F16 },
    ];
    const file = path.join(dir, 'all.gguf');
    const w = await GgufFileWriter.create(file, kvs, tensors);
    await w.writeTensor(quantize(GgmlType.F32, a, 5));
    await w.writeTensor(quantize(GgmlType.Q8_0, b, 64));
    const c = quantize(GgmlType.F16, Float32Array.from([1.5, -2, 3, 0.25, 8, -0.5, 7]), 7); // in parts, as the export streams
    await w.writeTensorParts(async (write) => { await write(c.subarray(0, 6)); await write(c.subarray(6)); });
    await w.finish();
    expect(statSync(file).size).toBe(w.totalBytes);

    const g = await readGguf(file);
    expect(g.version).toBe(3);
    const val = (k: string): unknown => g.metadata.get(k)?.value;
    expect(val('a.u8')).toBe(255);
    expect(val('a.i8')).toBe(-128);
    expect(val('a.u16')).toBe(65535);
    expect(val('a.i16')).toBe(-32768);
    expect(val('a.u32')).toBe(4294967295);
    expect(val('a.i32')).toBe(-2147483648);
    expect(val('a.f32')).toBe(Math.fround(1e-5));
    expect(val('a.bool')).toBe(true);
    expect(val('a.str')).toBe('héllo ✓ <|im_end|>');
    expect(val('a.u64')).toBe(2n ** 63n + 5n);
    expect(val('a.i64')).toBe(-(2n ** 62n));
    expect(val('a.f64')).toBe(Math.PI);
    expect(val('a.strs')).toEqual(['Ġthe', '', 'ü']);
    expect(g.metadata.get('a.strs')?.elemType).toBe(GgufType.STRING);
    expect(val('a.i32s')).toEqual([1, -2, 3]);
    expect(val('a.f32s')).toEqual([0.5, -0.25]);
    expect(val('a.empty')).toEqual([]);
    expect([...g.metadata.keys()]).toEqual(kvs.map((k) => k.key)); // order kept

    expect(g.tensors.map((t) => [t.name, t.shape, t.type])).toEqual(tensors.map((t) => [t.name, t.shape, t.type]));
    expect(g.dataOffset % GGUF_ALIGNMENT).toBe(0);
    for (const t of g.tensors) expect(t.offset % GGUF_ALIGNMENT).toBe(0);
    expect(new Float32Array((await readGgufTensor(file, g.tensors[0]!)).slice().buffer)).toEqual(a);
    expect(await readGgufTensor(file, g.tensors[1]!)).toEqual(quantize(GgmlType.Q8_0, b, 64));
    expect(g.tensors[1]!.bytes).toBe(2 * 2 * 34);
    expect(await readGgufTensor(file, g.tensors[2]!)).toEqual(c);
  });

  it('writes ne innermost first (a [rows, cols] matrix has ne = [cols, rows])', () => {
    const { header } = encodeGgufHeader([], [{ name: 'm', shape: [3, 32], type: GgmlType.F16 }]);
    const v = new DataView(header.buffer);
    // magic, version, n_tensors, n_kv (24 bytes), then name (8 + 1), n_dims, ne0, ne1
    expect(v.getUint32(0, true)).toBe(0x46554747);
    expect(v.getUint32(24 + 9, true)).toBe(2);
    expect(v.getBigUint64(24 + 13, true)).toBe(32n);
    expect(v.getBigUint64(24 + 21, true)).toBe(3n);
  });

  it('refuses duplicate keys, values that do not fit, rows that do not split into blocks, wrong byte counts', async () => {
    expect(() => encodeGgufHeader([kv.u32('x', 1), kv.u32('x', 2)], [])).toThrow(/twice/);
    expect(() => encodeGgufHeader([kv.u32('x', -1)], [])).toThrow(/does not fit/);
    expect(() => encodeGgufHeader([kv.str('x', 5 as unknown as string)], [])).toThrow(/does not fit/);
    expect(() => encodeGgufHeader([], [{ name: 't', shape: [2, 48], type: GgmlType.Q8_0 }])).toThrow(/blocks of 32/);
    const w = await GgufFileWriter.create(path.join(dir, 'bad.gguf'), [], [{ name: 't', shape: [4], type: GgmlType.F32 }]);
    await expect(w.writeTensor(new Uint8Array(12))).rejects.toThrow(/12 bytes given, 16 expected/);
    await expect(w.writeTensorParts(async (write) => { await write(new Uint8Array(8)); await write(new Uint8Array(4)); })).rejects.toThrow(/12 bytes given, 16 expected/);
    await expect(w.writeTensorParts(async (write) => { await write(new Uint8Array(12)); await write(new Uint8Array(8)); })).rejects.toThrow(/more than the 16 bytes/);
    await expect(w.finish()).rejects.toThrow(/Only 0 of 1/);
    await w.abort();
  });
});
