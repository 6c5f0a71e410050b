/**
 * Raw little-endian byte packing for tensor data: typed arrays -> bytes, float16/bfloat16 bit
 * conversions (Node 20 has no Float16Array), and int4/uint4 nibble packing (low nibble first, as ONNX).
 */
import type { OnnxDataType, OnnxTensor } from './spec';

/** A view of the same memory as bytes (no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE half bits, round to nearest even; overflow -> inf, NaN kept. */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000; // implicit leading 1, then shift into subnormal range
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function toFloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!);
  return out;
}

export function fromFloat16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = float16BitsToFloat32(bits[i]!);
  return out;
}

/** float32 -> bfloat16 bits, round to nearest even. */
export function toBfloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!;
    const x = u32[0]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff)) { out[i] = (x >>> 16) | 0x40; continue; }
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

export function fromBfloat16(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}

/** int4 values in [-8, 7] (or uint4 in [0, 15]) -> two per byte, element 2i in the low nibble. */
export function packInt4(values: ArrayLike<number>, signed = true): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  const [lo, hi] = signed ? [-8, 7] : [0, 15];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new Error(`packInt4: element ${i} is ${v}, outside ${signed ? 'int4' : 'uint4'} range [${lo}, ${hi}]`);
    }
    out[i >> 1]! |= (v & 0xf) << ((i & 1) * 4);
  }
  return out;
}

export function unpackInt4(bytes: Uint8Array, count: number, signed = true): Int8Array {
  const out = new Int8Array(count);
  for (let i = 0; i < count; i++) {
    const nib = (bytes[i >> 1]! >> ((i & 1) * 4)) & 0xf;
    out[i] = signed && nib >= 8 ? nib - 16 : nib;
  }
  return out;
}

/** Builds a raw-data initializer from plain numbers, converting to the requested element type. */
export function rawTensor(name: string, type: OnnxDataType, dims: number[], values: ArrayLike<number | bigint>): OnnxTensor {
  const n = dims.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new Error(`rawTensor ${name}: dims [${dims.join(', ')}] need ${n} values, got ${values.length}`);
  const nums = () => Array.from(values as ArrayLike<number>, Number);
  let bytes: Uint8Array;
  switch (type) {
    case 'float32': bytes = bytesOf(Float32Array.from(nums())); break;
    case 'float64': bytes = bytesOf(Float64Array.from(nums())); break;
    case 'float16': bytes = bytesOf(toFloat16(nums())); break;
    case 'bfloat16': bytes = bytesOf(toBfloat16(nums())); break;
    case 'int32': bytes = bytesOf(Int32Array.from(nums())); break;
    case 'int64': bytes = bytesOf(BigInt64Array.from(Array.from(values, (v) => BigInt(v)))); break;
    case 'int8': bytes = bytesOf(Int8Array.from(nums())); break;
    case 'uint8': case 'bool': bytes = Uint8Array.from(nums()); break;
    case 'int4': bytes = packInt4(nums(), true); break;
    case 'uint4': bytes = packInt4(nums(), false); break;
  }
  // Copy so the tensor owns exactly its bytes (a view into a pooled buffer would leak neighbours).
  return { name, type, dims, data: { kind: 'raw', bytes: bytes.slice() } };
}
