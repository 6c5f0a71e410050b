/**
 * Quantizers (f32 -> ggml block bytes) and dequantizers for the tensor types Lathe writes. The block layouts
 * are ggml's (ggml-common.h); the quantization itself is ours: per block, a small search over scales with a
 * least-squares refit of scale (and min), which is what the reference quantizers do in spirit, without their
 * importance weighting.
 *
 * Layouts, per block:
 *   Q8_0 (32 values, 34 B): f16 d; i8 q[32];                         x = d·q
 *   Q5_0 (32, 22 B):  f16 d; u8 qh[4]; u8 qs[16];                    x = d·(q − 16), q 5 bits: low nibbles in qs
 *                     (value j and j+16 share byte j), fifth bits in qh as one little-endian u32 (bit j)
 *   Q5_1 (32, 24 B):  f16 d; f16 m; u8 qh[4]; u8 qs[16];             x = d·q + m
 *   Q4_K (256, 144 B): f16 d; f16 dmin; u8 scales[12]; u8 qs[128];    8 sub-blocks of 32: x = d·sc·q − dmin·m,
 *                     sc, m 6 bits each packed in scales[12]; sub-blocks 2p and 2p+1 share qs[32p..32p+31]
 *                     (low nibble, high nibble)
 *   Q5_K (256, 176 B): f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128];  as Q4_K with a fifth bit:
 *                     bit 2p (sub-block 2p) and 2p+1 of qh[l]
 *   Q6_K (256, 210 B): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d;   16 sub-blocks of 16: x = d·sc·(q − 32), q 6 bits
 */
import { f16BitsToF32, f32ToF16Bits, bf16ToF32Array, f16ToF32Array } from '../../engine/safetensors/dtype';
import { BLOCK, GgmlType } from './format';

/** Round half away from zero (C's roundf / nearest_int). */
function rnd(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

const f16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));

/** Quantizes `data` (row-major, rows of `rowLen`) into the bytes of `type`. */
export function quantize(type: GgmlType, data: Float32Array, rowLen: number): Uint8Array {
  const b = BLOCK[type];
  if (data.length % rowLen !== 0 || rowLen % b.size !== 0) throw new Error(`${b.name}: ${data.length} values in rows of ${rowLen} do not form blocks of ${b.size}.`);
  switch (type) {
    case GgmlType.F32: return new Uint8Array(data.slice().buffer);
    case GgmlType.F16: return new Uint8Array(toF16(data).buffer);
    case GgmlType.BF16: { const o = new Uint16Array(data.length); toBf16Into(data, 0, data.length, o); return new Uint8Array(o.buffer); }
    default: break;
  }
  const nb = data.length / b.size;
  const out = new Uint8Array(nb * b.bytes);
  const dv = new DataView(out.buffer);
  const q = new Int32Array(256);
  for (let i = 0; i < nb; i++) {
    const x = i * b.size, o = i * b.bytes;
    switch (type) {
      case GgmlType.Q8_0: blockQ8_0(data, x, out, dv, o); break;
      case GgmlType.Q5_0: blockQ5_0(data, x, out, dv, o); break;
      case GgmlType.Q5_1: blockQ5_1(data, x, out, dv, o); break;
      case GgmlType.Q4_K: blockQK(data, x, out, dv, o, 15, q); break;
      case GgmlType.Q5_K: blockQK(data, x, out, dv, o, 31, q); break;
      case GgmlType.Q6_K: blockQ6_K(data, x, out, dv, o, q); break;
    }
  }
  return out;
}

/** Types converted value by value (no blocks): written in chunks straight from the f32 data (QuantPool.stream). */
export function isElementwise(type: GgmlType): boolean {
  return type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16;
}

/**
 * `count` values of `data` from `from` in an elementwise type: F16/BF16 converted into `out` (≥ 2·count bytes,
 * reused by the caller), F32 a view of `data` itself (no copy). Same bits as `quantize`.
 */
export function convertRange(type: GgmlType, data: Float32Array, from: number, count: number, out: Uint8Array): Uint8Array {
  if (type === GgmlType.F32) return new Uint8Array(data.buffer, data.byteOffset + 4 * from, 4 * count);
  const o16 = new Uint16Array(out.buffer, out.byteOffset, count);
  if (type === GgmlType.F16) toF16Into(data, from, count, o16);
  else if (type === GgmlType.BF16) toBf16Into(data, from, count, o16);
  else throw new Error(`${BLOCK[type].name} is not an elementwise type.`);
  return new Uint8Array(out.buffer, out.byteOffset, 2 * count);
}

/**
 * f32 -> f16 bits, round to nearest even: the common case (normal halves) inline on the bits, the rest
 * (subnormal, overflow, inf, NaN) through the exact scalar conversion. Same bits as f32ToF16Array.
 * The bits are read as Int32 (a Uint32 view makes V8 box every negative value as a double: measured ~2× slower).
 */
function toF16Into(data: Float32Array, from: number, count: number, out: Uint16Array): void {
  const u = new Int32Array(data.buffer, data.byteOffset + 4 * from, count);
  for (let i = 0; i < count; i++) {
    const b = u[i]!;
    const a = b & 0x7fffffff;
    // 2^-14 <= |x| < 65520 (the first value that rounds to inf): rebias the exponent, round the 13 dropped bits.
    if (a >= 0x38800000 && a < 0x477ff000) out[i] = ((b >>> 16) & 0x8000) | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
    else out[i] = f32ToF16Bits(data[from + i]!);
  }
}

function toF16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  toF16Into(data, 0, data.length, out);
  return out;
}

/** f32 -> bf16 bits, round to nearest even, NaN kept quiet (same bits as f32ToBf16Array), Int32 reads as above. */
function toBf16Into(data: Float32Array, from: number, count: number, out: Uint16Array): void {
  const u = new Int32Array(data.buffer, data.byteOffset + 4 * from, count);
  for (let i = 0; i < count; i++) {
    const b = u[i]!;
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) out[i] = ((b >>> 16) & 0x8000) | 0x7fc0;
    else out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
}

function blockQ8_0(x: Float32Array, xo: number, out: Uint8Array, dv: DataView, o: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) { const a = Math.abs(x[xo + j]!); if (a > amax) amax = a; }
  const d = amax / 127;
  const id = d ? 1 / d : 0;
  dv.setUint16(o, f32ToF16Bits(d), true);
  for (let j = 0; j < 32; j++) {
    const v = x[xo + j]! * id;
    out[o + 2 + j] = (v < 0 ? -Math.round(-v) : Math.round(v)) & 0xff;
  }
}

function pack5(qv: Int32Array, out: Uint8Array, dv: DataView, qhAt: number, qsAt: number): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = qv[j]!, b = qv[j + 16]!;
    out[qsAt + j] = (a & 0xf) | ((b & 0xf) << 4);
    qh |= ((a >> 4) & 1) << j;
    qh |= ((b >> 4) & 1) << (j + 16);
  }
  dv.setUint32(qhAt, qh >>> 0, true);
}

const q32 = new Int32Array(32);

function blockQ5_0(x: Float32Array, xo: number, out: Uint8Array, dv: DataView, o: number): void {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) { const v = x[xo + j]!; if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; } }
  const d = max / -16;
  const id = d ? 1 / d : 0;
  dv.setUint16(o, f32ToF16Bits(d), true);
  for (let j = 0; j < 32; j++) q32[j] = Math.min(31, Math.max(0, Math.floor(x[xo + j]! * id + 16.5)));
  pack5(q32, out, dv, o + 2, o + 6);
}

function blockQ5_1(x: Float32Array, xo: number, out: Uint8Array, dv: DataView, o: number): void {
  let min = Infinity, max = -Infinity;
  for (let j = 0; j < 32; j++) { const v = x[xo + j]!; if (v < min) min = v; if (v > max) max = v; }
  const d = (max - min) / 31;
  const id = d ? 1 / d : 0;
  dv.setUint16(o, f32ToF16Bits(d), true);
  dv.setUint16(o + 2, f32ToF16Bits(min), true);
  for (let j = 0; j < 32; j++) q32[j] = Math.min(31, Math.max(0, Math.floor((x[xo + j]! - min) * id + 0.5)));
  pack5(q32, out, dv, o + 4, o + 8);
}

/**
 * Best (scale ≥ 0, min ≥ 0) with x ≈ scale·q − min, q ∈ [0, nmax]: a few grid points for the initial
 * scale, each refit by least squares on the chosen q (min clamped at 0 as ggml stores it unsigned).
 */
function fitAsym(x: Float32Array, xo: number, n: number, nmax: number): [number, number] {
  let lo = 0, hi = -Infinity, sx = 0, sxx = 0;
  for (let j = 0; j < n; j++) { const v = x[xo + j]!; if (v < lo) lo = v; if (v > hi) hi = v; sx += v; sxx += v * v; }
  if (hi <= lo) return [0, -lo];
  let bestErr = Infinity, bestS = (hi - lo) / nmax, bestB = lo;
  for (let k = -4; k <= 4; k++) {
    const iscale = (nmax + 0.15 * k) / (hi - lo);
    let sq = 0, sqq = 0, sxq = 0;
    for (let j = 0; j < n; j++) {
      const v = x[xo + j]!;
      let qq = Math.floor(iscale * (v - lo) + 0.5); // the argument is ≥ 0: round half up = half away from zero
      if (qq > nmax) qq = nmax;
      sq += qq; sqq += qq * qq; sxq += v * qq;
    }
    const det = n * sqq - sq * sq;
    let s: number, b: number;
    if (det > 0) {
      s = (n * sxq - sq * sx) / det;
      b = (sqq * sx - sq * sxq) / det;
    } else { s = 1 / iscale; b = lo; }
    if (b > 0) { b = 0; s = sqq > 0 ? sxq / sqq : 0; }
    if (s < 0) continue;
    // Σ (s·q + b − x)² from the sums, for these q (the block is requantized with the stored scales later).
    const err = s * s * sqq + 2 * s * b * sq + n * b * b - 2 * s * sxq - 2 * b * sx + sxx;
    if (err < bestErr) { bestErr = err; bestS = s; bestB = b; }
  }
  return [bestS, -bestB];
}

const scl = new Float64Array(16), mns = new Float64Array(16);
const ls = new Int32Array(16), lm = new Int32Array(16);

function blockQK(x: Float32Array, xo: number, out: Uint8Array, dv: DataView, o: number, nmax: number, q: Int32Array): void {
  let maxS = 0, maxM = 0;
  for (let j = 0; j < 8; j++) {
    const [s, m] = fitAsym(x, xo + 32 * j, 32, nmax);
    scl[j] = s; mns[j] = m;
    maxS = Math.max(maxS, s); maxM = Math.max(maxM, m);
  }
  const d = f16(maxS / 63), dmin = f16(maxM / 63);
  dv.setUint16(o, f32ToF16Bits(maxS / 63), true);
  dv.setUint16(o + 2, f32ToF16Bits(maxM / 63), true);
  for (let j = 0; j < 8; j++) {
    ls[j] = d > 0 ? Math.min(63, Math.max(0, rnd(scl[j]! / d))) : 0;
    lm[j] = dmin > 0 ? Math.min(63, Math.max(0, rnd(mns[j]! / dmin))) : 0;
  }
  // Requantize with the stored (rounded) scales and mins.
  for (let j = 0; j < 8; j++) {
    const s = d * ls[j]!, m = dmin * lm[j]!;
    const is = s > 0 ? 1 / s : 0;
    for (let l = 0; l < 32; l++) q[32 * j + l] = s > 0 ? Math.min(nmax, Math.max(0, rnd((x[xo + 32 * j + l]! + m) * is))) : 0;
  }
  const sc = o + 4;
  out.fill(0, sc, sc + 12);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      out[sc + j] = ls[j]!;
      out[sc + j + 4] = lm[j]!;
    } else {
      out[sc + j + 4] = (ls[j]! & 0xf) | ((lm[j]! & 0xf) << 4);
      out[sc + j - 4]! |= (ls[j]! >> 4) << 6;
      out[sc + j]! |= (lm[j]! >> 4) << 6;
    }
  }
  if (nmax === 15) {
    const qs = o + 16;
    for (let p = 0; p < 4; p++) for (let l = 0; l < 32; l++) out[qs + 32 * p + l] = q[64 * p + l]! | (q[64 * p + 32 + l]! << 4);
  } else {
    const qh = o + 16, qs = o + 48;
    out.fill(0, qh, qh + 32);
    for (let p = 0; p < 4; p++) {
      for (let l = 0; l < 32; l++) {
        const a = q[64 * p + l]!, b = q[64 * p + 32 + l]!;
        out[qs + 32 * p + l] = (a & 0xf) | ((b & 0xf) << 4);
        out[qh + l]! |= ((a >> 4) << (2 * p)) | ((b >> 4) << (2 * p + 1));
      }
    }
  }
}

/** Best signed scale with x ≈ s·q, q ∈ [−32, 31]: the largest-magnitude value maps near −32, refit by least squares. */
function fitSym6(x: Float32Array, xo: number): number {
  let amax = 0, mx = 0, sxx = 0;
  for (let j = 0; j < 16; j++) { const v = x[xo + j]!; sxx += v * v; if (Math.abs(v) > amax) { amax = Math.abs(v); mx = v; } }
  if (amax === 0) return 0;
  let bestErr = Infinity, bestS = mx / -32;
  for (let k = -4; k <= 4; k++) {
    const iscale = -(32 + 0.15 * k) / mx;
    let sqq = 0, sxq = 0;
    for (let j = 0; j < 16; j++) {
      const v = x[xo + j]!;
      const qq = Math.min(31, Math.max(-32, rnd(iscale * v)));
      sqq += qq * qq; sxq += v * qq;
    }
    if (sqq === 0) continue;
    const s = sxq / sqq;
    const err = sxx - s * sxq; // Σ (s·q − x)² at the least-squares s
    if (err < bestErr) { bestErr = err; bestS = s; }
  }
  return bestS;
}

function blockQ6_K(x: Float32Array, xo: number, out: Uint8Array, dv: DataView, o: number, q: Int32Array): void {
  let amaxS = 0, maxS = 0;
  for (let j = 0; j < 16; j++) {
    const s = fitSym6(x, xo + 16 * j);
    scl[j] = s;
    if (Math.abs(s) > amaxS) { amaxS = Math.abs(s); maxS = s; }
  }
  // The scales are i8: the largest-magnitude one maps to −128 (ggml's convention keeps its sign negative).
  const dRaw = maxS / -128;
  const d = f16(dRaw);
  const scAt = o + 192;
  for (let j = 0; j < 16; j++) {
    const sc = d !== 0 ? Math.min(127, Math.max(-128, rnd(scl[j]! / d))) : 0;
    dv.setInt8(scAt + j, sc);
    const s = d * sc;
    const is = s !== 0 ? 1 / s : 0;
    for (let l = 0; l < 16; l++) q[16 * j + l] = (s !== 0 ? Math.min(31, Math.max(-32, rnd(x[xo + 16 * j + l]! * is))) : 0) + 32;
  }
  dv.setUint16(o + 208, f32ToF16Bits(dRaw), true);
  for (let n = 0; n < 2; n++) {
    const base = 128 * n;
    for (let l = 0; l < 32; l++) {
      const v0 = q[base + l]!, v1 = q[base + l + 32]!, v2 = q[base + l + 64]!, v3 = q[base + l + 96]!;
      out[o + 64 * n + l] = (v0 & 0xf) | ((v2 & 0xf) << 4);
      out[o + 64 * n + l + 32] = (v1 & 0xf) | ((v3 & 0xf) << 4);
      out[o + 128 + 32 * n + l] = (v0 >> 4) | ((v1 >> 4) << 2) | ((v2 >> 4) << 4) | ((v3 >> 4) << 6);
    }
  }
}

/** The values a block-encoded tensor stands for (ggml's dequantization, written from the layouts above). */
export function dequantize(type: GgmlType, bytes: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = (at: number): number => f16BitsToF32(dv.getUint16(at, true));
  switch (type) {
    case GgmlType.F32: return new Float32Array(bytes.slice(0, 4 * n).buffer);
    case GgmlType.F16: return f16ToF32Array(new Uint16Array(bytes.slice(0, 2 * n).buffer));
    case GgmlType.BF16: return bf16ToF32Array(new Uint16Array(bytes.slice(0, 2 * n).buffer));
    default: break;
  }
  const b = BLOCK[type];
  for (let i = 0; i < n / b.size; i++) {
    const o = i * b.bytes, yo = i * b.size;
    switch (type) {
      case GgmlType.Q8_0: {
        const d = h(o);
        for (let j = 0; j < 32; j++) y[yo + j] = d * dv.getInt8(o + 2 + j);
        break;
      }
      case GgmlType.Q5_0:
      case GgmlType.Q5_1: {
        const d = h(o);
        const m = type === GgmlType.Q5_1 ? h(o + 2) : 0;
        const qhAt = type === GgmlType.Q5_1 ? o + 4 : o + 2;
        const qh = dv.getUint32(qhAt, true);
        const qs = qhAt + 4;
        const off = type === GgmlType.Q5_0 ? 16 : 0;
        for (let j = 0; j < 16; j++) {
          const a = (bytes[qs + j]! & 0xf) | (((qh >>> j) & 1) << 4);
          const c = (bytes[qs + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
          y[yo + j] = (a - off) * d + m;
          y[yo + j + 16] = (c - off) * d + m;
        }
        break;
      }
      case GgmlType.Q4_K:
      case GgmlType.Q5_K: {
        const d = h(o), dmin = h(o + 2);
        const sc = o + 4;
        const five = type === GgmlType.Q5_K;
        const qh = o + 16, qs = five ? o + 48 : o + 16;
        for (let j = 0; j < 8; j++) {
          let s: number, m: number;
          if (j < 4) { s = bytes[sc + j]! & 63; m = bytes[sc + j + 4]! & 63; } else {
            s = (bytes[sc + j + 4]! & 0xf) | ((bytes[sc + j - 4]! >> 6) << 4);
            m = (bytes[sc + j + 4]! >> 4) | ((bytes[sc + j]! >> 6) << 4);
          }
          const p = j >> 1, hi = j & 1;
          for (let l = 0; l < 32; l++) {
            let qq = hi ? bytes[qs + 32 * p + l]! >> 4 : bytes[qs + 32 * p + l]! & 0xf;
            if (five) qq |= ((bytes[qh + l]! >> j) & 1) << 4;
            y[yo + 32 * j + l] = d * s * qq - dmin * m;
          }
        }
        break;
      }
      case GgmlType.Q6_K: {
        const d = h(o + 208);
        for (let nn = 0; nn < 2; nn++) {
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const ql0 = bytes[o + 64 * nn + l]!, ql1 = bytes[o + 64 * nn + l + 32]!, qh = bytes[o + 128 + 32 * nn + l]!;
            const sc = (k: number): number => dv.getInt8(o + 192 + 8 * nn + is + k);
            const base = yo + 128 * nn;
            y[base + l] = d * sc(0) * (((ql0 & 0xf) | ((qh & 3) << 4)) - 32);
            y[base + l + 32] = d * sc(2) * (((ql1 & 0xf) | (((qh >> 2) & 3) << 4)) - 32);
            y[base + l + 64] = d * sc(4) * (((ql0 >> 4) | (((qh >> 4) & 3) << 4)) - 32);
            y[base + l + 96] = d * sc(6) * (((ql1 >> 4) | (((qh >> 6) & 3) << 4)) - 32);
          }
        }
        break;
      }
    }
  }
  return y;
}
