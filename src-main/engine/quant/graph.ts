/**
 * NF4 weights inside IR graphs: a linear layer whose frozen weight is stored as NF4 codes and
 * dequantized in the graph right before its Gemm, in the forward AND again in the backward (the
 * gradient rule re-emits the dequantization), so no f32 copy of a base weight outlives one Gemm —
 * the f32 weight is a transient, the device keeps only ~4.13 bits per parameter.
 *
 * Two ops, registered with defineOp (ops.ts is untouched):
 *   Nf4Const  (source, nondiff): packed codes as an ONNX Constant node (uint8). The IR has no
 *             4/8-bit dtypes, so its IR value is typed 'int32' as a placeholder; only Nf4Gemm reads it.
 *             ORT turns Constant nodes into initializers at load.
 *   Nf4Gemm   y = x · W' (+ bias | + C), W' = W or Wᵀ (transB), W dequantized in the lowering; inputs
 *             [x, codes, absmax codes, scale2, offset, pair table, dynamic map, bias?, C?] (C [N, out]: a gradient
 *             sum the backward adds in the GEMM, OpDef.accumulate; never beside a bias):
 *
 *     codes uint8 [nb·32] (two 4-bit codes a byte) -DequantizeLinear(scale 1)-> f32 0..255 -Cast int32->
 *       Gather(pair table [256, 2]: byte -> its two NF4 values) -> [nb·32, 2]
 *     acodes uint8 [nb] -DequantizeLinear-> -Cast-> Gather(dynamic map [256]) · scale2 [nb2, 1] + offset
 *     W = reshape(values, [nb, 64]) · absmax [nb, 1] -> [rows, cols]   (f16 compute: Cast to f16, an f16 Gemm)
 *
 * Every op in that chain runs on the WebGPU EP (measured with reportPlacement + disableCpuFallback:
 * DequantizeLinear-21 uint8, Cast f32->int32, Gather int32). BitShift/BitwiseAnd would not; a uint4
 * Constant + DequantizeLinear + a 16-entry table also runs there but touches twice the elements.
 * Dimension letters: N tokens, rows × cols the stored weight ([out, in] for nn.Linear, [in, out] for
 * GPT-2 Conv1D), n = rows·cols, nb = ⌈n/64⌉ blocks, nb2 = ⌈nb/256⌉ second-level blocks.
 */
import { defineOp, getOp, type LowerCtx } from '../graph/ops';
import type { GraphBuilder, Node, Value } from '../graph/graph';
import type { OnnxDataType, OnnxModel, OnnxTensorData } from '../onnx/spec';
import { ABSMAX_BLOCK, NF4_BLOCK, NF4_VALUES, dynamicMap, type Nf4Tensor } from './nf4';
import type { CachedNf4, CachedTensor } from '../weights/cache';

interface ConstPayload { type: OnnxDataType; dims: number[]; data: OnnxTensorData; name: string }

/**
 * Where code bytes go instead of the model itself: a .onnx protobuf must stay under 2 GB, so large
 * models write their codes to a file inside the model folder (quant/store.ts) and reference it.
 */
export interface Nf4ByteStore {
  put(bytes: Uint8Array): { location: string; offset: number; length: number };
}
/** Bytes behind each Nf4Const node (lives as long as the graph's nodes). */
const payloads = new WeakMap<Node, ConstPayload>();

const INT32 = 6; // ONNX TensorProto.INT32
const FLOAT16 = 10; // ONNX TensorProto.FLOAT16
const FLOAT32 = 1; // ONNX TensorProto.FLOAT

function registerOnce(): void {
  try {
    getOp('Nf4Gemm');
    return;
  } catch { /* not yet registered */ }
  defineOp({
    name: 'Nf4Const',
    nondiff: true,
    infer: (_x, a) => [{ dtype: 'int32', shape: [a.count as number] }],
    lower: (c) => {
      const p = payloads.get(c.node);
      if (!p) throw new Error(`Nf4Const ${String(c.node.attrs.key)} has no data: build it with nf4Const().`);
      // (a Constant may carry external data: ORT turns it into an initializer read from the file)
      c.emit('Constant', [], [c.out(0)], { value: { type: 'tensor', value: { name: p.name, type: p.type, dims: p.dims, data: p.data } } });
    },
  });
  defineOp({
    name: 'Nf4Gemm',
    infer: (x, a) => {
      const v = x[0];
      // f16 compute: x (and the bias) in f16, the dequantized weight rounded to f16, y in f16
      if (!v || v.rank !== 2 || (v.dtype !== 'float32' && v.dtype !== 'float16')) throw new Error(`Nf4Gemm needs a 2-D float32 or float16 input, got ${v ? v.toString() : 'none'}`);
      const rows = a.rows as number, cols = a.cols as number;
      const [k, out] = a.transB ? [cols, rows] : [rows, cols];
      if (v.shape[1] !== k) throw new Error(`Nf4Gemm: input has ${v.shape[1]} features, the weight [${rows}, ${cols}] takes ${k}`);
      const y = { dtype: v.dtype, shape: [v.shape[0]!, out] };
      // input 8, C: a full [N, out] tensor added to the result (a gradient sum: accumulate below); no bias beside it
      const cc = x[8];
      if (cc) {
        if (x[7]) throw new Error('Nf4Gemm takes a bias or a C input, not both.');
        if (cc.dtype !== y.dtype || cc.rank !== 2 || cc.shape[0] !== y.shape[0] || cc.shape[1] !== y.shape[1]) {
          throw new Error(`Nf4Gemm: C must be ${y.dtype}[${y.shape.join(', ')}] like its result, got ${cc.toString()}`);
        }
      }
      return [y];
    },
    lower: lowerNf4Gemm,
    grad: (c) => {
      const gy = c.gy[0];
      const none: (Value | null)[] = c.x.map(() => null);
      if (!gy) return none;
      // y = x·W' (+b) (+C)  =>  dx = gy · W'ᵀ: the same op with transB flipped, dequantizing W again; dC = gy
      const a = c.node.attrs;
      const [, ...q] = c.x as Value[];
      const dx = c.needs(0) ? c.g.apply('Nf4Gemm', [gy, ...q.slice(0, 6)], { ...a, transB: a.transB ? 0 : 1 })[0]! : null;
      return [dx, ...none.slice(1, 8), ...(c.x.length > 8 ? [c.needs(8) ? gy : null] : [])];
    },
    // a bias-free Nf4Gemm takes a gradient sum as its C (QLoRA's dx of q/k/v and gate/up: one GEMM chain, no Adds)
    accumulate: {
      can: (n) => n.inputs.length === 7,
      with: (g, n, sum) => g.apply('Nf4Gemm', [...n.inputs, null, sum], n.attrs)[0]!,
    },
  });
}

function lowerNf4Gemm(c: LowerCtx): void {
  const a = c.node.attrs;
  const rows = a.rows as number, cols = a.cols as number, nb = a.nb as number, nb2 = a.nb2 as number;
  const n = rows * cols;
  const one = c.scalar(1, 'float32');
  const t = (h: string) => c.tmp(h);
  const emit1 = (op: string, inputs: string[], hint: string, attrs?: Parameters<LowerCtx['emit']>[3]): string => {
    const o = t(hint);
    c.emit(op, inputs, [o], attrs);
    return o;
  };
  // The unpack scale (1) is computed from x so this chain cannot run before x exists: ORT's
  // execution order would otherwise start every constant-only dequantization at step start and keep
  // all f32 weights alive at once (measured: +88 MB on a 23M-parameter model). 0·x₀₀ + 1 = 1.
  let x0 = emit1('Slice', [c.in(0), c.ints([0, 0]), c.ints([1, 1])], 'nf4_x0'); // [1, 1]
  if (c.node.inputs[0]!.dtype === 'float16') x0 = emit1('Cast', [x0], 'nf4_x0f', { to: { type: 'int', value: FLOAT32 } });
  const gate = emit1('Reshape', [emit1('Add', [emit1('Mul', [x0, c.scalar(0, 'float32')], 'nf4_x0z'), one], 'nf4_x0o'), c.ints([])], 'nf4_one');
  // code bytes [nb·32] -> value pairs [nb·32, 2] from the 256-entry pair table (byte b holds elements
  // 2i (low nibble) and 2i+1 (high nibble)): half the elements of unpacking nibble by nibble
  const cf = emit1('DequantizeLinear', [c.in(1), gate], 'nf4_cf');
  const ci = emit1('Cast', [cf], 'nf4_ci', { to: { type: 'int', value: INT32 } });
  const vals = emit1('Gather', [c.in(5), ci], 'nf4_v');
  // absmax [nb, 1] = dyn[acode] · scale2 + offset
  const af = emit1('DequantizeLinear', [c.in(2), one], 'nf4_af');
  const ai = emit1('Cast', [af], 'nf4_ai', { to: { type: 'int', value: INT32 } });
  let av = emit1('Gather', [c.in(6), ai], 'nf4_av'); // [nb]
  // [nb2, L] rows of one scale2 each: L = 256, or nb when there is one short block
  const L = nb2 === 1 ? nb : ABSMAX_BLOCK;
  // zeros made at run time (Expand of a scalar) so padding costs no storage
  if (nb2 * L !== nb) av = emit1('Concat', [av, emit1('Expand', [c.scalar(0, 'float32'), c.ints([nb2 * L - nb])], 'nf4_pad')], 'nf4_avp', { axis: { type: 'int', value: 0 } });
  const a2 = emit1('Reshape', [av, c.ints([nb2, L])], 'nf4_a2');
  const a3 = emit1('Add', [emit1('Mul', [a2, c.in(3)], 'nf4_a3'), c.in(4)], 'nf4_a4');
  let abs = emit1('Reshape', [a3, c.ints([nb2 * L])], 'nf4_a5');
  if (nb2 * L !== nb) abs = emit1('Slice', [abs, c.ints([0]), c.ints([nb])], 'nf4_a6');
  abs = emit1('Reshape', [abs, c.ints([nb, 1])], 'nf4_abs');
  // W [rows, cols]
  const w1 = emit1('Mul', [emit1('Reshape', [vals, c.ints([nb, NF4_BLOCK])], 'nf4_w1'), abs], 'nf4_w2');
  let w = emit1('Reshape', [w1, c.ints([nb * NF4_BLOCK])], 'nf4_w3');
  if (nb * NF4_BLOCK !== n) w = emit1('Slice', [w, c.ints([0]), c.ints([n])], 'nf4_w4');
  w = emit1('Reshape', [w, c.ints([rows, cols])], 'nf4_w');
  // f16 compute: W rounded to f16 once (bitsandbytes dequantizes into the compute type), the Gemm in f16
  if (c.node.inputs[0]!.dtype === 'float16') w = emit1('Cast', [w], 'nf4_wh', { to: { type: 'int', value: FLOAT16 } });
  // C: the bias [out] (broadcast), or a full [N, out] tensor added to the result (input 8)
  const cIn = c.node.inputs[7] ? c.in(7) : c.node.inputs[8] ? c.in(8) : null;
  c.emit('Gemm', cIn ? [c.in(0), w, cIn] : [c.in(0), w], [c.out(0)], { transB: { type: 'int', value: a.transB ? 1 : 0 } });
}

/** A packed uint8 constant (code bytes or absmax codes) carried by an Nf4Const node. */
function nf4Const(g: GraphBuilder, name: string, type: 'uint8', count: number, bytes: Uint8Array | CachedTensor, store?: Nf4ByteStore): Value {
  registerOnce();
  const v = g.apply('Nf4Const', [], { key: name, count })[0]!;
  const data: OnnxTensorData = !(bytes instanceof Uint8Array) ? { kind: 'external', ...bytes }
    : store ? { kind: 'external', ...store.put(bytes) } : { kind: 'raw', bytes };
  payloads.set(v.node!, { type, dims: [count], data, name });
  return v;
}

/** The bytes an Nf4Const node carries (for backends that upload them as they are: the GPU backend). */
export function nf4ConstData(node: Node): { data: OnnxTensorData; bytes: number } {
  const p = payloads.get(node);
  if (!p) throw new Error(`Nf4Const ${String(node.attrs.key)} has no data: build it with nf4Const().`);
  return { data: p.data, bytes: p.dims[0]! };
}

/** The values a quantized weight occupies in a graph (no code bytes: those are in the graph's constants). */
export interface Nf4Weight {
  name: string;
  rows: number;
  cols: number;
  nb: number;
  nb2: number;
  codes: Value;
  absCodes: Value;
  scale2: Value;
  offset: Value;
}

const tables = new WeakMap<GraphBuilder, { nf4: Value; dyn: Value }>();

/** [256, 2]: byte b -> [NF4[b & 15], NF4[b >> 4]]. */
function pairTable(): number[] {
  const t: number[] = [];
  for (let b = 0; b < 256; b++) t.push(NF4_VALUES[b & 15]!, NF4_VALUES[b >> 4]!);
  return t;
}

/**
 * Places a quantized [rows, cols] weight in `g` (initializers named `<name>.nf4_*`): codes from the weight
 * cache (CachedNf4, external), or from `q` itself (in `store` if given, else inside the model).
 */
export function placeNf4(g: GraphBuilder, name: string, q: Nf4Tensor | CachedNf4, store?: Nf4ByteStore): Nf4Weight {
  if (q.shape.length !== 2) throw new Error(`NF4 weight ${name} must be 2-D, got [${q.shape.join(', ')}].`);
  const [rows, cols] = q.shape as [number, number];
  return {
    name, rows, cols, nb: q.nb, nb2: q.nb2,
    codes: nf4Const(g, `${name}.nf4_codes`, 'uint8', (q.nb * NF4_BLOCK) / 2, q.codes, store),
    absCodes: nf4Const(g, `${name}.nf4_absmax`, 'uint8', q.nb, q.absCodes, store),
    scale2: g.weight(`${name}.nf4_scale2`, 'float32', [q.nb2, 1], { kind: 'raw', bytes: new Uint8Array(q.scale2.buffer, q.scale2.byteOffset, q.scale2.byteLength) }),
    offset: g.weight(`${name}.nf4_offset`, 'float32', [], { kind: 'raw', bytes: new Uint8Array(Float32Array.of(q.offset).buffer) }),
  };
}

/**
 * y [N, out] = x [N, in] · W' + bias (+ C), W' = Wᵀ when `transB` (nn.Linear [out, in]) else W (Conv1D [in, out]);
 * C [N, out] (optional, never with a bias) is added to the result in the GEMM (the backward's gradient sums).
 */
export function nf4Gemm(g: GraphBuilder, x: Value, w: Nf4Weight, bias: Value | null, transB: boolean, c: Value | null = null): Value {
  registerOnce();
  let t = tables.get(g);
  if (!t) tables.set(g, (t = { nf4: g.constant(pairTable(), 'float32', [256, 2]), dyn: g.constant(dynamicMap(), 'float32', [256]) }));
  const inputs: (Value | null)[] = [x, w.codes, w.absCodes, w.scale2, w.offset, t.nf4, t.dyn];
  if (bias || c) inputs.push(bias);
  if (c) inputs.push(c);
  return g.apply('Nf4Gemm', inputs, { rows: w.rows, cols: w.cols, nb: w.nb, nb2: w.nb2, transB: transB ? 1 : 0 })[0]!;
}

/**
 * Bytes of NF4 base-weight storage in a lowered model (Constant codes + scale2/offset initializers),
 * and how many parameters they stand for: bits per parameter = 8 · bytes / params.
 */
export function nf4Storage(model: OnnxModel): { bytes: number; params: number } {
  let bytes = 0, params = 0;
  for (const n of model.graph.nodes) {
    const v = n.attributes?.value;
    if (n.op !== 'Constant' || v?.type !== 'tensor') continue;
    if (v.value.name.endsWith('.nf4_codes')) params += 2 * v.value.dims[0]!; // two codes per byte
    if (v.value.name.endsWith('.nf4_codes') || v.value.name.endsWith('.nf4_absmax')) bytes += v.value.data.kind === 'raw' ? v.value.data.bytes.byteLength : v.value.data.length;
  }
  for (const i of model.graph.initializers) {
    if (i.name.endsWith('.nf4_scale2') || i.name.endsWith('.nf4_offset')) bytes += i.data.kind === 'raw' ? i.data.bytes.byteLength : i.data.length;
  }
  return { bytes, params };
}
