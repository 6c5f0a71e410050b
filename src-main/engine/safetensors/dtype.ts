/**
 * Element types of safetensors files and the float conversions the engine needs.
 * f16 and bf16 values travel as their raw 16-bit patterns in Uint16Array (Node 20 has no Float16Array).
 * All conversions assume a little-endian host, as safetensors data is little-endian.
 */

export type SafetensorsDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Bytes per element. */
export const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export function isSafetensorsDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** The float types a model's weights may be stored in. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

/** Lower-case spelling used in configs and CLI flags (`--dtype bf16`). */
export type FloatDtypeName = 'f32' | 'f16' | 'bf16';

export function floatDtypeFromName(name: string): FloatDtype {
  switch (name.toLowerCase()) {
    case 'f32': case 'float32': return 'F32';
    case 'f16': case 'float16': return 'F16';
    case 'bf16': case 'bfloat16': return 'BF16';
    default: throw new Error(`Unknown float dtype "${name}": use f32, f16 or bf16.`);
  }
}

const scratch = new DataView(new ArrayBuffer(4));

/** f32 -> bf16 bits, round to nearest, ties to even (what torch's .to(torch.bfloat16) does). NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  const bits = scratch.getUint32(0, true);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  scratch.setUint32(0, (h & 0xffff) << 16, true);
  return scratch.getFloat32(0, true);
}

/** f32 -> IEEE half bits, round to nearest, ties to even, subnormals kept, overflow to ±inf. */
export function f32ToF16Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  return f32BitsToF16Bits(scratch.getUint32(0, true));
}

function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = mant24 * 2^(exp-150), unit 2^-24, so shift the 24-bit mantissa by 14 - e.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, up to inf: the bit layout makes that correct.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

let f16Table: Float32Array | undefined;

/** All 65,536 half values as f32 (256 KiB, built once). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) t[h] = mant === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

export function f16BitsToF32(h: number): number {
  return halfTable()[h & 0xffff]!;
}

export function f16ToF32Array(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const t = halfTable();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  return out;
}

export function bf16ToF32Array(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  // bf16 is the top half of an f32: widen through an int32 view (`<< 16` yields an int32, so no
  // uint conversion per element), no per-element DataView.
  const u = new Int32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  return out;
}

export function f32ToF16Array(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(u[i]!);
  return out;
}

export function f32ToBf16Array(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const bits = u[i]!;
    if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) out[i] = ((bits >>> 16) & 0x8000) | 0x7fc0;
    else out[i] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** bf16 -> f16 through f32 (both 16-bit, different ranges: values beyond ±65504 become ±inf). */
export function bf16ToF16Array(src: Uint16Array): Uint16Array {
  return f32ToF16Array(bf16ToF32Array(src));
}
