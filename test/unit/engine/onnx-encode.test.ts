import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeModel } from '../../../src-main/engine/onnx/encode';
import {
  bytesOf, float16BitsToFloat32, float32ToFloat16Bits, fromBfloat16, packInt4, rawTensor, toBfloat16, unpackInt4,
} from '../../../src-main/engine/onnx/pack';
import { ProtoWriter } from '../../../src-main/engine/onnx/protobuf';
import type { OnnxModel, OnnxNode, OnnxTensor, OnnxValueInfo } from '../../../src-main/engine/onnx/spec';
import { runModel } from '../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../src-main/engine/runtime/tensor';

const opset21 = [{ domain: '', version: 21 }];

function model(nodes: OnnxNode[], inputs: OnnxValueInfo[], outputs: OnnxValueInfo[], initializers: OnnxTensor[] = []): OnnxModel {
  return { opsets: opset21, graph: { name: 'test', nodes, inputs, outputs, initializers } };
}

function expectClose(got: number[], want: number[], tol: number): void {
  expect(got.length).toBe(want.length);
  const worst = Math.max(0, ...got.map((g, i) => Math.abs(g - want[i]!)));
  if (!(worst <= tol)) throw new Error(`max |diff| ${worst} > ${tol}\n got ${got}\nwant ${want}`);
}

describe('protobuf writer', () => {
  it('writes varints, negative int64 as 10 bytes, and fixed32 floats', () => {
    expect([...new ProtoWriter().varint(1, 150).finish()]).toEqual([0x08, 0x96, 0x01]);
    expect([...new ProtoWriter().varint(1, -1).finish()]).toEqual([0x08, ...Array(9).fill(0xff), 0x01]);
    expect([...new ProtoWriter().varint(2, 2 ** 40).finish()]).toEqual([0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    expect([...new ProtoWriter().float(1, 1).finish()]).toEqual([0x0d, 0, 0, 0x80, 0x3f]);
    const inner = new ProtoWriter().string(1, 'ab');
    expect([...new ProtoWriter().message(3, inner).finish()]).toEqual([0x1a, 4, 0x0a, 2, 0x61, 0x62]);
  });

  it('keeps large byte payloads in order between small fields', () => {
    const big = new Uint8Array(1000).map((_, i) => i & 0xff);
    const bytes = new ProtoWriter().varint(1, 7).bytes(2, big).varint(3, 9).finish();
    expect(bytes.length).toBe(2 + 3 + 1000 + 2);
    expect([...bytes.slice(0, 5)]).toEqual([0x08, 7, 0x12, 0xe8, 0x07]);
    expect(bytes[5 + 999]).toBe(999 & 0xff);
    expect([...bytes.slice(-2)]).toEqual([0x18, 9]);
  });
});

describe('packing', () => {
  it('float16 round trip, rounding, subnormals, overflow', () => {
    for (const v of [0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8, 0.333251953125]) {
      expect(float16BitsToFloat32(float32ToFloat16Bits(v))).toBe(v);
    }
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN)))).toBe(true);
  });

  it('bfloat16 and int4', () => {
    expect([...fromBfloat16(toBfloat16([1, -3.5, 1 + 2 ** -9]))]).toEqual([1, -3.5, 1]);
    const packed = packInt4([1, -2, 7, -8, 3]);
    expect([...packed]).toEqual([0xe1, 0x87, 0x03]);
    expect([...unpackInt4(packed, 5)]).toEqual([1, -2, 7, -8, 3]);
    expect(() => packInt4([8])).toThrow(/outside int4/);
  });
});

describe('encodeModel + onnxruntime (CPU EP)', () => {
  const x = { name: 'x', type: 'float32' as const, shape: ['N', 2] };

  it('runs MatMul + Add with embedded weights and symbolic batch', async () => {
    const m = model(
      [{ op: 'MatMul', inputs: ['x', 'W'], outputs: ['t'] }, { op: 'Add', inputs: ['t', 'b'], outputs: ['y'] }],
      [x], [{ name: 'y', type: 'float32', shape: ['N', 3] }],
      [rawTensor('W', 'float32', [2, 3], [1, 2, 3, 4, 5, 6]), rawTensor('b', 'float32', [3], [10, 20, 30])],
    );
    const out = await runModel(m, { x: hostTensor('float32', [2, 2], [1, 1, 2, -1]) });
    expect(out.y!.dims).toEqual([2, 3]);
    // [1,1]·W = [5,7,9]; [2,-1]·W = [-2,-1,0]
    expect([...(out.y!.data as Float32Array)]).toEqual([15, 27, 39, 8, 19, 30]);
  });

  it('reads an external-data initializer at an offset inside an existing file without copying it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-onnx-'));
    // A safetensors-like file: 8-byte header length, JSON header, then raw tensors.
    const header = new TextEncoder().encode(JSON.stringify({ W: { dtype: 'F32', shape: [2, 3], data_offsets: [8, 32] } }) + '   ');
    const W = Float32Array.from([0.5, -1, 2, 3, 0.25, -4]);
    const file = new Uint8Array(8 + header.length + 8 + 24);
    new DataView(file.buffer).setBigUint64(0, BigInt(header.length), true);
    file.set(header, 8);
    const offset = 8 + header.length + 8; // deliberately unaligned
    file.set(bytesOf(W), offset);
    writeFileSync(join(dir, 'weights.safetensors'), file);
    const m = model(
      [{ op: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] }], [x], [{ name: 'y', type: 'float32', shape: ['N', 3] }],
      [{ name: 'W', type: 'float32', dims: [2, 3], data: { kind: 'external', location: 'weights.safetensors', offset, length: 24 } }],
    );
    const bytes = encodeModel(m);
    expect(bytes.length).toBeLessThan(200); // the weights are not in the .onnx
    const out = await runModel(m, { x: hostTensor('float32', [1, 2], [2, 1]) }, { externalDataDir: dir });
    expect([...(out.y!.data as Float32Array)]).toEqual([4, -1.75, 0]);
    await expect(runModel(m, { x: hostTensor('float32', [1, 2], [2, 1]) })).rejects.toThrow(/externalDataDir/);
    expect(() => encodeModel({ ...m, graph: { ...m.graph, initializers: [{ ...m.graph.initializers[0]!, data: { kind: 'external', location: '../w', offset: 0, length: 24 } }] } }))
      .toThrow(/relative path inside the model folder/);
  });

  it('encodes every attribute kind (int, ints, float, floats, string, tensor, graph)', async () => {
    const cond = { name: 'c', type: 'bool' as const, shape: [] };
    const branch = (name: string, k: number) => ({
      name, inputs: [], outputs: [{ name: `${name}_o`, type: 'float32' as const, shape: [3] }], initializers: [],
      nodes: [{ op: 'Constant', inputs: [], outputs: [`${name}_o`], attributes: { value_floats: { type: 'floats' as const, value: [k, k, k] } } }],
    });
    const m = model([
      // Gemm: alpha (float), transB (int): y1 = 2 * x · Bᵀ
      { op: 'Gemm', inputs: ['x', 'B'], outputs: ['y1'], attributes: { transB: { type: 'int', value: 1 }, alpha: { type: 'float', value: 2 } } },
      // Transpose perm (ints), Concat with a negative axis (int64 -1)
      { op: 'Transpose', inputs: ['y1'], outputs: ['y1t'], attributes: { perm: { type: 'ints', value: [1, 0] } } },
      { op: 'Constant', inputs: [], outputs: ['k'], attributes: { value: { type: 'tensor', value: rawTensor('kv', 'float32', [3, 1], [7, 8, 9]) } } },
      { op: 'Concat', inputs: ['y1t', 'k'], outputs: ['y2'], attributes: { axis: { type: 'int', value: -1 } } },
      // Gelu approximate='tanh' (string attribute, opset 20+)
      { op: 'Gelu', inputs: ['y2'], outputs: ['y3'], attributes: { approximate: { type: 'string', value: 'tanh' } } },
      // If with two subgraphs (graph attributes)
      { op: 'If', inputs: ['c'], outputs: ['y4'], attributes: { then_branch: { type: 'graph', value: branch('then', 1) }, else_branch: { type: 'graph', value: branch('else', -1) } } },
    ], [x, cond], [
      { name: 'y3', type: 'float32', shape: [3, 'N_plus_1'] }, { name: 'y4', type: 'float32', shape: [3] },
    ], [rawTensor('B', 'float32', [3, 2], [1, 0, 0, 1, 1, 1])]);
    const feeds = { x: hostTensor('float32', [1, 2], [0.5, -1]), c: hostTensor('bool', [], [0]) };
    const out = await runModel(m, feeds);
    const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    expectClose(toNumbers(out.y3!), [1, 7, -2, 8, -1, 9].map(gelu), 1e-6);
    expect(toNumbers(out.y4!)).toEqual([-1, -1, -1]);
  });

  it('is deterministic and independent of attribute insertion order', () => {
    const a = model([{ op: 'Gemm', inputs: ['x', 'B'], outputs: ['y'], attributes: { alpha: { type: 'float', value: 2 }, transB: { type: 'int', value: 1 } } }], [x], [x]);
    const b = model([{ op: 'Gemm', inputs: ['x', 'B'], outputs: ['y'], attributes: { transB: { type: 'int', value: 1 }, alpha: { type: 'float', value: 2 } } }], [x], [x]);
    expect(Buffer.from(encodeModel(a)).equals(Buffer.from(encodeModel(b)))).toBe(true);
    expect(Buffer.from(encodeModel(a)).equals(Buffer.from(encodeModel(a)))).toBe(true);
  });

  it('runs float64, float16, int64, bfloat16 and int4 tensors', async () => {
    const m = model([
      { op: 'Mul', inputs: ['d', 'd'], outputs: ['d2'] },
      { op: 'Add', inputs: ['h', 'h16'], outputs: ['h2'] },
      { op: 'Add', inputs: ['i', 'i64'], outputs: ['i2'] },
      { op: 'Cast', inputs: ['bf'], outputs: ['bf32'], attributes: { to: { type: 'int', value: 1 } } },
      // int4 weights dequantized in blocks of 2 with per-block scales (MatMulNBits-style storage)
      { op: 'DequantizeLinear', inputs: ['q', 'qs'], outputs: ['deq'], attributes: { axis: { type: 'int', value: 1 }, block_size: { type: 'int', value: 2 } } },
    ], [
      { name: 'd', type: 'float64', shape: [2] }, { name: 'h', type: 'float16', shape: [2] }, { name: 'i', type: 'int64', shape: [2] },
    ], [
      { name: 'd2', type: 'float64', shape: [2] }, { name: 'h2', type: 'float16', shape: [2] }, { name: 'i2', type: 'int64', shape: [2] },
      { name: 'bf32', type: 'float32', shape: [3] }, { name: 'deq', type: 'float32', shape: [2, 4] },
    ], [
      rawTensor('h16', 'float16', [2], [0.5, -0.25]), rawTensor('i64', 'int64', [2], [-(2 ** 40), 5]),
      rawTensor('bf', 'bfloat16', [3], [1.5, -2, 3.25]),
      rawTensor('q', 'int4', [2, 4], [1, -2, 7, -8, 0, 3, -1, 2]), rawTensor('qs', 'float32', [2, 2], [0.5, 2, 1, -1]),
    ]);
    const out = await runModel(m, {
      d: hostTensor('float64', [2], [1 + 1e-12, 3]), h: hostTensor('float16', [2], Uint16Array.from([1, 2], float32ToFloat16Bits)),
      i: hostTensor('int64', [2], [1, 2]),
    });
    expect(out.d2!.data).toBeInstanceOf(Float64Array);
    expect(toNumbers(out.d2!)).toEqual([(1 + 1e-12) * (1 + 1e-12), 9]); // float64 precision kept
    expect(toNumbers(out.h2!)).toEqual([1.5, 1.75]);
    expect(toNumbers(out.i2!)).toEqual([1 - 2 ** 40, 7]);
    expect(toNumbers(out.bf32!)).toEqual([1.5, -2, 3.25]);
    expect(toNumbers(out.deq!)).toEqual([0.5, -1, 14, -16, 0, 3, 1, -2]);
  });

  it('rejects a tensor whose data does not match its dims', () => {
    const bad = model([], [x], [x], [{ name: 'W', type: 'float32', dims: [2, 3], data: { kind: 'raw', bytes: new Uint8Array(20) } }]);
    expect(() => encodeModel(bad)).toThrow(/W \(float32 \[2, 3\]\) needs 24 bytes, its raw data has 20/);
  });
});
