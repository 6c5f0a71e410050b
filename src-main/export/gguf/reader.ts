/**
 * A small GGUF reader: metadata, tensor infos and raw tensor bytes. Used to check our own files (tests,
 * `lathe inspect`-style reports) and to read an exported file's metadata back; llama.cpp remains the judge.
 */
import { promises as fsp } from 'node:fs';
import { BLOCK, GGUF_ALIGNMENT, GGUF_MAGIC, GgmlType, GgufType, alignUp, tensorBytes } from './format';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufReadTensor {
  name: string;
  shape: number[]; // outermost first
  type: GgmlType;
  /** Absolute file offset of the data. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, { type: GgufType; elemType?: GgufType; value: GgufValue }>;
  tensors: GgufReadTensor[];
  alignment: number;
  dataOffset: number;
}

class Cursor {
  pos = 0;
  private readonly dec = new TextDecoder('utf-8', { fatal: true });
  constructor(private readonly b: Uint8Array, private readonly v = new DataView(b.buffer, b.byteOffset, b.byteLength)) {}
  private check(n: number): void { if (this.pos + n > this.b.length) throw new RangeError('GGUF header runs past the end of the file.'); }
  u8(): number { this.check(1); return this.v.getUint8(this.pos++); }
  i8(): number { this.check(1); return this.v.getInt8(this.pos++); }
  u16(): number { this.check(2); const x = this.v.getUint16(this.pos, true); this.pos += 2; return x; }
  i16(): number { this.check(2); const x = this.v.getInt16(this.pos, true); this.pos += 2; return x; }
  u32(): number { this.check(4); const x = this.v.getUint32(this.pos, true); this.pos += 4; return x; }
  i32(): number { this.check(4); const x = this.v.getInt32(this.pos, true); this.pos += 4; return x; }
  f32(): number { this.check(4); const x = this.v.getFloat32(this.pos, true); this.pos += 4; return x; }
  f64(): number { this.check(8); const x = this.v.getFloat64(this.pos, true); this.pos += 8; return x; }
  u64(): bigint { this.check(8); const x = this.v.getBigUint64(this.pos, true); this.pos += 8; return x; }
  i64(): bigint { this.check(8); const x = this.v.getBigInt64(this.pos, true); this.pos += 8; return x; }
  n64(): number { const x = this.u64(); if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('GGUF length too large.'); return Number(x); }
  str(): string { const n = this.n64(); this.check(n); const s = this.dec.decode(this.b.subarray(this.pos, this.pos + n)); this.pos += n; return s; }
  scalar(t: GgufType): GgufValue {
    switch (t) {
      case GgufType.UINT8: return this.u8();
      case GgufType.INT8: return this.i8();
      case GgufType.UINT16: return this.u16();
      case GgufType.INT16: return this.i16();
      case GgufType.UINT32: return this.u32();
      case GgufType.INT32: return this.i32();
      case GgufType.FLOAT32: return this.f32();
      case GgufType.FLOAT64: return this.f64();
      case GgufType.UINT64: return this.u64();
      case GgufType.INT64: return this.i64();
      case GgufType.BOOL: return this.u8() !== 0;
      case GgufType.STRING: return this.str();
      default: throw new Error(`Unknown GGUF value type ${t}.`);
    }
  }
}

/** Parses the header of a GGUF file (reads only as many bytes as the header needs). */
export async function readGguf(file: string): Promise<GgufFile> {
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    let want = Math.min(size, 1 << 20);
    for (;;) {
      const b = new Uint8Array(want);
      await fh.read(b, 0, want, 0);
      try {
        return parseHeader(b, size);
      } catch (err) {
        if (err instanceof RangeError && want < size) { want = Math.min(size, want * 4); continue; }
        throw err;
      }
    }
  } finally {
    await fh.close();
  }
}

function parseHeader(b: Uint8Array, fileSize: number): GgufFile {
  const c = new Cursor(b);
  if (c.u32() !== GGUF_MAGIC) throw new Error('Not a GGUF file (bad magic).');
  const version = c.u32();
  if (version !== 3 && version !== 2) throw new Error(`GGUF version ${version} is not supported.`);
  const nTensors = c.n64();
  const nKv = c.n64();
  const metadata: GgufFile['metadata'] = new Map();
  for (let i = 0; i < nKv; i++) {
    const key = c.str();
    const type = c.u32() as GgufType;
    if (type === GgufType.ARRAY) {
      const elemType = c.u32() as GgufType;
      const n = c.n64();
      const arr: GgufValue[] = new Array(n);
      for (let j = 0; j < n; j++) arr[j] = c.scalar(elemType);
      metadata.set(key, { type, elemType, value: arr });
    } else {
      metadata.set(key, { type, value: c.scalar(type) });
    }
  }
  const al = metadata.get('general.alignment')?.value;
  const alignment = typeof al === 'number' ? al : GGUF_ALIGNMENT;
  const infos: Array<{ name: string; shape: number[]; type: GgmlType; rel: number }> = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str();
    const nd = c.u32();
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) ne.push(c.n64());
    const type = c.u32() as GgmlType;
    const rel = c.n64();
    infos.push({ name, shape: ne.reverse(), type, rel });
  }
  const dataOffset = alignUp(c.pos, alignment);
  const tensors = infos.map((t) => {
    if (!BLOCK[t.type]) throw new Error(`Tensor ${t.name} has a type (${t.type}) this reader does not know.`);
    const bytes = tensorBytes(t.type, t.shape);
    const offset = dataOffset + t.rel;
    if (offset + bytes > fileSize) throw new Error(`Tensor ${t.name} runs past the end of the file.`);
    return { name: t.name, shape: t.shape, type: t.type, offset, bytes };
  });
  return { version, metadata, tensors, alignment, dataOffset };
}

/** Raw bytes of one tensor. */
export async function readGgufTensor(file: string, t: GgufReadTensor): Promise<Uint8Array> {
  const fh = await fsp.open(file, 'r');
  try {
    const b = new Uint8Array(t.bytes);
    await fh.read(b, 0, t.bytes, t.offset);
    return b;
  } finally {
    await fh.close();
  }
}

/** A metadata value, or undefined. */
export function ggufValue(f: GgufFile, key: string): GgufValue | undefined {
  return f.metadata.get(key)?.value;
}
