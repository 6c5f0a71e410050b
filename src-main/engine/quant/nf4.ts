/**
 * NF4 (4-bit NormalFloat) blockwise quantization with double quantization of the block scales, as in
 * QLoRA (Dettmers et al. 2023, appendix E) and bitsandbytes' `quantize_4bit(quant_type='nf4',
 * compress_statistics=True)`:
 *
 *   w (n values, flattened row-major) -> blocks of 64 -> absmax_b = max |w| in block b
 *   code_i = nearest NF4 value to w_i / absmax_b           (4 bits, two per byte, low nibble first)
 *   absmax  -> offset = mean(absmax); a = absmax - offset -> blocks of 256 -> scale2_c = max |a| in block c
 *   acode_b = nearest value of the signed 8-bit dynamic map to a_b / scale2_c     (8 bits)
 *
 * Dequantized: w_i ≈ NF4[code_i] · (DYN[acode_b] · scale2_c + offset).
 * Storage per n parameters: n/2 + n/64 + 4·⌈n/16384⌉ + 4 bytes ≈ 4.127 bits per parameter (no padding
 * of the absmax codes, so small tensors stay near 4.13 too).
 * The oracle test/oracle/quant/gen_fixture.py implements the same definition in PyTorch.
 */

/** The 16 NF4 values (bitsandbytes `get_4bit_type('nf4')`, QLoRA appendix E), ascending; index 7 is 0. */
export const NF4_VALUES: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

/** Elements per absmax block (QLoRA: 64). */
export const NF4_BLOCK = 64;
/** absmax values per second-level block (QLoRA: 256). */
export const ABSMAX_BLOCK = 256;

/** Midpoints between neighbouring NF4 values in f32: code = how many midpoints lie below x. */
const NF4_MIDS = Float32Array.from(NF4_VALUES.slice(1), (v, i) => (v + NF4_VALUES[i]!) / 2);

let dynMap: Float32Array | null = null;

/**
 * bitsandbytes' signed 8-bit dynamic ("dynamic tree") map: `create_dynamic_map(signed=True,
 * max_exponent_bits=7, total_bits=8)`. For exponent i in 0..6, 2^i values ±10^(i-6)·m for m the
 * midpoints of linspace(0.1, 1, 2^i + 1); plus 0 and 1; 256 values sorted ascending. Computed in f32
 * like torch.
 */
export function dynamicMap(): Float32Array {
  if (dynMap) return dynMap;
  const f = Math.fround;
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const items = 2 ** i + 1;
    const bounds: number[] = [];
    // torch.linspace(0.1, 1, items) in f32: start + step·k, the upper half counted back from the end
    const start = f(0.1), step = f(f(1 - start) / (items - 1));
    const half = Math.floor(items / 2);
    for (let k = 0; k < items; k++) bounds.push(k < half ? f(start + f(step * k)) : f(1 - f(step * (items - 1 - k))));
    const scale = f(10 ** (-6 + i));
    for (let k = 0; k < items - 1; k++) {
      const mean = f(f(bounds[k]! + bounds[k + 1]!) / 2);
      data.push(f(scale * mean), f(-scale * mean));
    }
  }
  data.push(0, 1);
  data.sort((a, b) => a - b);
  dynMap = Float32Array.from(data);
  return dynMap;
}

/** One quantized tensor. */
export interface Nf4Tensor {
  /** Original shape and element count n. */
  shape: number[];
  n: number;
  /** Blocks of 64 (nb = ceil(n/64)); codes hold nb·64 nibbles, padding codes are 7 (zero). */
  nb: number;
  /** Second-level blocks (nb2 = ceil(nb/256)); the last may be short. */
  nb2: number;
  /** uint4 codes, two per byte, element 2i in the low nibble (ONNX uint4 layout) [nb·32 bytes]. */
  codes: Uint8Array;
  /** uint8 dynamic-map codes of absmax − offset [nb]. */
  absCodes: Uint8Array;
  /** f32 scale per second-level block [nb2]. */
  scale2: Float32Array;
  /** f32 mean of the absmax values. */
  offset: number;
}

/** Bytes the quantized tensor occupies as initializers (what the device holds for it). */
export function nf4Bytes(q: Nf4Tensor): number {
  return q.codes.byteLength + q.absCodes.byteLength + q.scale2.byteLength + 4;
}

function nearestDyn(map: Float32Array, x: number): number {
  // binary search for the first entry >= x, then the nearer of it and its left neighbour (ties: lower)
  let lo = 0, hi = map.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (map[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(x - map[lo - 1]!) <= Math.abs(map[lo]! - x)) return lo - 1;
  return lo;
}

/** How many of the 15 midpoints lie strictly below x: four comparisons (a binary search over 16 codes). */
function nf4Code(x: number): number {
  const m = NF4_MIDS;
  let c = m[7]! < x ? 8 : 0;
  if (m[c + 3]! < x) c += 4;
  if (m[c + 1]! < x) c += 2;
  if (m[c]! < x) c += 1;
  return c;
}

/** Quantizes `w` (any shape, flattened row-major). f32 arithmetic throughout, as the oracle. */
export function quantizeNf4(w: Float32Array, shape: number[] = [w.length]): Nf4Tensor {
  const f = Math.fround;
  const n = w.length;
  const nb = Math.ceil(n / NF4_BLOCK);
  const nb2 = Math.ceil(nb / ABSMAX_BLOCK);
  const absmax = new Float32Array(nb);
  const codes = new Uint8Array(nb * (NF4_BLOCK / 2));
  for (let b = 0; b < nb; b++) {
    const s = b * NF4_BLOCK, e = Math.min(n, s + NF4_BLOCK);
    let m = 0;
    for (let i = s; i < e; i++) m = Math.max(m, Math.abs(w[i]!));
    absmax[b] = m;
    for (let i = s; i < s + NF4_BLOCK; i++) {
      // padding and all-zero blocks code to 7 (the exact zero)
      const c = i < e && m > 0 ? nf4Code(f(w[i]! / m)) : 7;
      codes[i >> 1]! |= c << ((i & 1) * 4);
    }
  }
  // double quantization: f32 offset = mean in f64, rounded once
  let sum = 0;
  for (let b = 0; b < nb; b++) sum += absmax[b]!;
  const offset = f(sum / nb);
  const map = dynamicMap();
  const absCodes = new Uint8Array(nb);
  const scale2 = new Float32Array(nb2);
  for (let c = 0; c < nb2; c++) {
    const s = c * ABSMAX_BLOCK, e = Math.min(nb, s + ABSMAX_BLOCK);
    let m = 0;
    for (let b = s; b < e; b++) m = Math.max(m, Math.abs(f(absmax[b]! - offset)));
    scale2[c] = m;
    for (let b = s; b < e; b++) absCodes[b] = m > 0 ? nearestDyn(map, f(f(absmax[b]! - offset) / m)) : nearestDyn(map, 0);
  }
  return { shape: [...shape], n, nb, nb2, codes, absCodes, scale2, offset };
}

/** The absmax values as the graph reconstructs them [nb]. */
export function dequantizeAbsmax(q: Nf4Tensor): Float32Array {
  const f = Math.fround;
  const map = dynamicMap();
  const out = new Float32Array(q.nb);
  for (let b = 0; b < q.nb; b++) out[b] = f(f(map[q.absCodes[b]!]! * q.scale2[Math.floor(b / ABSMAX_BLOCK)]!) + q.offset);
  return out;
}

/** Host-side dequantization (tests, export): the same arithmetic as the in-graph chain. */
export function dequantizeNf4(q: Nf4Tensor): Float32Array {
  const absmax = dequantizeAbsmax(q);
  const out = new Float32Array(q.n);
  for (let i = 0; i < q.n; i++) {
    const c = (q.codes[i >> 1]! >> ((i & 1) * 4)) & 0xf;
    out[i] = Math.fround(NF4_VALUES[c]! * absmax[Math.floor(i / NF4_BLOCK)]!);
  }
  return out;
}

/** The 4-bit codes unpacked (tests). */
export function unpackCodes(q: Nf4Tensor): Uint8Array {
  const out = new Uint8Array(q.n);
  for (let i = 0; i < q.n; i++) out[i] = (q.codes[i >> 1]! >> ((i & 1) * 4)) & 0xf;
  return out;
}
