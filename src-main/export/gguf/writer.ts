/**
 * A streaming GGUF v3 writer: the header (metadata and tensor infos, whose offsets follow from the shapes and
 * types) goes first, then each tensor's bytes in order, padded to the alignment. Only one tensor's bytes are
 * in memory at a time; the caller produces them as it goes.
 *
 * Layout (GGUF spec): magic u32, version u32, tensor_count u64, kv_count u64, kv pairs (key string,
 * value type u32, value), tensor infos (name string, n_dims u32, ne u64[n_dims] innermost first, type u32,
 * offset u64 relative to the data section), zero padding to general.alignment, the data section.
 * Strings are a u64 byte length and UTF-8 bytes, no terminator; arrays are an element type u32, a u64
 * count and the elements. All numbers little-endian.
 */
import { promises as fsp } from 'node:fs';
import { BLOCK, GGUF_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgmlType, GgufType, alignUp, tensorBytes } from './format';

type Scalar = Exclude<GgufType, GgufType.ARRAY>;
export type GgufKv =
  | { key: string; type: Scalar; value: number | bigint | boolean | string }
  | { key: string; type: GgufType.ARRAY; elemType: Scalar; value: ArrayLike<number | bigint | boolean | string> };

export const kv = {
  u32: (key: string, value: number): GgufKv => ({ key, type: GgufType.UINT32, value }),
  i32: (key: string, value: number): GgufKv => ({ key, type: GgufType.INT32, value }),
  f32: (key: string, value: number): GgufKv => ({ key, type: GgufType.FLOAT32, value }),
  bool: (key: string, value: boolean): GgufKv => ({ key, type: GgufType.BOOL, value }),
  str: (key: string, value: string): GgufKv => ({ key, type: GgufType.STRING, value }),
  arr: (key: string, elemType: Scalar, value: ArrayLike<number | bigint | boolean | string>): GgufKv => ({ key, type: GgufType.ARRAY, elemType, value }),
};

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape, outermost first (as numpy/safetensors); written reversed as ggml's ne. */
  shape: number[];
  type: GgmlType;
}

/** Little-endian byte buffer that grows as needed. */
class ByteSink {
  buf = new Uint8Array(1 << 16);
  view = new DataView(this.buf.buffer);
  len = 0;
  private readonly enc = new TextEncoder();

  private need(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }
  u8(v: number): void { this.need(1); this.view.setUint8(this.len, v); this.len += 1; }
  i8(v: number): void { this.need(1); this.view.setInt8(this.len, v); this.len += 1; }
  u16(v: number): void { this.need(2); this.view.setUint16(this.len, v, true); this.len += 2; }
  i16(v: number): void { this.need(2); this.view.setInt16(this.len, v, true); this.len += 2; }
  u32(v: number): void { this.need(4); this.view.setUint32(this.len, v, true); this.len += 4; }
  i32(v: number): void { this.need(4); this.view.setInt32(this.len, v, true); this.len += 4; }
  f32(v: number): void { this.need(4); this.view.setFloat32(this.len, v, true); this.len += 4; }
  f64(v: number): void { this.need(8); this.view.setFloat64(this.len, v, true); this.len += 8; }
  u64(v: number | bigint): void { this.need(8); this.view.setBigUint64(this.len, BigInt(v), true); this.len += 8; }
  i64(v: number | bigint): void { this.need(8); this.view.setBigInt64(this.len, BigInt(v), true); this.len += 8; }
  str(s: string): void {
    const b = this.enc.encode(s);
    this.u64(b.length);
    this.need(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  pad(align: number): void {
    const n = alignUp(this.len, align) - this.len;
    this.need(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  bytes(): Uint8Array { return this.buf.subarray(0, this.len); }
}

function writeScalar(s: ByteSink, type: Scalar, v: number | bigint | boolean | string, key: string): void {
  const bad = (): Error => new Error(`GGUF key ${key}: value ${String(v)} does not fit type ${GgufType[type]}.`);
  if (type === GgufType.STRING) {
    if (typeof v !== 'string') throw bad();
    s.str(v);
    return;
  }
  if (type === GgufType.BOOL) {
    if (typeof v !== 'boolean') throw bad();
    s.u8(v ? 1 : 0);
    return;
  }
  if (typeof v === 'string' || typeof v === 'boolean') throw bad();
  const n = Number(v);
  const int = (lo: number, hi: number): void => { if (!Number.isInteger(n) || n < lo || n > hi) throw bad(); };
  switch (type) {
    case GgufType.UINT8: int(0, 255); s.u8(n); break;
    case GgufType.INT8: int(-128, 127); s.i8(n); break;
    case GgufType.UINT16: int(0, 65535); s.u16(n); break;
    case GgufType.INT16: int(-32768, 32767); s.i16(n); break;
    case GgufType.UINT32: int(0, 0xffffffff); s.u32(n); break;
    case GgufType.INT32: int(-0x80000000, 0x7fffffff); s.i32(n); break;
    case GgufType.FLOAT32: s.f32(n); break;
    case GgufType.FLOAT64: s.f64(n); break;
    case GgufType.UINT64: s.u64(v); break;
    case GgufType.INT64: s.i64(v); break;
  }
}

/** The header bytes (up to and including the padding before the data section) and each tensor's data offset. */
export function encodeGgufHeader(kvs: readonly GgufKv[], tensors: readonly GgufTensorInfo[], alignment = GGUF_ALIGNMENT):
  { header: Uint8Array; offsets: number[]; sizes: number[]; dataBytes: number } {
  const keys = new Set<string>();
  for (const e of kvs) {
    if (keys.has(e.key)) throw new Error(`GGUF key ${e.key} is given twice.`);
    keys.add(e.key);
  }
  if (!keys.has('general.alignment') && alignment !== GGUF_ALIGNMENT) throw new Error('A non-default alignment must be written as general.alignment.');
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(kvs.length);
  for (const e of kvs) {
    s.str(e.key);
    s.u32(e.type);
    if (e.type === GgufType.ARRAY) {
      s.u32(e.elemType);
      s.u64(e.value.length);
      for (let i = 0; i < e.value.length; i++) writeScalar(s, e.elemType, e.value[i]!, e.key);
    } else {
      writeScalar(s, e.type, e.value, e.key);
    }
  }
  const offsets: number[] = [];
  const sizes: number[] = [];
  let off = 0;
  for (const t of tensors) {
    const b = BLOCK[t.type];
    if (!b) throw new Error(`Tensor ${t.name}: unknown ggml type ${String(t.type)}.`);
    const rowLen = t.shape[t.shape.length - 1]!;
    if (rowLen % b.size !== 0) throw new Error(`Tensor ${t.name}: rows of ${rowLen} values do not split into ${b.name} blocks of ${b.size}.`);
    s.str(t.name);
    s.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) s.u64(t.shape[d]!);
    s.u32(t.type);
    s.u64(off);
    offsets.push(off);
    const n = tensorBytes(t.type, t.shape);
    sizes.push(n);
    off = alignUp(off + n, alignment);
  }
  s.pad(alignment);
  return { header: s.bytes().slice(), offsets, sizes, dataBytes: off };
}

/**
 * Writes one GGUF file: `create` writes the header, `writeTensor` each tensor's bytes in the declared order,
 * `finish` flushes (fsync) and closes. `abort` closes without finishing (the caller removes the file).
 */
export class GgufFileWriter {
  private next = 0;
  private pos = 0;
  private constructor(private fh: fsp.FileHandle | null, readonly tensors: readonly GgufTensorInfo[],
    private readonly sizes: number[], private readonly alignment: number, readonly totalBytes: number) {}

  static async create(file: string, kvs: readonly GgufKv[], tensors: readonly GgufTensorInfo[], alignment = GGUF_ALIGNMENT): Promise<GgufFileWriter> {
    const { header, sizes, dataBytes } = encodeGgufHeader(kvs, tensors, alignment);
    const fh = await fsp.open(file, 'w');
    const w = new GgufFileWriter(fh, tensors, sizes, alignment, header.length + dataBytes);
    try {
      await w.write(header);
    } catch (err) {
      await w.abort();
      throw err;
    }
    return w;
  }

  private async write(b: Uint8Array): Promise<void> {
    let done = 0;
    while (done < b.length) {
      const { bytesWritten } = await this.fh!.write(b, done, b.length - done, this.pos);
      done += bytesWritten;
      this.pos += bytesWritten;
    }
  }

  /** Index of the tensor whose bytes are expected next. */
  get nextTensor(): number {
    return this.next;
  }

  async writeTensor(data: Uint8Array): Promise<void> {
    const i = this.next;
    const t = this.tensors[i];
    if (!t) throw new Error('All tensors were already written.');
    if (data.length !== this.sizes[i]) throw new Error(`Tensor ${t.name}: ${data.length} bytes given, ${this.sizes[i]} expected.`);
    await this.write(data);
    const pad = alignUp(data.length, this.alignment) - data.length;
    if (pad > 0) await this.write(new Uint8Array(pad));
    this.next++;
  }

  /**
   * Writes the next tensor in parts: `fill` calls `write` with its bytes in order (one call pending at a time),
   * which must add up to the tensor's size.
   */
  async writeTensorParts(fill: (write: (part: Uint8Array) => Promise<void>) => Promise<void>): Promise<void> {
    const i = this.next;
    const t = this.tensors[i];
    if (!t) throw new Error('All tensors were already written.');
    const size = this.sizes[i]!;
    let got = 0;
    await fill(async (part) => {
      if (got + part.length > size) throw new Error(`Tensor ${t.name}: more than the ${size} bytes expected.`);
      got += part.length;
      await this.write(part);
    });
    if (got !== size) throw new Error(`Tensor ${t.name}: ${got} bytes given, ${size} expected.`);
    const pad = alignUp(size, this.alignment) - size;
    if (pad > 0) await this.write(new Uint8Array(pad));
    this.next++;
  }

  async finish(): Promise<void> {
    if (this.next !== this.tensors.length) throw new Error(`Only ${this.next} of ${this.tensors.length} tensors were written.`);
    await this.fh!.sync();
    await this.fh!.close();
    this.fh = null;
  }

  async abort(): Promise<void> {
    if (this.fh) await this.fh.close().catch(() => undefined);
    this.fh = null;
  }
}
