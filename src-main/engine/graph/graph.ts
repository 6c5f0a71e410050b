/**
 * The tensor-graph IR: values (typed, symbolically shaped), nodes (one registered op each) and the
 * builder that creates both. Nodes are kept in creation order, which is a topological order: a
 * node's inputs always exist before it. The autodiff driver appends gradient nodes to the same graph.
 *
 *   const g = new GraphBuilder();
 *   const x = g.input('x', 'float32', ['B', 16]);
 *   const w = g.input('w', 'float32', [16, 4]);
 *   const y = g.relu(g.matmul(x, w));
 *   g.output('y', y);
 */
import { BYTES, type DType, type Dim, type Shape, isFloat, numel, shapeStr } from './types';
import { getOp, type Attrs } from './ops';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../onnx/pack';

/** Where a constant's bytes live: in memory, or in a file (e.g. a safetensors shard) referenced by offset. */
export type ConstData =
  | { kind: 'raw'; bytes: Uint8Array }
  | { kind: 'external'; location: string; offset: number; length: number;
    /** The file holds bfloat16 for this float32 value (GPU backend only: unpacked in the kernels' loads). */
    stored?: 'bfloat16' };

export class Value {
  /** Set for constants. `scalar` keeps the number of one-element constants for folding. */
  constData?: ConstData;
  scalar?: number;
  /** Nodes consuming this value (kept by the builder; lets the driver fuse and prune safely). */
  uses = 0;
  constructor(
    readonly id: number,
    readonly dtype: DType,
    readonly shape: readonly Dim[],
    /** Producing node; null for graph inputs and constants. */
    readonly node: Node | null,
    readonly index: number,
    /** Given name (inputs, named constants); generated names are assigned at lowering. */
    readonly name: string | null,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  get isConst(): boolean {
    return this.constData !== undefined;
  }
  toString(): string {
    return `${this.name ?? `%${this.id}`}:${this.dtype}${shapeStr(this.shape)}`;
  }
}

export class Node {
  outputs: Value[] = [];
  /** Key under which the builder shares this node (common subexpressions). */
  cseKey = '';
  constructor(
    readonly id: number,
    readonly op: string,
    readonly inputs: readonly (Value | null)[],
    readonly attrs: Attrs,
  ) {}
  toString(): string {
    return `node #${this.id} (${this.op})`;
  }
}

type Num = Value | number;

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly consts: Value[] = [];
  readonly outputs: { name: string; value: Value }[] = [];
  /**
   * Build the fused ops of graph/ops/fused.ts (flash attention, cross-entropy, norm backwards) instead of
   * their decompositions: set for the GPU backend's graphs; ONNX graphs keep the decomposed form.
   */
  fused = false;
  private nextId = 0;
  private scalarCache = new Map<string, Value>();
  private cse = new Map<string, Value[]>();

  // ---------- sources and sinks ----------

  input(name: string, dtype: DType, shape: Shape): Value {
    if (this.inputs.some((v) => v.name === name)) throw new Error(`Graph input '${name}' is declared twice.`);
    const v = new Value(this.nextId++, dtype, [...shape], null, 0, name);
    this.inputs.push(v);
    return v;
  }

  /** A named weight stored in the model (raw bytes) or referenced in an external file (no copy). */
  weight(name: string, dtype: DType, shape: number[], data: ConstData): Value {
    const n = numel(shape)!;
    const len = data.kind === 'raw' ? data.bytes.byteLength : data.length;
    const per = data.kind === 'external' && data.stored === 'bfloat16' ? 2 : BYTES[dtype];
    if (len !== n * per) {
      throw new Error(`Weight '${name}' ${dtype}${shapeStr(shape)} needs ${n * per} bytes, got ${len}.`);
    }
    const v = new Value(this.nextId++, dtype, [...shape], null, 0, name);
    v.constData = data;
    this.consts.push(v);
    return v;
  }

  /** An unnamed constant from numbers (small tensors: masks, tables, scalars). */
  constant(values: ArrayLike<number> | number, dtype: DType, shape: number[] = []): Value {
    const arr = typeof values === 'number' ? [values] : Array.from(values);
    const n = numel(shape)!;
    if (arr.length !== n) throw new Error(`constant: ${arr.length} values do not fill shape ${shapeStr(shape)}.`);
    const bytes = encodeNumbers(arr, dtype);
    const v = new Value(this.nextId++, dtype, [...shape], null, 0, null);
    v.constData = { kind: 'raw', bytes };
    if (n === 1) v.scalar = dtype === 'float32' ? Math.fround(arr[0]!) : arr[0]!;
    this.consts.push(v);
    return v;
  }

  /** A cached rank-0 constant. */
  scalar(x: number, dtype: DType): Value {
    const key = `${dtype}:${Object.is(x, -0) ? '-0' : x}`;
    let v = this.scalarCache.get(key);
    if (!v) {
      v = this.constant(x, dtype, []);
      this.scalarCache.set(key, v);
    }
    return v;
  }

  output(name: string, value: Value): Value {
    if (this.outputs.some((o) => o.name === name)) throw new Error(`Graph output '${name}' is declared twice.`);
    this.outputs.push({ name, value });
    return value;
  }

  // ---------- generic application ----------

  /** Applies a registered op: infers output types/shapes now, so shape errors surface at build time. */
  apply(op: string, inputs: readonly (Value | null)[], attrs: Attrs = {}): Value[] {
    const def = getOp(op);
    const folded = foldScalars(this, op, inputs, attrs);
    if (folded) return [folded];
    // Common subexpressions: the same op on the same inputs with the same attributes is built once
    // (rules often re-derive a transpose or a reshape the forward already has).
    const key = `${op}(${inputs.map((v) => (v ? v.id : '-')).join(',')})${JSON.stringify(attrs)}`;
    const seen = this.cse.get(key);
    if (seen) return seen;
    let infos;
    try {
      infos = def.infer(inputs, attrs);
    } catch (e) {
      const args = inputs.map((v) => (v ? v.toString() : '-')).join(', ');
      throw new Error(`${op}(${args}): ${(e as Error).message}`);
    }
    const node = new Node(this.nextId++, op, inputs, attrs);
    node.outputs = infos.map((t, i) => new Value(this.nextId++, t.dtype, t.shape, node, i, null));
    node.cseKey = key;
    for (const v of inputs) if (v) v.uses++;
    this.nodes.push(node);
    this.cse.set(key, node.outputs);
    return node.outputs;
  }

  /**
   * Removes nodes created at index >= `from` whose outputs nothing uses, except `keep`
   * (the autodiff driver calls this for intermediates its fusions made redundant).
   */
  prune(from: number, keep: readonly (Value | null)[]): number {
    const kept = new Set(keep.filter((v): v is Value => !!v).map((v) => v.id));
    for (const o of this.outputs) kept.add(o.value.id);
    let removed = 0;
    for (let i = this.nodes.length - 1; i >= from; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => o.uses > 0 || kept.has(o.id))) continue;
      for (const v of n.inputs) if (v) v.uses--;
      this.cse.delete(n.cseKey);
      this.nodes.splice(i, 1);
      removed++;
    }
    return removed;
  }

  private one(op: string, inputs: readonly (Value | null)[], attrs: Attrs = {}): Value {
    return this.apply(op, inputs, attrs)[0]!;
  }

  /** Numbers next to a tensor become scalar constants of the tensor's type. */
  private pair(a: Num, b: Num): [Value, Value] {
    if (typeof a === 'number' && typeof b === 'number') throw new Error('Binary op needs at least one tensor.');
    const va = typeof a === 'number' ? this.scalar(a, (b as Value).dtype) : a;
    const vb = typeof b === 'number' ? this.scalar(b, va.dtype) : b;
    return [va, vb];
  }

  // ---------- elementwise ----------
  add(a: Num, b: Num): Value { return this.one('Add', this.pair(a, b)); }
  sub(a: Num, b: Num): Value { return this.one('Sub', this.pair(a, b)); }
  mul(a: Num, b: Num): Value { return this.one('Mul', this.pair(a, b)); }
  div(a: Num, b: Num): Value { return this.one('Div', this.pair(a, b)); }
  max(a: Num, b: Num): Value { return this.one('Max', this.pair(a, b)); }
  min(a: Num, b: Num): Value { return this.one('Min', this.pair(a, b)); }
  neg(x: Value): Value { return this.one('Neg', [x]); }
  exp(x: Value): Value { return this.one('Exp', [x]); }
  log(x: Value): Value { return this.one('Log', [x]); }
  sqrt(x: Value): Value { return this.one('Sqrt', [x]); }
  /** x ** p with a constant exponent. */
  pow(x: Value, p: number): Value { return this.one('Pow', [x], { exponent: p }); }
  reciprocal(x: Value): Value { return this.one('Reciprocal', [x]); }
  tanh(x: Value): Value { return this.one('Tanh', [x]); }
  sigmoid(x: Value): Value { return this.one('Sigmoid', [x]); }
  /** log(1 + exp(x)), smooth everywhere (−log σ(z) = softplus(−z): the DPO/ORPO losses). */
  softplus(x: Value): Value { return this.one('Softplus', [x]); }
  erf(x: Value): Value { return this.one('Erf', [x]); }
  relu(x: Value): Value { return this.one('Relu', [x]); }
  abs(x: Value): Value { return this.one('Abs', [x]); }
  /** Gelu (opset 20): approximate 'none' (erf) or 'tanh' (GPT-2's gelu_new). */
  gelu(x: Value, approximate: 'none' | 'tanh' = 'none'): Value { return this.one('Gelu', [x], { approximate }); }
  /** SiLU / swish as a composite: x * sigmoid(x). */
  silu(x: Value): Value { return this.mul(x, this.sigmoid(x)); }
  identity(x: Value): Value { return this.one('Identity', [x]); }
  cast(x: Value, to: DType): Value { return x.dtype === to ? x : this.one('Cast', [x], { to }); }
  where(cond: Value, a: Num, b: Num): Value {
    const [va, vb] = this.pair(a, b);
    return this.one('Where', [cond, va, vb]);
  }
  equal(a: Num, b: Num): Value { return this.one('Equal', this.pair(a, b)); }
  less(a: Num, b: Num): Value { return this.one('Less', this.pair(a, b)); }
  greater(a: Num, b: Num): Value { return this.one('Greater', this.pair(a, b)); }
  greaterOrEqual(a: Num, b: Num): Value { return this.one('GreaterOrEqual', this.pair(a, b)); }
  not(x: Value): Value { return this.one('Not', [x]); }

  // ---------- linear algebra ----------
  matmul(a: Value, b: Value): Value { return this.one('MatMul', [a, b]); }
  /** alpha * A' B' + beta * C with A' = transA ? Aᵀ : A (2-D only). */
  gemm(a: Value, b: Value, c: Value | null = null,
    o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {}): Value {
    return this.one('Gemm', c ? [a, b, c] : [a, b], {
      transA: o.transA ? 1 : 0, transB: o.transB ? 1 : 0, alpha: o.alpha ?? 1, beta: o.beta ?? 1,
    });
  }

  // ---------- shape ----------
  /** Target dims: numbers, symbols (kept from the input at the same position) or one -1. */
  reshape(x: Value, shape: Shape): Value { return this.one('Reshape', [x], { shape: [...shape] }); }
  transpose(x: Value, perm?: number[]): Value {
    let p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
    let src = x;
    // Transpose of a Transpose is one Transpose (or none): backward rules transpose forward transposes
    if (x.node?.op === 'Transpose') {
      const inner = x.node.attrs.perm as readonly number[];
      p = p.map((i) => inner[i]!);
      src = x.node.inputs[0]!;
    }
    if (p.length === src.rank && p.every((v, i) => v === i)) return src;
    return this.one('Transpose', [src], { perm: p });
  }
  concat(xs: Value[], axis: number): Value {
    if (xs.length === 1) return xs[0]!;
    return this.one('Concat', xs, { axis });
  }
  split(x: Value, sizes: number[], axis = 0): Value[] { return this.apply('Split', [x], { axis, sizes }); }
  /** Static slice with step 1; ends clamp like ONNX. */
  slice(x: Value, starts: number[], ends: number[], axes?: number[]): Value {
    return this.one('Slice', [x], { starts, ends, axes: axes ?? starts.map((_, i) => i) });
  }
  squeeze(x: Value, axes: number[]): Value { return this.one('Squeeze', [x], { axes }); }
  unsqueeze(x: Value, axes: number[]): Value { return this.one('Unsqueeze', [x], { axes }); }
  /**
   * Broadcast to `shape`. Symbolic target dims the input lacks are read at run time from `like`,
   * whose shape must equal the target.
   */
  expand(x: Value, shape: Shape, like: Value | null = null): Value {
    return this.one('Expand', like ? [x, like] : [x], { shape: [...shape] });
  }
  /** Zeros with x's type and shape (a broadcast scalar: one node, no big constant). */
  zerosLike(x: Value): Value { return this.expand(this.scalar(0, x.dtype), x.shape, x); }
  trilu(x: Value, upper: boolean, k = 0): Value { return this.one('Trilu', [x], { upper: upper ? 1 : 0, k }); }

  // ---------- indexing ----------
  gather(data: Value, indices: Value, axis = 0): Value { return this.one('Gather', [data, indices], { axis }); }
  gatherElements(data: Value, indices: Value, axis: number): Value {
    return this.one('GatherElements', [data, indices], { axis });
  }
  /** data with `updates` added at `indices` along axis (duplicates accumulate). */
  scatterAdd(data: Value, indices: Value, updates: Value, axis: number): Value {
    return this.one('ScatterElements', [data, indices, updates], { axis, reduction: 'add' });
  }

  // ---------- reductions ----------
  reduceSum(x: Value, axes: number[], keepdims = true): Value { return this.reduce('ReduceSum', x, axes, keepdims); }
  reduceMean(x: Value, axes: number[], keepdims = true): Value { return this.reduce('ReduceMean', x, axes, keepdims); }
  reduceMax(x: Value, axes: number[], keepdims = true): Value { return this.reduce('ReduceMax', x, axes, keepdims); }
  reduceLogSumExp(x: Value, axes: number[], keepdims = true): Value {
    return this.reduce('ReduceLogSumExp', x, axes, keepdims);
  }
  reduceSumSquare(x: Value, axes: number[], keepdims = true): Value {
    return this.reduce('ReduceSumSquare', x, axes, keepdims);
  }
  private reduce(op: string, x: Value, axes: number[], keepdims: boolean): Value {
    return this.one(op, [x], { axes, keepdims: keepdims ? 1 : 0 });
  }

  // ---------- fused nn ops ----------
  softmax(x: Value, axis = -1): Value { return this.one('Softmax', [x], { axis }); }
  /** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) * scale (fused SimplifiedLayerNormalization). */
  rmsNorm(x: Value, scale: Value, epsilon = 1e-6): Value {
    return this.apply('SimplifiedLayerNormalization', [x, scale], { axis: -1, epsilon })[0]!;
  }
  /** LayerNorm over the last axis (GPT-2). */
  layerNorm(x: Value, scale: Value, bias: Value | null, epsilon = 1e-5): Value {
    return this.apply('LayerNormalization', bias ? [x, scale, bias] : [x, scale], { axis: -1, epsilon })[0]!;
  }

  /**
   * RoPE with the fused com.microsoft RotaryEmbedding (1 node forward, 1 backward):
   * x [B, heads, S, head_dim], positions int64 [B, S], cos/sin [max_pos, head_dim/2].
   * interleaved=false is HF's rotate_half convention.
   */
  rotary(x: Value, positions: Value, cos: Value, sin: Value, interleaved = false): Value {
    return this.one('RotaryEmbedding', [x, positions, cos, sin], { interleaved: interleaved ? 1 : 0 });
  }

  /** Node count by op, e.g. for reports. */
  countByOp(from = 0): Record<string, number> {
    const out: Record<string, number> = {};
    for (const n of this.nodes.slice(from)) out[n.op] = (out[n.op] ?? 0) + 1;
    return out;
  }
}

/** Numbers as little-endian bytes of the given type. */
export function encodeNumbers(arr: ArrayLike<number>, dtype: DType): Uint8Array {
  const n = arr.length;
  switch (dtype) {
    case 'float32': return u8(Float32Array.from(arr));
    case 'float64': return u8(Float64Array.from(arr));
    case 'float16': {
      const h = new Uint16Array(n);
      for (let i = 0; i < n; i++) h[i] = float32ToFloat16Bits(arr[i]!);
      return u8(h);
    }
    case 'int32': return u8(Int32Array.from(arr));
    case 'int64': {
      const b = new BigInt64Array(n);
      for (let i = 0; i < n; i++) b[i] = BigInt(arr[i]!);
      return u8(b);
    }
    case 'bool': return Uint8Array.from(arr, (x) => (x ? 1 : 0));
  }
}

function u8(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Folds arithmetic on one-element constants at build time (gradient seeds make many: d(mean)/dx = 1/N),
 * and drops multiplication by a scalar 1. Keeps node counts honest.
 */
function foldScalars(g: GraphBuilder, op: string, inputs: readonly (Value | null)[], attrs: Attrs): Value | null {
  const [a, b] = inputs;
  if (!a || !isFloat(a.dtype)) return null;
  if (op === 'Mul' && b) {
    if (b.scalar === 1 && b.rank <= a.rank) return a;
    if (a.scalar === 1 && a.rank <= b.rank && a.dtype === b.dtype) return b;
  }
  const fold = (x: number): Value => g.scalar(a.dtype === 'float32' ? Math.fround(x) : x, a.dtype);
  // Neg of a broadcast scalar constant (gradient seeds of means): broadcast the negated scalar instead
  const src = a.node?.op === 'Expand' ? a.node.inputs[0] : null;
  if (op === 'Neg' && src?.scalar !== undefined && src.rank === 0) {
    return g.expand(fold(-src.scalar), a.shape, a.node!.inputs[1] ?? null);
  }
  if ((op === 'Neg' || op === 'Transpose') && inputs.length === 1) {
    const vals = constValues(a);
    if (vals) {
      const shape = a.shape as number[];
      if (op === 'Neg') return g.constant(vals.map((x) => -x), a.dtype, shape);
      const perm = attrs.perm as readonly number[];
      return g.constant(permute(vals, shape, perm), a.dtype, perm.map((p) => shape[p]!));
    }
  }
  const sa = a.scalar;
  if (sa === undefined || a.rank !== 0) return null;
  if (op === 'Neg' && inputs.length === 1) return fold(-sa);
  if (!b || b.scalar === undefined || b.rank !== 0) return null;
  const sb = b.scalar;
  switch (op) {
    case 'Add': return fold(sa + sb);
    case 'Sub': return fold(sa - sb);
    case 'Mul': return fold(sa * sb);
    case 'Div': return fold(sa / sb);
    default: return null;
  }
}

/** Values of a small in-memory float constant (for build-time folding), else null. */
function constValues(v: Value): number[] | null {
  const d = v.constData;
  if (!d || d.kind !== 'raw' || !isFloat(v.dtype) || d.bytes.byteLength > 1 << 20) return null;
  const b = d.bytes;
  const copy = b.slice(); // aligned copy
  switch (v.dtype) {
    case 'float32': return Array.from(new Float32Array(copy.buffer));
    case 'float64': return Array.from(new Float64Array(copy.buffer));
    case 'float16': return Array.from(new Uint16Array(copy.buffer), float16BitsToFloat32);
    default: return null;
  }
}

/** Row-major transpose of `vals` with `shape` by `perm`. */
function permute(vals: number[], shape: number[], perm: readonly number[]): number[] {
  const r = shape.length;
  const outShape = perm.map((p) => shape[p]!);
  const inStride = new Array<number>(r).fill(1);
  for (let i = r - 2; i >= 0; i--) inStride[i] = inStride[i + 1]! * shape[i + 1]!;
  const out = new Array<number>(vals.length);
  const idx = new Array<number>(r).fill(0);
  for (let o = 0; o < vals.length; o++) {
    let src = 0;
    for (let k = 0; k < r; k++) src += idx[k]! * inStride[perm[k]!]!;
    out[o] = vals[src]!;
    for (let k = r - 1; k >= 0; k--) {
      if (++idx[k]! < outShape[k]!) break;
      idx[k] = 0;
    }
  }
  return out;
}
