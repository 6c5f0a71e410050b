/**
 * Elementwise kernels (unary, broadcasting binary, comparisons, Where, Cast, Pow, Gelu, Erf) and the
 * shape ops, which are the same kernel with another index map: Expand (broadcast strides), Transpose
 * (permuted strides), Slice/Split (offset strides, or a free view when the piece is contiguous), Pad,
 * Trilu, Concat (one strided copy per input). Reshape/Squeeze/Unsqueeze/Identity are always views.
 *
 * One generic "map" kernel: thread i owns output element i (or input element i for Concat's scatter),
 * splits i into coordinates, reads each input through its own strides and writes one expression.
 */
import { num, ints } from '../../../graph/ops/registry';
import { normAxis, type DType } from '../../../graph/types';
import { KernelBuilder, affine, halfType, roundHalf, coords, lit, scalarOf, stridesOf, type Ref, type Scalar } from '../wgsl';
import { broadcastStrides, dispatchPerElement, inShape, outShape, prod, type EmitCtx, type Emitter, type GemmEpilogue } from './context';


/** An input read at Σ c_k·strides_k + offset, or at a custom WGSL index expression. */
export interface MapInput { ref: Ref; strides: readonly number[]; offset?: number; index?: string }

/**
 * Where a fused kernel reads a tensor from: its buffer, or a WGSL function `(e: u32) -> f32` that computes
 * element e where it is loaded (a folded Transpose or elementwise chain: plan.ts), declared in `k` on demand.
 */
export type Source = Ref | ((k: KernelBuilder) => string);
const loadFn = (k: KernelBuilder, s: Source): string => (typeof s === 'function' ? s(k) : k.input(s));

/**
 * out[outMap(c)] = expr(in_k[inMap_k(c)]) for every coordinate c of `shape`.
 * `expr` gets the loaded values (WGSL expressions) and may use the coordinates c0..c{r-1}.
 */
export function mapKernel(c: EmitCtx, name: string, shape: readonly number[], inputs: MapInput[],
  expr: (v: string[]) => string, out: Ref, outMap?: { strides: readonly number[]; offset: number }, helpers: string[] = [],
  pre?: (v: string[]) => string, inout?: number): void {
  const k = new KernelBuilder(name);
  for (const h of helpers) k.decl(h);
  const n = prod(shape);
  const own = stridesOf(shape);
  const contiguous = (s: readonly number[], off = 0) => off === 0 && s.every((x, d) => x === own[d] || shape[d] === 1);
  // (inout: input `inout` is `out` itself, read and overwritten through one read_write binding)
  const io = inout === undefined ? null : k.inout(out);
  const lds = inputs.map((inp, j) => (j === inout ? io![0] : k.input(inp.ref)));
  const st = io ? io[1] : k.output(out);
  const vals = inputs.map((inp, j) => `${lds[j]}(${inp.index ?? (contiguous(inp.strides, inp.offset) ? 'i' : affine(inp.strides, inp.offset ?? 0))})`);
  const o = outMap && !contiguous(outMap.strides, outMap.offset) ? affine(outMap.strides, outMap.offset) : 'i';
  dispatchPerElement(c, k, n, `  ${coords('i', shape)}
  ${pre ? pre(vals) : ''}
  ${st}(${o}, ${expr(vals)});`);
}

// ---------- expressions ----------

const ERF_TAYLOR = Array.from({ length: 11 }, (_, n) => {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return ((n % 2 ? -1 : 1) * 2) / Math.sqrt(Math.PI) / (f * (2 * n + 1));
});
/** erf: Taylor series below |x| = 1 (error < 1e-8), Numerical Recipes' erfc (fractional error < 1.2e-7) above. */
const ERF_FN = `fn erf_(x: f32) -> f32 {
  let a = abs(x);
  if (a < 1.0) {
    let x2 = x * x;
    var s = ${lit(ERF_TAYLOR[10]!)};
${ERF_TAYLOR.slice(0, 10).reverse().map((cf) => `    s = s * x2 + ${lit(cf)};`).join('\n')}
    return x * s;
  }
  let t = 1.0 / (1.0 + 0.5 * a);
  let r = t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return sign(x) * (1.0 - r);
}`;
/** tanh with its argument clamped (tanh(±15) is ±1 in f32; some drivers overflow exp() beyond). */
const TANH_FN = 'fn tanh_(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }';

function powExpr(a: string, p: number): string {
  if (p === 1) return a;
  if (p === 2) return `(${a} * ${a})`;
  if (p === 3) return `(${a} * ${a} * ${a})`;
  if (p === 0.5) return `sqrt(${a})`;
  if (p === -0.5) return `inverseSqrt(${a})`;
  if (p === -1) return `(1.0 / ${a})`;
  if (p === 0) return '1.0';
  if (Number.isInteger(p)) {
    // pow() is undefined for x < 0 in WGSL: |x|^p with the sign of an odd power
    const m = `pow(abs(${a}), ${lit(p)})`;
    return p % 2 ? `(sign(${a}) * ${m})` : m;
  }
  return `pow(${a}, ${lit(p)})`;
}

/** Unary ops: expression of the loaded value and helper functions it needs. */
function unary(op: string, attrs: Record<string, unknown>): { e: (a: string) => string; helpers?: string[] } | null {
  switch (op) {
    case 'Neg': return { e: (a) => `(-${a})` };
    case 'Identity': return { e: (a) => a };
    case 'Exp': return { e: (a) => `exp(${a})` };
    case 'Log': return { e: (a) => `log(${a})` };
    case 'Sqrt': return { e: (a) => `sqrt(${a})` };
    case 'Reciprocal': return { e: (a) => `(1.0 / ${a})` };
    case 'Tanh': return { e: (a) => `tanh_(${a})`, helpers: [TANH_FN] };
    case 'Sigmoid': return { e: (a) => `(1.0 / (1.0 + exp(-${a})))` };
    // log(1 + eˣ) without overflow: max(x, 0) + log(1 + e^−|x|)
    case 'Softplus': return { e: (a) => `(max(${a}, 0.0) + log(1.0 + exp(-abs(${a}))))` };
    case 'Erf': return { e: (a) => `erf_(${a})`, helpers: [ERF_FN] };
    case 'Relu': return { e: (a) => `max(${a}, 0.0)` };
    case 'Abs': return { e: (a) => `abs(${a})` };
    case 'Pow': return { e: (a) => powExpr(a, attrs.exponent as number) };
    case 'Gelu':
      if (attrs.approximate === 'tanh') {
        return { e: (a) => `(0.5 * ${a} * (1.0 + tanh_(${lit(Math.sqrt(2 / Math.PI))} * (${a} + ${lit(0.044715)} * ${a} * ${a} * ${a}))))`, helpers: [TANH_FN] };
      }
      return { e: (a) => `(0.5 * ${a} * (1.0 + erf_(${a} * ${lit(Math.SQRT1_2)})))`, helpers: [ERF_FN] };
    default: return null;
  }
}

const BINARY: Record<string, (a: string, b: string) => string> = {
  Add: (a, b) => `(${a} + ${b})`,
  Sub: (a, b) => `(${a} - ${b})`,
  Mul: (a, b) => `(${a} * ${b})`,
  Div: (a, b) => `(${a} / ${b})`,
  Max: (a, b) => `max(${a}, ${b})`,
  Min: (a, b) => `min(${a}, ${b})`,
  Equal: (a, b) => `select(0u, 1u, ${a} == ${b})`,
  Less: (a, b) => `select(0u, 1u, ${a} < ${b})`,
  Greater: (a, b) => `select(0u, 1u, ${a} > ${b})`,
  GreaterOrEqual: (a, b) => `select(0u, 1u, ${a} >= ${b})`,
  LessOrEqual: (a, b) => `select(0u, 1u, ${a} <= ${b})`,
};

/** Converts a loaded value of scalar type `from` to IR type `to`. */
function castExpr(a: string, from: Scalar, to: DType): string {
  const t = scalarOf(to);
  if (to === 'bool') return from === 'u32' ? `select(0u, 1u, ${a} != 0u)` : from === 'f32' ? `select(0u, 1u, ${a} != 0.0)` : `select(0u, 1u, ${a} != 0i)`;
  if (t === from) return a;
  return `${t}(${a})`;
}

// ---------- emitters ----------

function elementwise(c: EmitCtx, expr: (v: string[]) => string, helpers: string[] = []): void {
  const shape = outShape(c);
  const inputs = c.node.inputs.map((_, i) => ({ ref: c.in(i), strides: broadcastStrides(inShape(c, i), shape) }));
  const over = overwrittenInput(c, shape);
  if (over < 0) return mapKernel(c, c.node.op, shape, inputs, expr, c.out(0), undefined, helpers);
  c.view(0, inputs[over]!.ref);
  mapKernel(c, c.node.op, shape, inputs, expr, inputs[over]!.ref, undefined, helpers, undefined, over);
}

/**
 * The input an elementwise kernel writes its result over (-1: none): one this node reads last (EmitCtx.lastUse:
 * nothing later reads it, alone in its buffer), of the result's shape and type (so element i is read and
 * written by thread i only). Saves the result's buffer where both would be live (the MLP backward's products).
 */
function overwrittenInput(c: EmitCtx, shape: readonly number[]): number {
  const y = c.node.outputs[0]!;
  return c.node.inputs.findIndex((x, i) => !!x && x.dtype === y.dtype && inShape(c, i).join() === shape.join() && c.lastUse?.(i) === true
    && c.in(i).storage !== 'f16' && c.in(i).storage !== 'bf16');
}

const alias: Emitter = (c) => c.view(0, c.in(0));

/** Offset of a slice region when it is one contiguous run of the input, else null. */
export function contiguousSlice(inS: readonly number[], starts: readonly number[], outS: readonly number[]): number | null {
  let last = -1;
  for (let d = 0; d < inS.length; d++) if (outS[d] !== inS[d]) last = d;
  for (let d = 0; d < last; d++) if (outS[d] !== 1) return null;
  const st = stridesOf(inS);
  return starts.reduce((o, s, d) => o + s * st[d]!, 0);
}

/** Per-axis start of a Slice (ONNX clamping, as in the op's shape inference). */
function sliceStarts(c: EmitCtx): number[] {
  const a = c.node.attrs;
  const s = inShape(c, 0);
  const starts = new Array<number>(s.length).fill(0);
  const st = ints(a, 'starts');
  ints(a, 'axes').forEach((ax0, k) => {
    const ax = normAxis(ax0, s.length, 'Slice');
    const d = s[ax]!;
    const v = st[k]!;
    starts[ax] = Math.min(Math.max(v < 0 ? v + d : v, 0), d);
  });
  return starts;
}

/** out = in[starts + c] as a view when contiguous, else a strided copy. */
function sliceTo(c: EmitCtx, i: number, starts: number[]): void {
  const inS = inShape(c, 0), oS = outShape(c, i);
  const src = c.in(0);
  const off = contiguousSlice(inS, starts, oS);
  if (off !== null) {
    c.view(i, { ...src, offset: src.offset + off, numel: prod(oS) });
    return;
  }
  const st = stridesOf(inS);
  mapKernel(c, 'Slice', oS, [{ ref: src, strides: st, offset: starts.reduce((o, s, d) => o + s * st[d]!, 0) }], (v) => v[0]!, c.out(i));
}

export const ELEMENTWISE: Record<string, Emitter> = {
  Reshape: alias,
  Squeeze: alias,
  Unsqueeze: alias,
  Identity: alias,
  Where: (c) => elementwise(c, ([cond, a, b]) => `select(${b}, ${a}, ${cond} != 0u)`),
  Not: (c) => elementwise(c, ([a]) => `(1u - ${a})`),
  Cast: (c) => {
    const from = c.node.inputs[0]!.dtype, to = c.node.outputs[0]!.dtype;
    const src = c.in(0);
    // float16 <-> float32 is free where the stored values are already what the output means
    // (bf16 compute: a bf16 weight read in place already holds the compute type's values)
    const bf16Weight = from === 'float32' && to === 'float16' && src.storage === 'bf16' && halfType() === 'bfloat16';
    if ((from === 'float16' && to === 'float32') || (from === 'int64' && to === 'int32') || (from === 'int32' && to === 'int64') || bf16Weight) {
      c.view(0, src);
      return;
    }
    elementwise(c, ([a]) => castExpr(a!, scalarOf(from), to));
  },
  Expand: (c) => {
    const shape = outShape(c);
    mapKernel(c, 'Expand', shape, [{ ref: c.in(0), strides: broadcastStrides(inShape(c, 0), shape) }], (v) => v[0]!, c.out(0));
  },
  Transpose: (c) => {
    const perm = ints(c.node.attrs, 'perm');
    const st = stridesOf(inShape(c, 0));
    mapKernel(c, 'Transpose', outShape(c), [{ ref: c.in(0), strides: perm.map((p) => st[p]!) }], (v) => v[0]!, c.out(0));
  },
  Slice: (c) => sliceTo(c, 0, sliceStarts(c)),
  Split: (c) => {
    const s = inShape(c, 0);
    const ax = normAxis(num(c.node.attrs, 'axis'), s.length, 'Split');
    let at = 0;
    ints(c.node.attrs, 'sizes').forEach((size, i) => {
      const starts = s.map((_, d) => (d === ax ? at : 0));
      at += size;
      if (c.used(i)) sliceTo(c, i, starts);
    });
  },
  Concat: (c) => {
    const oS = outShape(c);
    const ax = normAxis(num(c.node.attrs, 'axis'), oS.length, 'Concat');
    const ost = stridesOf(oS);
    const out = c.out(0);
    let at = 0;
    c.node.inputs.forEach((_, i) => {
      const s = inShape(c, i);
      const r = c.in(i);
      // a piece its producer already wrote into its slice (plan.ts: Concat placement) has nothing to copy
      const inPlace = r.buf === out.buf && r.offset === out.offset + at * ost[ax]! && contiguousSlice(oS, oS.map((_, d) => (d === ax ? at : 0)), s) !== null;
      if (prod(s) > 0 && !inPlace) {
        mapKernel(c, 'Concat', s, [{ ref: c.in(i), strides: stridesOf(s) }], (v) => v[0]!, out, { strides: ost, offset: at * ost[ax]! });
      }
      at += s[ax]!;
    });
  },
  Pad: (c) => {
    const s = inShape(c, 0), oS = outShape(c);
    const pads = ints(c.node.attrs, 'pads');
    const st = stridesOf(s);
    const inside = s.map((d, k) => `c${k} >= ${pads[k]}u && c${k} < ${pads[k]! + d}u`).join(' && ') || 'true';
    // clamped coordinates keep the (discarded) read in bounds
    const idx = s.map((d, k) => `min(c${k} - ${pads[k]}u, ${d - 1}u) * ${st[k]}u`).join(' + ') || '0u';
    const zero = scalarOf(c.node.inputs[0]!.dtype) === 'f32' ? '0.0' : scalarOf(c.node.inputs[0]!.dtype) === 'i32' ? '0i' : '0u';
    mapKernel(c, 'Pad', oS, [{ ref: c.in(0), strides: [], index: idx }], (v) => `select(${zero}, ${v[0]!}, ${inside})`, c.out(0));
  },
  Trilu: (c) => {
    const s = outShape(c);
    const r = s.length;
    const k = num(c.node.attrs, 'k');
    const upper = !!num(c.node.attrs, 'upper');
    // keep element (i, j) when j − i >= k (upper) or j − i <= k (lower)
    const keep = upper ? `i32(c${r - 1}) - i32(c${r - 2}) >= ${k}i` : `i32(c${r - 1}) - i32(c${r - 2}) <= ${k}i`;
    elementwise(c, ([a]) => `select(0.0, ${a}, ${keep})`);
  },
};

for (const op of ['Neg', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Tanh', 'Sigmoid', 'Softplus', 'Erf', 'Relu', 'Abs', 'Pow', 'Gelu']) {
  ELEMENTWISE[op] = (c) => {
    const u = unary(op, c.node.attrs as Record<string, unknown>)!;
    const t = scalarOf(c.node.inputs[0]!.dtype);
    if (t !== 'f32' && op !== 'Neg' && op !== 'Abs') throw new Error(`${op} on ${c.node.inputs[0]!.dtype} has no GPU kernel.`);
    elementwise(c, ([a]) => u.e(a!), u.helpers);
  };
}
for (const [op, f] of Object.entries(BINARY)) ELEMENTWISE[op] = (c) => elementwise(c, ([a, b]) => f(a!, b!));

// ---------- fusion of elementwise chains ----------

/** The expression of a fusible (pure elementwise, one output) node, or null. */
export function fusibleExpr(node: { op: string; attrs: Record<string, unknown>; inputs: readonly ({ dtype: DType } | null)[] }): { e: (v: string[]) => string; helpers: string[] } | null {
  if (node.op === 'Where') return { e: ([cond, a, b]) => `select(${b}, ${a}, ${cond} != 0u)`, helpers: [] };
  if (node.op === 'Not') return { e: ([a]) => `(1u - ${a})`, helpers: [] };
  const f = BINARY[node.op];
  if (f) return { e: ([a, b]) => f(a!, b!), helpers: [] };
  const u = unary(node.op, node.attrs);
  if (!u || node.op === 'Identity') return null;
  const t = scalarOf(node.inputs[0]!.dtype);
  if (t !== 'f32' && node.op !== 'Neg' && node.op !== 'Abs') return null;
  return { e: ([a]) => u.e(a!), helpers: u.helpers ?? [] };
}

type Val = NonNullable<EmitCtx['node']['inputs'][number]>;

/**
 * The expression of `root` with the fusible producers in `inlined` computed inside it: the tensors it reads
 * (leaves, broadcast to `shape`), `let` statements for the inlined producers, and the root's expression, with
 * `@L<j>@` for leaf j's loaded value and `@ACC@` for `acc` (a GEMM's result in its epilogue) if given.
 */
function fusedTree(rootNode: EmitCtx['node'], inlined: ReadonlySet<unknown>, refOf: (v: Val) => Source, shape: readonly number[], acc?: Val) {
  const leaves: { src: Source; strides: number[] }[] = [];
  const leafOf = new Map<unknown, number>();
  const helpers: string[] = [];
  const stmts: string[] = [];
  const walk = (node: EmitCtx['node']): string => {
    const f = fusibleExpr(node as never)!;
    helpers.push(...f.helpers);
    const args = node.inputs.map((x) => {
      const v = x as Val;
      if (v === acc) return '@ACC@';
      if (v.node && inlined.has(v.node)) {
        const e = walk(v.node);
        // (an f16 intermediate is rounded as its own kernel's store would: the same numbers fused or not)
        const r = roundHalf(); // (bf16 compute: roundBF16)
        if (v.dtype === 'float16') helpers.push(r.decl);
        stmts.push(`let fv${v.id} = ${v.dtype === 'float16' ? `${r.fn}(${e})` : e};`);
        return `fv${v.id}`; // (not f<id>: f16 and f32 are WGSL's type names)
      }
      let j = leafOf.get(v);
      if (j === undefined) {
        j = leaves.length;
        leafOf.set(v, j);
        leaves.push({ src: refOf(v), strides: broadcastStrides(v.shape as number[], shape) });
      }
      return `@L${j}@`;
    });
    return f.e(args);
  };
  const root = walk(rootNode);
  return { leaves, helpers: [...new Set(helpers)], stmts, root };
}

const fillLeaves = (s: string, vals: string[]) => s.replace(/@L(\d+)@/g, (_, j: string) => vals[Number(j)]!);

/** A fused chain: `root` with the producers in `inlined` computed inside the same kernel (one dispatch). */
export function fusedElementwise(c: EmitCtx, inlined: ReadonlySet<unknown>, refOf: (v: Val) => Source): void {
  const shape = outShape(c);
  const t = fusedTree(c.node, inlined, refOf, shape);
  const k = new KernelBuilder(`Fused(${c.node.op})`);
  for (const h of t.helpers) k.decl(h);
  const own = stridesOf(shape);
  const contiguous = (st: readonly number[]) => st.every((x, d) => x === own[d] || shape[d] === 1);
  const lds = t.leaves.map((l) => loadFn(k, l.src));
  const st = k.output(c.out(0));
  const vals = t.leaves.map((l, j) => `${lds[j]}(${contiguous(l.strides) ? 'i' : affine(l.strides)})`);
  dispatchPerElement(c, k, prod(shape), `  ${coords('i', shape)}
  ${t.stmts.map((x) => fillLeaves(x, vals)).join('\n  ')}
  ${st}(i, ${fillLeaves(t.root, vals)});`);
}

/** A WGSL function `name(e: u32) -> f32`: element e of the elementwise chain `root`, computed where it is loaded. */
export function chainLoad(root: EmitCtx['node'], inlined: ReadonlySet<unknown>, refOf: (v: Val) => Source, name: string): (k: KernelBuilder) => string {
  return (k) => {
    const shape = root.outputs[0]!.shape as number[];
    const t = fusedTree(root, inlined, refOf, shape);
    for (const h of t.helpers) k.decl(h);
    const own = stridesOf(shape);
    const lds = t.leaves.map((l) => loadFn(k, l.src));
    const vals = t.leaves.map((l, j) => `${lds[j]}(${l.strides.every((x, d) => x === own[d] || shape[d] === 1) ? 'e' : affine(l.strides)})`);
    k.decl(`fn ${name}(e: u32) -> f32 { ${coords('e', shape)} ${t.stmts.map((x) => fillLeaves(x, vals)).join(' ')} return ${fillLeaves(t.root, vals)}; }`);
    return name;
  };
}

/** A WGSL function `name(e: u32) -> f32`: element e of Transpose(src, perm) (output `shape`), read from `src` where it is loaded. */
export function transposeLoad(shape: readonly number[], srcShape: readonly number[], perm: readonly number[], src: Source, name: string): (k: KernelBuilder) => string {
  return (k) => {
    const ld = loadFn(k, src);
    const st = stridesOf(srcShape);
    k.decl(`fn ${name}(e: u32) -> f32 { ${coords('e', shape)} return ${ld}(${affine(perm.map((p) => st[p]!))}); }`);
    return name;
  };
}

/**
 * A GEMM epilogue that computes the elementwise chain `root` (with its `inlined` producers) over the GEMM's
 * result `acc` and stores the chain's output in `out`: the chain costs no dispatch and `acc` no buffer.
 * `acc` must have the chain's shape (no broadcast), so output element e of the GEMM is element e of the chain.
 * A 16-bit `acc` (f16/bf16 compute) is rounded to the compute type first, as the GEMM's store would round it,
 * and the chain's 16-bit intermediates as their kernels' stores would: the numbers of the unfused plan.
 */
export function gemmEpilogue(root: EmitCtx['node'], inlined: ReadonlySet<unknown>, refOf: (v: Val) => Source, acc: Val, out: () => Ref): GemmEpilogue {
  const shape = root.outputs[0]!.shape as number[];
  const t = fusedTree(root, inlined, refOf, shape, acc);
  const own = stridesOf(shape);
  const contiguous = (st: readonly number[]) => st.every((x, d) => x === own[d] || shape[d] === 1);
  // a 16-bit GEMM result is rounded to the compute type as its own store would round it (taken while the plan is made)
  const r = acc.dtype === 'float16' ? roundHalf() : null;
  return {
    name: `Fused(${root.op})`,
    store: (k) => {
      for (const h of t.helpers) k.decl(h);
      if (r) k.decl(r.decl);
      const lds = t.leaves.map((l) => loadFn(k, l.src));
      const st = k.output(out());
      return (idx, value) => {
        const vals = t.leaves.map((l, j) => `${lds[j]}(${contiguous(l.strides) ? 'ep_e' : affine(l.strides, 0, 'ep')})`);
        const sub = (x: string) => fillLeaves(x, vals).replace(/@ACC@/g, 'ep_acc');
        return `{ let ep_e = ${idx}; ${coords('ep_e', shape, 'ep')} let ep_acc = ${r ? `${r.fn}(${value})` : value}; ${t.stmts.map(sub).join(' ')} ${st}(ep_e, ${sub(t.root)}); }`;
      };
    },
  };
}
