/**
 * The pieces every kernel is made of: how a tensor is stored in a GPU buffer, references to tensors
 * (a buffer and an element offset: views cost nothing), and a small builder that declares a kernel's
 * bindings with typed load/store functions, so every kernel reads f32, f16 and bf16 storage alike.
 *
 * Storage kinds (element = one tensor element):
 *   f32   array<f32>                       float32 values
 *   h16   array<f16>                       float16 values computed by kernels (f16 compute), where the device
 *                                          has shader-f16: half the bytes; loads widen to f32, stores round
 *   f16r  array<f32>, stores rounded to f16  the same without shader-f16 (emulated: f32 words, f16 values)
 *   f16   array<u32>, two halves per word    float16 weights in the file's type (read-only)
 *   bf16  array<u32>, two halves per word    bfloat16 weights: a half is the top 16 bits of an f32 (read-only)
 *   hb16  array<f16> holding bf16 bits     float16 IR values under bf16 compute (planGraph's halfType 'bfloat16'),
 *                                          shader-f16 devices: each f16 slot carries a bfloat16's 16 bits (bitcast, no
 *                                          f16 arithmetic touches them); loads widen to f32, stores round to bf16
 *   b16r  array<f32>, stores rounded to bf16 the same without shader-f16 (emulated: f32 words, bf16 values)
 *   i32   array<i32>                       int32 and int64 (int64 narrowed on upload; indices fit)
 *   u32   array<u32>                       bool (0/1)
 */
import type { DType } from '../../graph/types';

export type Storage = 'f32' | 'h16' | 'f16r' | 'f16' | 'bf16' | 'hb16' | 'b16r' | 'i32' | 'u32';
export type Scalar = 'f32' | 'i32' | 'u32';

export type BufferKind = 'weight' | 'const' | 'input' | 'state' | 'output' | 'temp';

/** One GPU buffer of the plan. */
export interface BufferSlot {
  id: number;
  kind: BufferKind;
  /** Size in bytes (a multiple of 4). */
  bytes: number;
  label: string;
}

/** A tensor in a buffer: `numel` elements from element `offset`, stored as `storage`. */
export interface Ref {
  buf: BufferSlot;
  offset: number;
  numel: number;
  storage: Storage;
  /**
   * A weight larger than one storage binding, split by row blocks into several buffers (`buf` is the
   * first; `total` elements in all): element j lives in part ⌊j / elems⌋ at j mod elems. Kernels read it through one load
   * function that picks the part, so every kernel (Gather, MatMul, Gemm, ...) takes split weights.
   */
  parts?: { bufs: BufferSlot[]; elems: number; total: number };
}

export const scalarOf = (t: DType): Scalar => {
  switch (t) {
    case 'float32':
    case 'float16': return 'f32';
    case 'int32':
    case 'int64': return 'i32';
    case 'bool': return 'u32';
    case 'float64': throw new Error('float64 has no GPU kernels (WGSL has no f64); the GPU backend computes in float32.');
  }
};

/** Storage of a value computed by a kernel. */
export const storageOf = (t: DType): Storage => {
  switch (t) {
    case 'float32': return 'f32';
    case 'float16': return half === 'bfloat16' ? 'b16r' : 'f16r';
    case 'int32':
    case 'int64': return 'i32';
    case 'bool': return 'u32';
    case 'float64': throw new Error('float64 has no GPU kernels (WGSL has no f64); the GPU backend computes in float32.');
  }
};

/**
 * The 16-bit compute type the IR's float16 values stand for while a plan is made: IEEE f16, or bfloat16 under
 * bf16 compute (planGraph's `halfType`; the graph is the f16-compute graph, its float16 activations become bf16).
 * Module state, set only for the duration of one synchronous planGraph call (withHalfType).
 */
let half: 'float16' | 'bfloat16' = 'float16';
export const halfType = (): 'float16' | 'bfloat16' => half;
export function withHalfType<T>(t: 'float16' | 'bfloat16', fn: () => T): T {
  const was = half;
  half = t;
  try {
    return fn();
  } finally {
    half = was;
  }
}

/**
 * Storage of a value computed by a kernel on a device that has (`shaderF16`) or lacks WGSL's f16 type:
 * float16 values are array<f16> there (half the bytes), else f32 words rounded to f16 on store.
 */
export const activationStorage = (t: DType, shaderF16: boolean): Storage => (t === 'float16' && shaderF16 ? (half === 'bfloat16' ? 'hb16' : 'h16') : storageOf(t));

/** Bytes one element takes in `s` (16-bit kinds: 2). */
export const elementBytes = (s: Storage): number => (s === 'f16' || s === 'bf16' || s === 'h16' || s === 'hb16' ? 2 : 4);

/** Bytes a tensor of `n` elements takes in `s`, rounded up to 4. */
export function storageBytes(s: Storage, n: number): number {
  const b = elementBytes(s) * n;
  return Math.max(4, Math.ceil(b / 4) * 4);
}

const ARRAY: Record<Storage, string> = { f32: 'f32', h16: 'f16', f16r: 'f32', f16: 'u32', bf16: 'u32', hb16: 'f16', b16r: 'f32', i32: 'i32', u32: 'u32' };
const SCALAR: Record<Storage, Scalar> = { f32: 'f32', h16: 'f32', f16r: 'f32', f16: 'f32', bf16: 'f32', hb16: 'f32', b16r: 'f32', i32: 'i32', u32: 'u32' };

/** A WGSL literal of type `t`. */
export function lit(x: number, t: Scalar = 'f32'): string {
  if (t === 'i32') return `${Math.trunc(x)}i`;
  if (t === 'u32') return `${Math.trunc(x)}u`;
  if (Number.isNaN(x)) return 'bitcast<f32>(0x7fc00000u)';
  if (x === Infinity) return 'bitcast<f32>(0x7f800000u)';
  if (x === -Infinity) return 'bitcast<f32>(0xff800000u)';
  const f = Math.fround(x);
  if (f !== 0 && (Math.abs(f) < 1.1754943508222875e-38 || !Number.isFinite(f))) return `bitcast<f32>(${new Uint32Array(new Float32Array([f]).buffer)[0]}u)`;
  const s = f.toPrecision(9);
  return /[.e]/.test(s) ? `${s}f` : `${s}.0f`;
}

export interface Binding { ref: Ref; write: boolean }

/** WGSL's directive for the f16 type (needs the device feature shader-f16); hoisted by `source`. */
const ENABLE_F16 = 'enable f16;';
/**
 * f32 -> f16 for stores, rounding to nearest; values beyond f16's range become ±inf and NaN stays NaN
 * (WGSL leaves an out-of-range f16(v) indeterminate; the loss-scaled backward's non-finite guard needs the inf).
 */
const TO_H16 = 'fn toH16(v: f32) -> f16 { if (abs(v) < 65520.0) { return f16(v); } let w = bitcast<vec2<f16>>(select(0x7e007e00u, select(0xfc00fc00u, 0x7c007c00u, v > 0.0), abs(v) >= 65520.0)); return w.x; }';

/**
 * An f32 rounded to the nearest f16 value (ties to even), kept in f32: subnormals on f16's 2⁻²⁴ grid, ±inf past
 * its range, NaN as NaN. Integer bit arithmetic, because lavapipe's compiler folds unpack2x16float(pack2x16float(v))
 * back to v (measured: no rounding at all), and pack2x16float is undefined past f16's range anyway.
 */
export const ROUND_F16 = 'fn roundF16(v: f32) -> f32 { let a = abs(v); if (a < 6.103515625e-5) { return round(v * 16777216.0) * 5.9604644775390625e-8; } '
  + 'if (a < 65520.0) { let b = bitcast<u32>(v); return bitcast<f32>((b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u); } '
  + 'return bitcast<f32>(select(0x7fc00000u, select(0xff800000u, 0x7f800000u, v > 0.0), a >= 65520.0)); }';

/**
 * An f32 rounded to the nearest bfloat16 (ties to even: the carry into the upper half), kept in f32; past bf16's
 * range ±inf (the carry reaches the exponent), ±inf as is, NaN quieted (bit 22 set: its upper half is a NaN too).
 * Integer bit arithmetic (lavapipe folds float pack/unpack round trips: see ROUND_F16).
 */
export const ROUND_BF16 = 'fn roundBF16(v: f32) -> f32 { let b = bitcast<u32>(v); if ((b & 0x7fffffffu) > 0x7f800000u) { return bitcast<f32>(b | 0x00400000u); } '
  + 'return bitcast<f32>((b + 0x7fffu + ((b >> 16u) & 1u)) & 0xffff0000u); }';
/** bf16 bits in an f16 slot (hb16): the upper half of the rounded f32, moved as bits (bitcast), never converted. */
const TO_HB16 = 'fn toHB16(v: f32) -> f16 { return bitcast<vec2<f16>>(bitcast<u32>(roundBF16(v)) >> 16u).x; }';
const FROM_HB16 = 'fn fromHB16(h: f16) -> f32 { return bitcast<f32>(bitcast<u32>(vec2<f16>(h, f16(0.0))) << 16u); }';

/** What a store function writes for its argument `v` in `storage` (16-bit storages round; output() declares the helpers). */
export const storedValue = (storage: Storage): string =>
  ({ f16r: 'roundF16(v)', h16: 'toH16(v)', hb16: 'toHB16(v)', b16r: 'roundBF16(v)' } as Partial<Record<Storage, string>>)[storage] ?? 'v';

/**
 * The WGSL helper that rounds an f32 to the 16-bit compute type (roundF16, or roundBF16 under bf16 compute):
 * for values a kernel keeps as the compute type without storing them (fused chains, NF4 weights under f16 compute).
 */
export const roundHalf = (): { decl: string; fn: string } => (half === 'bfloat16' ? { decl: ROUND_BF16, fn: 'roundBF16' } : { decl: ROUND_F16, fn: 'roundF16' });

/** Stands for the plan's params buffer until the plan binds it. */
const PARAMS_PLACEHOLDER: Ref = { buf: { id: -1, kind: 'const', bytes: 4, label: 'params' }, offset: 0, numel: 1, storage: 'u32' };

/**
 * Builds one kernel: `input(ref)` / `output(ref)` declare a binding and return the name of its
 * load `ldN(e: u32) -> T` or store `stN(e: u32, v: T)` function (e = element index within the tensor).
 */
export class KernelBuilder {
  readonly bindings: Binding[] = [];
  /** Run-time u32 parameters (see `param`); the plan places them in its params buffer. */
  readonly params: number[] = [];
  /** Index of the params binding in `bindings` (-1: none). */
  paramBinding = -1;
  private decls: string[] = [];

  constructor(readonly name: string) {}

  /**
   * A u32 read at run time from this dispatch's slice of the plan's params buffer instead of a literal.
   * Tensor offsets and loop bounds go through this, so dispatches that differ only in them (the same layer
   * kernel in every block, a LoRA piece at another offset) share one shader module and one pipeline:
   * pipelines are what a driver compiles (lavapipe: about a second each on its first dispatch).
   */
  param(v: number): string {
    if (this.paramBinding < 0) {
      this.paramBinding = this.bindings.length;
      this.bindings.push({ ref: PARAMS_PLACEHOLDER, write: false });
      this.decls.push(`@group(0) @binding(${this.paramBinding}) var<storage, read> prm: array<u32>;`);
    }
    this.params.push(v);
    return `prm[${this.params.length - 1}u]`;
  }

  input(ref: Ref): string {
    if (ref.parts) return this.splitInput(ref, ref.parts);
    const i = this.bindings.length;
    this.bindings.push({ ref, write: false });
    if (ref.storage === 'h16' || ref.storage === 'hb16') this.decl(ENABLE_F16);
    if (ref.storage === 'hb16') this.decl(FROM_HB16);
    this.decls.push(`@group(0) @binding(${i}) var<storage, read> b${i}: array<${ARRAY[ref.storage]}>;`);
    const j = ref.offset ? `${this.param(ref.offset)} + e` : 'e';
    switch (ref.storage) {
      case 'hb16':
        this.decls.push(`fn ld${i}(e: u32) -> f32 { return fromHB16(b${i}[${j}]); }`);
        break;
      case 'h16':
        this.decls.push(`fn ld${i}(e: u32) -> f32 { return f32(b${i}[${j}]); }`);
        break;
      case 'f16':
        this.decls.push(`fn ld${i}(e: u32) -> f32 { let j = ${j}; return unpack2x16float(b${i}[j >> 1u])[j & 1u]; }`);
        break;
      case 'bf16':
        this.decls.push(`fn ld${i}(e: u32) -> f32 { let j = ${j}; let w = b${i}[j >> 1u]; return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (j & 1u) == 1u)); }`);
        break;
      default:
        this.decls.push(`fn ld${i}(e: u32) -> ${SCALAR[ref.storage]} { return b${i}[${j}]; }`);
    }
    return `ld${i}`;
  }

  /** A split weight: one binding per part, one load function choosing the part by element index. */
  private splitInput(ref: Ref, parts: NonNullable<Ref['parts']>): string {
    const first = this.bindings.length;
    if (ref.storage === 'h16') this.decl(ENABLE_F16);
    const read = (b: string, q: string): string => {
      switch (ref.storage) {
        case 'f16': return `unpack2x16float(${b}[${q} >> 1u])[${q} & 1u]`;
        case 'bf16': return `bitcast<f32>(select(${b}[${q} >> 1u] << 16u, ${b}[${q} >> 1u] & 0xffff0000u, (${q} & 1u) == 1u))`;
        case 'h16': return `f32(${b}[${q}])`;
        default: return `${b}[${q}]`;
      }
    };
    const arms = parts.bufs.map((buf, p) => {
      const i = this.bindings.length;
      const numel = Math.min(parts.elems, parts.total - p * parts.elems);
      this.bindings.push({ ref: { buf, offset: 0, numel, storage: ref.storage }, write: false });
      this.decls.push(`@group(0) @binding(${i}) var<storage, read> b${i}: array<${ARRAY[ref.storage]}>;`);
      const q = `(j - ${p * parts.elems}u)`;
      return p === parts.bufs.length - 1 ? `return ${read(`b${i}`, q)};` : `if (j < ${(p + 1) * parts.elems}u) { return ${read(`b${i}`, q)}; }`;
    });
    const j = ref.offset ? `${this.param(ref.offset)} + e` : 'e';
    this.decls.push(`fn ld${first}(e: u32) -> ${SCALAR[ref.storage]} { let j = ${j}; ${arms.join(' ')} }`);
    return `ld${first}`;
  }

  output(ref: Ref): string {
    if (ref.parts) throw new Error(`${this.name}: kernels do not write split weights.`);
    const i = this.bindings.length;
    if (ref.storage === 'f16' || ref.storage === 'bf16') throw new Error(`${this.name}: kernels do not write packed ${ref.storage} tensors.`);
    this.bindings.push({ ref, write: true });
    if (ref.storage === 'h16') { this.decl(ENABLE_F16); this.decl(TO_H16); }
    if (ref.storage === 'hb16') { this.decl(ENABLE_F16); this.decl(ROUND_BF16); this.decl(TO_HB16); this.decl(FROM_HB16); }
    if (ref.storage === 'b16r') this.decl(ROUND_BF16);
    this.decls.push(`@group(0) @binding(${i}) var<storage, read_write> b${i}: array<${ARRAY[ref.storage]}>;`);
    const j = ref.offset ? `${this.param(ref.offset)} + e` : 'e';
    if (ref.storage === 'f16r') this.decl(ROUND_F16);
    this.decls.push(`fn st${i}(e: u32, v: ${SCALAR[ref.storage]}) { b${i}[${j}] = ${storedValue(ref.storage)}; }`);
    return `st${i}`;
  }

  /** A tensor read and overwritten in place through one read_write binding: [load, store] function names. */
  inout(ref: Ref): [string, string] {
    const st = this.output(ref);
    const i = this.bindings.length - 1;
    const j = ref.offset ? `${this.param(ref.offset)} + e` : 'e';
    const v = ref.storage === 'h16' ? `f32(b${i}[${j}])` : ref.storage === 'hb16' ? `fromHB16(b${i}[${j}])` : `b${i}[${j}]`;
    this.decls.push(`fn ld${i}(e: u32) -> ${SCALAR[ref.storage]} { return ${v}; }`);
    return [`ld${i}`, st];
  }

  /** Extra module-scope code (helpers, workgroup arrays). */
  decl(code: string): void {
    if (!this.decls.includes(code)) this.decls.push(code);
  }

  source(body: string): string {
    // WGSL wants its `enable` directives before every declaration
    const first = this.decls.filter((d) => d.startsWith('enable '));
    const rest = this.decls.filter((d) => !d.startsWith('enable '));
    return `${[...first, ...rest].join('\n')}\n${body}\n`;
  }
}

/** Workgroup grid for `n` items of `wg` threads: x up to 65535, then y. */
export function grid(n: number, wg: number): { groups: [number, number, number]; x: number } {
  const total = Math.max(1, Math.ceil(n / wg));
  const x = Math.min(total, 65535);
  return { groups: [x, Math.ceil(total / x), 1], x };
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!;
  return s;
}

/**
 * WGSL statements that split the linear index `idx` over `shape` into `let <p>0..` coordinates.
 * Dimensions of size 1 get a constant 0.
 */
export function coords(idx: string, shape: readonly number[], p = 'c'): string {
  const st = stridesOf(shape);
  const lines: string[] = [];
  shape.forEach((d, k) => {
    if (d === 1) lines.push(`let ${p}${k} = 0u;`);
    else if (k === 0) lines.push(`let ${p}${k} = ${idx} / ${st[k]}u;`);
    else lines.push(`let ${p}${k} = (${idx} / ${st[k]}u) % ${d}u;`);
  });
  return lines.join(' ');
}

/** Σ coordinate·stride (+ offset) as a WGSL u32 expression, skipping zero strides. */
export function affine(strides: readonly number[], offset = 0, p = 'c'): string {
  const terms = strides.map((s, k) => (s === 0 ? '' : s === 1 ? `${p}${k}` : `${p}${k} * ${s}u`)).filter(Boolean);
  if (offset) terms.push(`${offset}u`);
  return terms.length ? terms.join(' + ') : '0u';
}
