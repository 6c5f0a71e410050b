/**
 * The op registry: every IR op is defined in ONE block with its shape/dtype inference, its ONNX
 * lowering and its gradient rule side by side (the builder method in graph.ts is a one-line wrapper).
 *
 * Gradient rules are written in IR ops through the builder `g`. Vocabulary inside a rule:
 *   x[i]  = the node's inputs      y[i]  = its outputs
 *   gy[i] = gradient of output i (null = symbolic zero)    needs(i) = does anyone want input i's gradient
 * A rule returns one entry per input: a Value (in the OUTPUT's broadcast shape is fine: the driver
 * un-broadcasts), a scatter-add contribution (sparse, fused into the accumulated sum), or null.
 * Ops marked `nondiff` stop gradients (comparisons, indices); any other op without a rule throws.
 */
import type { OnnxAttribute } from '../onnx/spec';
import type { GraphBuilder, Node, Value } from './graph';
import { divProd, prodOf, prodToDim } from './dims';
import { type DType, type Dim, broadcastShapes, isFloat, isInt, normAxis, shapeStr } from './types';

export type AttrValue = number | string | readonly number[] | readonly Dim[];
export type Attrs = Readonly<Record<string, AttrValue>>;
export interface TypeInfo { dtype: DType; shape: Dim[] }

/** A gradient given as "zeros with `updates` added at `indices` along axis": fused by the driver. */
export interface ScatterAddGrad { kind: 'scatterAdd'; indices: Value; updates: Value; axis: number }
export type Grad = Value | ScatterAddGrad | null;

export interface GradCtx {
  g: GraphBuilder;
  node: Node;
  x: readonly (Value | null)[];
  y: readonly Value[];
  gy: readonly (Value | null)[];
  needs(i: number): boolean;
}

export interface LowerCtx {
  node: Node;
  /** ONNX name of input i ('' when absent). */
  in(i: number): string;
  /** ONNX name of output i ('' when it is optional and unused). */
  out(i: number): string;
  /** A 1-D int64 initializer holding `values` (shared between nodes). */
  ints(values: readonly number[]): string;
  /** A rank-0 initializer of the given type. */
  scalar(value: number, dtype: DType): string;
  tmp(hint: string): string;
  emit(op: string, inputs: string[], outputs: string[], attrs?: Record<string, OnnxAttribute>, domain?: string): void;
}

export interface OpDef {
  name: string;
  infer(x: readonly (Value | null)[], a: Attrs): TypeInfo[];
  lower(c: LowerCtx): void;
  grad?: (c: GradCtx) => Grad[];
  /** Outputs carry no gradient (comparisons, index producers). */
  nondiff?: boolean;
  /** Outputs after the first may be left unnamed when nothing uses them. */
  optionalOutputs?: boolean;
}

const REGISTRY = new Map<string, OpDef>();

function def(d: OpDef): void {
  if (REGISTRY.has(d.name)) throw new Error(`Op ${d.name} registered twice.`);
  REGISTRY.set(d.name, d);
}

/** Registers an op from outside this file (model-specific fused ops, tests). Same contract as below. */
export const defineOp = def;

export function getOp(name: string): OpDef {
  const d = REGISTRY.get(name);
  if (!d) throw new Error(`Unknown IR op '${name}'. Registered: ${[...REGISTRY.keys()].join(', ')}.`);
  return d;
}

export function registeredOps(): readonly OpDef[] {
  return [...REGISTRY.values()];
}

// ---------------------------------------------------------------- helpers

const num = (a: Attrs, k: string): number => a[k] as number;
const ints = (a: Attrs, k: string): number[] => [...(a[k] as readonly number[])];
const A = {
  i: (value: number): OnnxAttribute => ({ type: 'int', value }),
  f: (value: number): OnnxAttribute => ({ type: 'float', value }),
  s: (value: string): OnnxAttribute => ({ type: 'string', value }),
  is: (value: number[]): OnnxAttribute => ({ type: 'ints', value }),
};

function need(x: readonly (Value | null)[], n: number): Value[] {
  const got = x.filter((v) => v).length;
  if (got < n) throw new Error(`expected ${n} inputs, got ${got}`);
  return x as Value[];
}

function floatIn(v: Value): void {
  if (!isFloat(v.dtype)) throw new Error(`expected a float tensor, got ${v.dtype}`);
}

function sameType(vs: Value[]): DType {
  const t = vs[0]!.dtype;
  for (const v of vs) if (v.dtype !== t) throw new Error(`input types differ: ${vs.map((u) => u.dtype).join(' vs ')}`);
  return t;
}

/** Plain 1:1 lowering: same inputs and outputs, attributes mapped by `attrs`. */
function plain(op: string, attrs?: (a: Attrs) => Record<string, OnnxAttribute>, domain?: string) {
  return (c: LowerCtx): void => {
    const n = c.node;
    c.emit(op, n.inputs.map((_, i) => c.in(i)), n.outputs.map((_, i) => c.out(i)), attrs?.(n.attrs), domain);
  };
}

function defUnary(name: string, grad: (c: GradCtx, x: Value, y: Value, gy: Value) => Grad, floatOnly = true): void {
  def({
    name,
    infer: (x) => {
      const [v] = need(x, 1);
      if (floatOnly) floatIn(v!);
      return [{ dtype: v!.dtype, shape: [...v!.shape] }];
    },
    lower: plain(name),
    grad: (c) => [c.gy[0] ? grad(c, c.x[0]!, c.y[0]!, c.gy[0]) : null],
  });
}

function defBinary(name: string, grad: ((c: GradCtx, a: Value, b: Value, gy: Value) => [Grad, Grad]) | null): void {
  def({
    name,
    infer: (x) => {
      const [a, b] = need(x, 2);
      return [{ dtype: sameType([a!, b!]), shape: broadcastShapes(a!.shape, b!.shape, name) }];
    },
    lower: plain(name),
    ...(grad ? { grad: (c: GradCtx) => (c.gy[0] ? grad(c, c.x[0]!, c.x[1]!, c.gy[0]) : [null, null]) } : { nondiff: true }),
  });
}

function defCompare(name: string, arity = 2): void {
  def({
    name,
    infer: (x) => {
      const v = need(x, arity);
      if (arity === 1 && v[0]!.dtype !== 'bool') throw new Error(`expected bool, got ${v[0]!.dtype}`);
      const shape = arity === 2 ? broadcastShapes(v[0]!.shape, v[1]!.shape, name) : [...v[0]!.shape];
      if (arity === 2) sameType(v);
      return [{ dtype: 'bool', shape }];
    },
    lower: plain(name),
    nondiff: true,
  });
}

const swapLast = (v: Value): number[] => {
  const p = v.shape.map((_, i) => i);
  [p[p.length - 2], p[p.length - 1]] = [p[p.length - 1]!, p[p.length - 2]!];
  return p;
};

/** Reduction axes normalised and sorted; [] means all axes. */
function reduceAxes(v: Value, a: Attrs): number[] {
  const ax = ints(a, 'axes');
  const all = ax.length === 0 ? v.shape.map((_, i) => i) : ax.map((i) => normAxis(i, v.rank, 'reduce'));
  return [...new Set(all)].sort((p, q) => p - q);
}

/** Brings a reduced gradient/value back to rank of the input (keepdims=0 -> Unsqueeze). */
function keep(c: GradCtx, v: Value): Value {
  const x = c.x[0]!;
  if (num(c.node.attrs, 'keepdims') || v.rank === 0) return v;
  return c.g.unsqueeze(v, reduceAxes(x, c.node.attrs));
}

function defReduce(name: string, grad: (c: GradCtx, x: Value, yk: () => Value, gyk: Value) => Grad): void {
  def({
    name,
    infer: (x, a) => {
      const [v] = need(x, 1);
      const axes = reduceAxes(v!, a);
      const kd = num(a, 'keepdims');
      const shape: Dim[] = [];
      v!.shape.forEach((d, i) => {
        if (!axes.includes(i)) shape.push(d);
        else if (kd) shape.push(1);
      });
      return [{ dtype: v!.dtype, shape }];
    },
    lower: (c) => {
      const axes = reduceAxes(c.node.inputs[0]!, c.node.attrs);
      c.emit(name, [c.in(0), c.ints(axes)], [c.out(0)], { keepdims: A.i(num(c.node.attrs, 'keepdims')) });
    },
    grad: (c) => (c.gy[0] ? [grad(c, c.x[0]!, () => keep(c, c.y[0]!), keep(c, c.gy[0]))] : [null]),
  });
}

/** Count of elements reduced over, which must be static. */
function reducedCount(x: Value, a: Attrs): number {
  let n = 1;
  for (const i of reduceAxes(x, a)) {
    const d = x.shape[i]!;
    if (typeof d !== 'number') throw new Error(`ReduceMean gradient needs a fixed size on axis ${i}, got '${d}'.`);
    n *= d;
  }
  return n;
}

/** Right-aligned shape for an ONNX shape input (Expand): 1 where x already has the dim, else the size. */
function expandShapeInput(c: LowerCtx, x: Value, target: readonly Dim[], like: Value | null): string {
  const off = target.length - x.rank;
  const dims: number[] = [];
  let needRuntime = false;
  target.forEach((d, i) => {
    const xd = i - off >= 0 ? x.shape[i - off] : 1;
    if (typeof d === 'number') dims.push(d);
    else if (xd === d) dims.push(1);
    else needRuntime = true;
  });
  if (!needRuntime) return c.ints(dims);
  if (!like || like.rank !== target.length || !like.shape.every((d, i) => d === target[i])) {
    throw new Error(`Expand to ${shapeStr(target)} needs the symbolic sizes at run time: pass a tensor of that shape as 'like'.`);
  }
  const s = c.tmp('shape');
  c.emit('Shape', [c.in(1)], [s]);
  return s;
}

// ---------------------------------------------------------------- elementwise

defBinary('Add', (_c, _a, _b, gy) => [gy, gy]);
defBinary('Sub', (c, _a, _b, gy) => [gy, c.needs(1) ? c.g.neg(gy) : null]);
defBinary('Mul', (c, a, b, gy) => [c.needs(0) ? c.g.mul(gy, b) : null, c.needs(1) ? c.g.mul(gy, a) : null]);
defBinary('Div', (c, _a, b, gy) => {
  // y = a / b:  da = gy / b,  db = -da * y
  const da = c.g.div(gy, b);
  return [da, c.needs(1) ? c.g.neg(c.g.mul(da, c.y[0]!)) : null];
});
// Ties (a == b) send the gradient to one side; inputs in checks are kept apart.
defBinary('Max', (c, a, b, gy) => {
  const bWins = c.g.less(a, b);
  return [c.needs(0) ? c.g.where(bWins, 0, gy) : null, c.needs(1) ? c.g.where(bWins, gy, 0) : null];
});
defBinary('Min', (c, a, b, gy) => {
  const bWins = c.g.greater(a, b);
  return [c.needs(0) ? c.g.where(bWins, 0, gy) : null, c.needs(1) ? c.g.where(bWins, gy, 0) : null];
});

defUnary('Neg', (c, _x, _y, gy) => c.g.neg(gy), false);
defUnary('Identity', (_c, _x, _y, gy) => gy, false);
defUnary('Exp', (c, _x, y, gy) => c.g.mul(gy, y));
defUnary('Log', (c, x, _y, gy) => c.g.div(gy, x));
defUnary('Sqrt', (c, _x, y, gy) => c.g.div(gy, c.g.mul(y, 2))); // d sqrt(x) = 1 / (2 sqrt(x))
defUnary('Reciprocal', (c, _x, y, gy) => c.g.neg(c.g.mul(gy, c.g.mul(y, y)))); // d(1/x) = -1/x²
defUnary('Tanh', (c, _x, y, gy) => c.g.mul(gy, c.g.sub(1, c.g.mul(y, y))));
defUnary('Sigmoid', (c, _x, y, gy) => c.g.mul(gy, c.g.mul(y, c.g.sub(1, y))));
defUnary('Erf', (c, x, _y, gy) => {
  // d erf(x) = 2/sqrt(pi) * exp(-x²)
  const e = c.g.exp(c.g.mul(x, c.g.neg(x)));
  return c.g.mul(c.g.mul(gy, 2 / Math.sqrt(Math.PI)), e);
});
defUnary('Relu', (c, x, _y, gy) => c.g.where(c.g.greater(x, 0), gy, 0));
defUnary('Abs', (c, x, _y, gy) => c.g.where(c.g.less(x, 0), c.g.neg(gy), gy));

def({
  name: 'Pow', // x ** exponent, exponent a build-time constant
  infer: (x) => {
    const [v] = need(x, 1);
    floatIn(v!);
    return [{ dtype: v!.dtype, shape: [...v!.shape] }];
  },
  lower: (c) => c.emit('Pow', [c.in(0), c.scalar(num(c.node.attrs, 'exponent'), c.node.inputs[0]!.dtype)], [c.out(0)]),
  grad: (c) => {
    const [x] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return [null];
    const p = num(c.node.attrs, 'exponent');
    if (p === 0) return [null];
    // d x^p = p x^(p-1)
    const dp = p === 1 ? null : p === 2 ? x! : c.g.pow(x!, p - 1);
    return [dp ? c.g.mul(c.g.mul(gy, p), dp) : c.g.mul(gy, p)];
  },
});

def({
  name: 'Gelu', // opset 20; approximate 'none' (erf) or 'tanh'
  infer: (x) => {
    const [v] = need(x, 1);
    floatIn(v!);
    return [{ dtype: v!.dtype, shape: [...v!.shape] }];
  },
  lower: plain('Gelu', (a) => ({ approximate: A.s(a.approximate as string) })),
  grad: (c) => {
    const { g } = c;
    const x = c.x[0]!;
    const gy = c.gy[0];
    if (!gy) return [null];
    if (c.node.attrs.approximate === 'tanh') {
      // y = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x³),  k = sqrt(2/pi)
      // dy = 0.5 (1 + t) + 0.5 x (1 - t²) k (1 + 3·0.044715 x²)
      const k = Math.sqrt(2 / Math.PI);
      const x2 = g.mul(x, x);
      const t = g.tanh(g.mul(g.mul(x, g.add(g.mul(x2, 0.044715), 1)), k));
      const du = g.mul(g.add(g.mul(x2, 3 * 0.044715 * k), k), g.mul(x, 0.5));
      const d = g.add(g.mul(g.add(t, 1), 0.5), g.mul(du, g.sub(1, g.mul(t, t))));
      return [g.mul(gy, d)];
    }
    // y = x Φ(x):  dy = Φ(x) + x φ(x),  Φ = 0.5 (1 + erf(x/√2)),  φ = exp(-x²/2)/√(2π)
    const cdf = g.add(g.mul(g.erf(g.mul(x, Math.SQRT1_2)), 0.5), 0.5);
    const pdf = g.exp(g.mul(g.mul(x, x), -0.5));
    const d = g.add(cdf, g.mul(g.mul(x, 1 / Math.sqrt(2 * Math.PI)), pdf));
    return [g.mul(gy, d)];
  },
});

def({
  name: 'Cast',
  infer: (x, a) => [{ dtype: a.to as DType, shape: [...need(x, 1)[0]!.shape] }],
  lower: (c) => c.emit('Cast', [c.in(0)], [c.out(0)], { to: A.i(ONNX_TYPE_CODE[c.node.attrs.to as DType]) }),
  grad: (c) => {
    const x = c.x[0]!;
    return [c.gy[0] && isFloat(x.dtype) && isFloat(c.y[0]!.dtype) ? c.g.cast(c.gy[0], x.dtype) : null];
  },
});

const ONNX_TYPE_CODE: Record<DType, number> = {
  float32: 1, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11,
};

def({
  name: 'Where', // cond ? a : b
  infer: (x) => {
    const [cond, a, b] = need(x, 3);
    if (cond!.dtype !== 'bool') throw new Error(`condition must be bool, got ${cond!.dtype}`);
    const shape = broadcastShapes(broadcastShapes(cond!.shape, a!.shape, 'Where'), b!.shape, 'Where');
    return [{ dtype: sameType([a!, b!]), shape }];
  },
  lower: plain('Where'),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return [null, null, null];
    const cond = c.x[0]!;
    return [null, c.needs(1) ? c.g.where(cond, gy, 0) : null, c.needs(2) ? c.g.where(cond, 0, gy) : null];
  },
});

defCompare('Equal');
defCompare('Less');
defCompare('Greater');
defCompare('Not', 1);

// ---------------------------------------------------------------- linear algebra

def({
  name: 'MatMul', // [..., M, K] @ [..., K, N] -> [..., M, N], batch dims broadcast
  infer: (x) => {
    const [a, b] = need(x, 2);
    floatIn(a!);
    sameType([a!, b!]);
    if (a!.rank < 2 || b!.rank < 2) throw new Error('MatMul needs rank >= 2 on both sides (reshape vectors first).');
    const k1 = a!.shape[a!.rank - 1], k2 = b!.shape[b!.rank - 2];
    if (k1 !== k2) throw new Error(`inner dims differ: ${k1} vs ${k2}`);
    const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2), 'MatMul batch');
    return [{ dtype: a!.dtype, shape: [...batch, a!.shape[a!.rank - 2]!, b!.shape[b!.rank - 1]!] }];
  },
  lower: plain('MatMul'),
  grad: (c) => {
    const { g } = c;
    const [a, b] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return [null, null];
    if (a!.rank === 2 && b!.rank === 2) {
      // y = a b:  da = gy bᵀ,  db = aᵀ gy  (Gemm flags instead of Transpose nodes)
      return [
        c.needs(0) ? g.gemm(gy, b!, null, { transB: true }) : null,
        c.needs(1) ? g.gemm(a!, gy, null, { transA: true }) : null,
      ];
    }
    const da = c.needs(0) ? g.matmul(gy, g.transpose(b!, swapLast(b!))) : null;
    let db: Value | null = null;
    if (c.needs(1)) {
      if (b!.rank === 2) {
        // shared 2-D weight: fold the batch into rows, one Gemm: [M', K]ᵀ [M', N]
        const K = a!.shape[a!.rank - 1]!, N = gy.shape[gy.rank - 1]!;
        db = g.gemm(g.reshape(a!, [-1, K]), g.reshape(gy, [-1, N]), null, { transA: true });
      } else {
        db = g.matmul(g.transpose(a!, swapLast(a!)), gy); // driver sums broadcast batch dims
      }
    }
    return [da, db];
  },
});

def({
  name: 'Gemm', // alpha A' B' + beta C, A' = transA ? Aᵀ : A
  infer: (x, at) => {
    const [a, b] = need(x, 2);
    const cc = x[2] ?? null;
    floatIn(a!);
    sameType(cc ? [a!, b!, cc] : [a!, b!]);
    if (a!.rank !== 2 || b!.rank !== 2) throw new Error('Gemm needs 2-D A and B.');
    const [m, k1] = num(at, 'transA') ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const [k2, n] = num(at, 'transB') ? [b!.shape[1]!, b!.shape[0]!] : [b!.shape[0]!, b!.shape[1]!];
    if (k1 !== k2) throw new Error(`inner dims differ: ${k1} vs ${k2}`);
    if (cc) broadcastShapes([m, n], cc.shape, 'Gemm C');
    return [{ dtype: a!.dtype, shape: [m, n] }];
  },
  lower: plain('Gemm', (a) => ({
    transA: A.i(num(a, 'transA')), transB: A.i(num(a, 'transB')), alpha: A.f(num(a, 'alpha')), beta: A.f(num(a, 'beta')),
  })),
  grad: (c) => {
    const { g } = c;
    const [a, b] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return c.x.map(() => null);
    const tA = !!num(c.node.attrs, 'transA'), tB = !!num(c.node.attrs, 'transB');
    const alpha = num(c.node.attrs, 'alpha'), beta = num(c.node.attrs, 'beta');
    // Y = A' B':  dA' = gY B'ᵀ,  dB' = A'ᵀ gY; then transpose back through the flags.
    const da = !c.needs(0) ? null : tA
      ? g.gemm(b!, gy, null, { transA: tB, transB: true, alpha }) // dA = B' gYᵀ
      : g.gemm(gy, b!, null, { transB: !tB, alpha }); // dA = gY B'ᵀ
    const db = !c.needs(1) ? null : tB
      ? g.gemm(gy, a!, null, { transA: true, transB: tA, alpha }) // dB = gYᵀ A'
      : g.gemm(a!, gy, null, { transA: !tA, alpha }); // dB = A'ᵀ gY
    if (c.x.length < 3) return [da, db];
    const dc = c.needs(2) ? (beta === 1 ? gy : g.mul(gy, Math.fround(beta))) : null; // ONNX float attribute
    return [da, db, dc];
  },
});

// ---------------------------------------------------------------- shape ops

def({
  name: 'Reshape', // attrs.shape: numbers, symbols, or one -1; optional input 1 = 'like' for run-time sizes
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const target = [...(a.shape as readonly Dim[])];
    const total = prodOf(v.shape);
    const holes = target.filter((d) => d === -1).length;
    if (holes > 1) throw new Error('at most one -1 in a Reshape target');
    const known = prodOf(target.filter((d) => d !== -1));
    if (holes === 1) {
      const rest = divProd(total, known);
      if (!rest) throw new Error(`cannot reshape ${shapeStr(v.shape)} to ${shapeStr(target)}`);
      target[target.indexOf(-1)] = prodToDim(rest);
    } else {
      const ok = divProd(total, known);
      if (!ok || ok.num !== 1 || ok.syms.length) {
        throw new Error(`cannot reshape ${shapeStr(v.shape)} (${prodToDim(total)} elements) to ${shapeStr(target)}`);
      }
    }
    return [{ dtype: v.dtype, shape: target }];
  },
  lower: (c) => {
    const x = c.node.inputs[0]!;
    const spec = c.node.attrs.shape as readonly Dim[];
    const out = c.node.outputs[0]!.shape;
    const dims: number[] = [];
    let unresolved = 0;
    spec.forEach((d, i) => {
      if (typeof d === 'number') dims.push(d);
      else if (x.shape[i] === d) dims.push(0); // copy from the input
      else { dims.push(-1); unresolved++; }
    });
    if (unresolved + spec.filter((d) => d === -1).length <= 1) {
      c.emit('Reshape', [c.in(0), c.ints(dims)], [c.out(0)]);
      return;
    }
    const like = c.node.inputs[1];
    if (!like || like.rank !== out.length || !like.shape.every((d, i) => d === out[i])) {
      throw new Error(`Reshape to ${shapeStr(out)} needs symbolic sizes at run time: pass a tensor of that shape as 'like'.`);
    }
    const s = c.tmp('shape');
    c.emit('Shape', [c.in(1)], [s]);
    c.emit('Reshape', [c.in(0), s], [c.out(0)]);
  },
  grad: (c) => {
    const x = c.x[0]!;
    const gy = c.gy[0];
    return c.x.map((_, i) => (i === 0 && gy ? reshapeTo(c.g, gy, x) : null));
  },
});

/** Reshape v to the shape of `like` (using it for run-time sizes when symbolic). */
export function reshapeTo(g: GraphBuilder, v: Value, like: Value): Value {
  if (v.shape.length === like.shape.length && v.shape.every((d, i) => d === like.shape[i])) return v;
  const symbolic = like.shape.some((d) => typeof d !== 'number');
  return g.apply('Reshape', symbolic ? [v, like] : [v], { shape: [...like.shape] })[0]!;
}

def({
  name: 'Transpose',
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const perm = ints(a, 'perm');
    if (perm.length !== v.rank || [...perm].sort().some((p, i) => p !== i)) {
      throw new Error(`perm ${shapeStr(perm)} is not a permutation of rank ${v.rank}`);
    }
    return [{ dtype: v.dtype, shape: perm.map((p) => v.shape[p]!) }];
  },
  lower: plain('Transpose', (a) => ({ perm: A.is(ints(a, 'perm')) })),
  grad: (c) => {
    const perm = ints(c.node.attrs, 'perm');
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [c.gy[0] ? c.g.transpose(c.gy[0], inv) : null];
  },
});

def({
  name: 'Concat',
  infer: (x, a) => {
    const vs = need(x, 1);
    const t = sameType(vs);
    const r = vs[0]!.rank;
    const ax = normAxis(num(a, 'axis'), r, 'Concat');
    const shape = [...vs[0]!.shape];
    const parts = vs.map((v) => {
      if (v.rank !== r) throw new Error('inputs differ in rank');
      v.shape.forEach((d, i) => {
        if (i !== ax && d !== shape[i]) throw new Error(`dim ${i} differs: ${d} vs ${shape[i]}`);
      });
      return v.shape[ax]!;
    });
    shape[ax] = parts.every((d) => typeof d === 'number') ? (parts as number[]).reduce((p, q) => p + q, 0) : parts.join('+');
    return [{ dtype: t, shape }];
  },
  lower: plain('Concat', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return c.x.map(() => null);
    const ax = normAxis(num(c.node.attrs, 'axis'), gy.rank, 'Concat');
    const sizes = c.x.map((v) => v!.shape[ax]!);
    if (!sizes.every((d): d is number => typeof d === 'number')) throw new Error('Concat gradient needs fixed sizes on the concat axis.');
    return c.g.split(gy, sizes, ax);
  },
});

def({
  name: 'Split', // attrs.sizes (fixed), attrs.axis
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const ax = normAxis(num(a, 'axis'), v.rank, 'Split');
    const sizes = ints(a, 'sizes');
    const total = sizes.reduce((p, q) => p + q, 0);
    if (typeof v.shape[ax] === 'number' && v.shape[ax] !== total) {
      throw new Error(`sizes ${shapeStr(sizes)} sum to ${total}, axis ${ax} has ${v.shape[ax]}`);
    }
    return sizes.map((s) => ({ dtype: v.dtype, shape: v.shape.map((d, i) => (i === ax ? s : d)) }));
  },
  lower: (c) => {
    const n = c.node;
    c.emit('Split', [c.in(0), c.ints(ints(n.attrs, 'sizes'))], n.outputs.map((_, i) => c.out(i)), { axis: A.i(num(n.attrs, 'axis')) });
  },
  grad: (c) => {
    if (c.gy.every((v) => !v)) return [null];
    // Unused pieces contribute zeros of their own shape.
    const parts = c.gy.map((v, i) => v ?? c.g.zerosLike(c.y[i]!));
    return [c.g.concat(parts, num(c.node.attrs, 'axis'))];
  },
});

/** Static Slice output dim; ends clamp like ONNX. */
function sliceDim(d: Dim, s: number, e: number, what: string): { start: number; end: number; len: number } {
  if (typeof d !== 'number') {
    if (s >= 0 && e >= s && e < 2 ** 31 - 1) return { start: s, end: e, len: e - s };
    throw new Error(`${what}: slicing a symbolic dim '${d}' needs 0 <= start <= end`);
  }
  const clamp = (i: number): number => Math.min(Math.max(i < 0 ? i + d : i, 0), d);
  const start = clamp(s), end = clamp(e);
  return { start, end, len: Math.max(end - start, 0) };
}

def({
  name: 'Slice', // attrs starts, ends, axes (step 1)
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const shape = [...v.shape];
    const st = ints(a, 'starts'), en = ints(a, 'ends');
    ints(a, 'axes').forEach((ax0, k) => {
      const ax = normAxis(ax0, v.rank, 'Slice');
      shape[ax] = sliceDim(v.shape[ax]!, st[k]!, en[k]!, 'Slice').len;
    });
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => {
    const a = c.node.attrs;
    c.emit('Slice', [c.in(0), c.ints(ints(a, 'starts')), c.ints(ints(a, 'ends')), c.ints(ints(a, 'axes'))], [c.out(0)]);
  },
  grad: (c) => {
    const gy = c.gy[0];
    const x = c.x[0]!;
    if (!gy) return [null];
    // zero-pad the slice back to the input's extent
    const pads = new Array<number>(2 * x.rank).fill(0);
    const st = ints(c.node.attrs, 'starts'), en = ints(c.node.attrs, 'ends');
    ints(c.node.attrs, 'axes').forEach((ax0, k) => {
      const ax = normAxis(ax0, x.rank, 'Slice');
      const d = x.shape[ax];
      if (typeof d !== 'number') throw new Error(`Slice gradient needs a fixed size on axis ${ax}, got '${d}'.`);
      const { start, end } = sliceDim(d, st[k]!, en[k]!, 'Slice');
      pads[ax] = start;
      pads[x.rank + ax] = d - end;
    });
    return [c.g.apply('Pad', [gy], { pads })[0]!];
  },
});

def({
  name: 'Pad', // constant zero padding; attrs.pads = [begin_0.., end_0..]
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const pads = ints(a, 'pads');
    if (pads.length !== 2 * v.rank) throw new Error(`pads needs ${2 * v.rank} entries, got ${pads.length}`);
    const shape = v.shape.map((d, i) => {
      if (pads[i] === 0 && pads[v.rank + i] === 0) return d;
      if (typeof d !== 'number') throw new Error(`padding symbolic dim '${d}'`);
      return d + pads[i]! + pads[v.rank + i]!;
    });
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => c.emit('Pad', [c.in(0), c.ints(ints(c.node.attrs, 'pads'))], [c.out(0)], { mode: A.s('constant') }),
  grad: (c) => {
    const gy = c.gy[0];
    const x = c.x[0]!;
    if (!gy) return [null];
    const pads = ints(c.node.attrs, 'pads');
    const axes = x.shape.map((_, i) => i).filter((i) => pads[i] !== 0 || pads[x.rank + i] !== 0);
    const starts = axes.map((i) => pads[i]!);
    const ends = axes.map((i) => pads[i]! + (x.shape[i] as number));
    return [c.g.slice(gy, starts, ends, axes)];
  },
});

def({
  name: 'Squeeze',
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const axes = ints(a, 'axes').map((i) => normAxis(i, v.rank, 'Squeeze'));
    for (const i of axes) if (v.shape[i] !== 1) throw new Error(`axis ${i} has size ${v.shape[i]}, not 1`);
    return [{ dtype: v.dtype, shape: v.shape.filter((_, i) => !axes.includes(i)) }];
  },
  lower: (c) => c.emit('Squeeze', [c.in(0), c.ints(ints(c.node.attrs, 'axes'))], [c.out(0)]),
  grad: (c) => [c.gy[0] ? reshapeTo(c.g, c.gy[0], c.x[0]!) : null],
});

def({
  name: 'Unsqueeze',
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const r = v.rank + ints(a, 'axes').length;
    const axes = ints(a, 'axes').map((i) => normAxis(i, r, 'Unsqueeze'));
    const shape: Dim[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) shape.push(axes.includes(i) ? 1 : v.shape[k++]!);
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => c.emit('Unsqueeze', [c.in(0), c.ints(ints(c.node.attrs, 'axes'))], [c.out(0)]),
  grad: (c) => [c.gy[0] ? c.g.squeeze(c.gy[0], ints(c.node.attrs, 'axes')) : null],
});

def({
  name: 'Expand', // broadcast to attrs.shape; optional input 1 ('like') supplies symbolic sizes at run time
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const target = a.shape as readonly Dim[];
    const shape = broadcastShapes(v.shape, target, 'Expand');
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => {
    const n = c.node;
    const s = expandShapeInput(c, n.inputs[0]!, n.attrs.shape as readonly Dim[], n.inputs[1] ?? null);
    c.emit('Expand', [c.in(0), s], [c.out(0)]);
  },
  grad: (c) => c.x.map((_, i) => (i === 0 ? c.gy[0] ?? null : null)), // the driver sums over broadcast axes
});

def({
  name: 'Trilu', // keeps the upper (upper=1) or lower triangle of the last two dims, diagonal offset k
  infer: (x) => {
    const v = need(x, 1)[0]!;
    if (v.rank < 2) throw new Error('Trilu needs rank >= 2');
    return [{ dtype: v.dtype, shape: [...v.shape] }];
  },
  lower: (c) => c.emit('Trilu', [c.in(0), c.scalar(num(c.node.attrs, 'k'), 'int64')], [c.out(0)], {
    upper: A.i(num(c.node.attrs, 'upper')),
  }),
  grad: (c) => [c.gy[0] ? c.g.trilu(c.gy[0], !!num(c.node.attrs, 'upper'), num(c.node.attrs, 'k')) : null],
});

// ---------------------------------------------------------------- indexing

def({
  name: 'Gather', // data[..., indices, ...] along axis (embedding lookup with axis 0)
  infer: (x, a) => {
    const [data, idx] = need(x, 2);
    if (!isInt(idx!.dtype)) throw new Error(`indices must be int32/int64, got ${idx!.dtype}`);
    const ax = normAxis(num(a, 'axis'), data!.rank, 'Gather');
    return [{ dtype: data!.dtype, shape: [...data!.shape.slice(0, ax), ...idx!.shape, ...data!.shape.slice(ax + 1)] }];
  },
  lower: plain('Gather', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const { g } = c;
    const [data, idx] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy || !c.needs(0)) return [null, null];
    if (normAxis(num(c.node.attrs, 'axis'), data!.rank, 'Gather') !== 0) {
      throw new Error(`Gather gradient is implemented for axis 0 only (${c.node}).`);
    }
    // rows of gy scatter-added into zeros [V, ...rest]: indices [N] -> [N, ...rest]
    const rest = data!.shape.slice(1);
    const flatIdx = g.reshape(idx!, [-1, ...rest.map(() => 1)]);
    const upd = g.reshape(gy, [-1, ...rest]);
    const idxE = g.expand(flatIdx, upd.shape, upd);
    return [{ kind: 'scatterAdd', indices: idxE, updates: upd, axis: 0 }, null];
  },
});

def({
  name: 'GatherElements',
  infer: (x, a) => {
    const [data, idx] = need(x, 2);
    if (!isInt(idx!.dtype)) throw new Error(`indices must be int32/int64, got ${idx!.dtype}`);
    if (idx!.rank !== data!.rank) throw new Error('indices and data must have the same rank');
    normAxis(num(a, 'axis'), data!.rank, 'GatherElements');
    return [{ dtype: data!.dtype, shape: [...idx!.shape] }];
  },
  lower: plain('GatherElements', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy || !c.needs(0)) return [null, null];
    return [{ kind: 'scatterAdd', indices: c.x[1]!, updates: gy, axis: num(c.node.attrs, 'axis') }, null];
  },
});

def({
  name: 'ScatterElements', // reduction 'add': data + updates placed at indices along axis
  infer: (x, a) => {
    const [data, idx, upd] = need(x, 3);
    if (!isInt(idx!.dtype)) throw new Error(`indices must be int32/int64, got ${idx!.dtype}`);
    sameType([data!, upd!]);
    if (a.reduction !== 'add') throw new Error(`only reduction 'add' is supported, got '${a.reduction}'`);
    normAxis(num(a, 'axis'), data!.rank, 'ScatterElements');
    return [{ dtype: data!.dtype, shape: [...data!.shape] }];
  },
  lower: plain('ScatterElements', (a) => ({ axis: A.i(num(a, 'axis')), reduction: A.s('add') })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return [null, null, null];
    return [gy, null, c.needs(2) ? c.g.gatherElements(gy, c.x[1]!, num(c.node.attrs, 'axis')) : null];
  },
});

// ---------------------------------------------------------------- reductions

defReduce('ReduceSum', (c, x, _yk, gyk) => c.g.expand(gyk, x.shape, x));
defReduce('ReduceMean', (c, x, _yk, gyk) => c.g.expand(c.g.mul(gyk, 1 / reducedCount(x, c.node.attrs)), x.shape, x));
defReduce('ReduceMax', (c, x, yk, gyk) => c.g.where(c.g.equal(x, yk()), gyk, 0)); // ties: each max gets gy
defReduce('ReduceLogSumExp', (c, x, yk, gyk) => c.g.mul(c.g.exp(c.g.sub(x, yk())), gyk)); // softmax · gy
defReduce('ReduceSumSquare', (c, x, _yk, gyk) => c.g.mul(x, c.g.mul(gyk, 2)));

// ---------------------------------------------------------------- fused nn ops

def({
  name: 'Softmax',
  infer: (x) => {
    const v = need(x, 1)[0]!;
    floatIn(v);
    return [{ dtype: v.dtype, shape: [...v.shape] }];
  },
  lower: plain('Softmax', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return [null];
    const y = c.y[0]!;
    // dx = y ⊙ (gy − Σ gy⊙y)
    const ax = normAxis(num(c.node.attrs, 'axis'), y.rank, 'Softmax');
    return [c.g.mul(y, c.g.sub(gy, c.g.reduceSum(c.g.mul(gy, y), [ax], true)))];
  },
});

/** The norm ops save their statistics in float32 (stash_type 1; the CPU EP has no other). */
const statType = (_t: DType): DType => 'float32';

function normInfer(x: readonly (Value | null)[], a: Attrs, nIn: number, nStats: number): TypeInfo[] {
  const v = need(x, nIn);
  floatIn(v[0]!);
  sameType(v.filter((u) => u));
  if (normAxis(num(a, 'axis'), v[0]!.rank, 'norm') !== v[0]!.rank - 1) throw new Error('only the last axis is supported');
  const last = v[0]!.shape[v[0]!.rank - 1];
  for (const p of v.slice(1)) {
    if (p && (p.rank !== 1 || p.shape[0] !== last)) throw new Error(`scale/bias must be [${last}], got ${shapeStr(p.shape)}`);
  }
  const stat = { dtype: statType(v[0]!.dtype), shape: [...v[0]!.shape.slice(0, -1), 1] };
  return [{ dtype: v[0]!.dtype, shape: [...v[0]!.shape] }, ...new Array<TypeInfo>(nStats).fill(stat)];
}

/**
 * The norm statistics [..., 1] in the input's type for the gradient rules.
 * LayerNormalization: its saved Mean/InvStdDev outputs (float32; cast for float16), except for
 * float64 (gradient checks) where a float32 round trip would hide errors: recomputed there.
 * SimplifiedLayerNormalization: always recomputed (4 nodes) because the WebGPU EP (ORT 1.30) writes
 * the row mean, not 1/rms, into its optional second output; the CPU EP is right.
 */
function normStats(c: GradCtx, centered: boolean): { mu: Value | null; r: Value } {
  const x = c.x[0]!;
  const eps = num(c.node.attrs, 'epsilon');
  const { g } = c;
  if (centered && x.dtype !== 'float64') {
    return { mu: g.cast(c.y[1]!, x.dtype), r: g.cast(c.y[2]!, x.dtype) };
  }
  const mu = centered ? g.reduceMean(x, [-1], true) : null;
  const xc = mu ? g.sub(x, mu) : x;
  return { mu, r: g.pow(g.add(g.reduceMean(g.mul(xc, xc), [-1], true), eps), -0.5) };
}

def({
  name: 'SimplifiedLayerNormalization', // RMSNorm: y = x · r · scale, r = 1/sqrt(mean(x²) + eps); outputs y, (r)
  optionalOutputs: true,
  infer: (x, a) => normInfer(x, a, 2, 1),
  lower: (c) => c.emit('SimplifiedLayerNormalization', [c.in(0), c.in(1)], [c.out(0), c.out(1)], {
    axis: A.i(-1), epsilon: A.f(num(c.node.attrs, 'epsilon')),
  }),
  grad: (c) => {
    const { g } = c;
    const [x, s] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return [null, null];
    const { r } = normStats(c, false); // [..., 1]
    const xh = g.mul(x!, r); // x̂
    const ds = c.needs(1) ? g.mul(gy, xh) : null; // summed over rows by the driver
    let dx: Value | null = null;
    if (c.needs(0)) {
      // dx = r (gx̂ − x̂ · mean(gx̂ ⊙ x̂)),  gx̂ = gy ⊙ scale
      const gxh = g.mul(gy, s!);
      const m = g.reduceMean(g.mul(gxh, xh), [-1], true);
      dx = g.mul(g.sub(gxh, g.mul(xh, m)), r);
    }
    return [dx, ds];
  },
});

def({
  name: 'LayerNormalization', // y = (x − μ) r · scale + bias; outputs y, μ, r
  optionalOutputs: true,
  infer: (x, a) => normInfer(x, a, 2, 2),
  lower: (c) => c.emit('LayerNormalization', c.node.inputs.map((_, i) => c.in(i)), [c.out(0), c.out(1), c.out(2)], {
    axis: A.i(-1), epsilon: A.f(num(c.node.attrs, 'epsilon')),
  }),
  grad: (c) => {
    const { g } = c;
    const [x, s] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return c.x.map(() => null);
    const { mu, r } = normStats(c, true);
    const xh = g.mul(g.sub(x!, mu!), r);
    const ds = c.needs(1) ? g.mul(gy, xh) : null;
    const db = c.needs(2) ? gy : null;
    let dx: Value | null = null;
    if (c.needs(0)) {
      // dx = r (gx̂ − mean(gx̂) − x̂ · mean(gx̂ ⊙ x̂))
      const gxh = g.mul(gy, s!);
      const m1 = g.reduceMean(gxh, [-1], true);
      const m2 = g.reduceMean(g.mul(gxh, xh), [-1], true);
      dx = g.mul(g.sub(g.sub(gxh, m1), g.mul(xh, m2)), r);
    }
    return c.x.length < 3 ? [dx, ds] : [dx, ds, db];
  },
});

def({
  name: 'RotaryEmbedding', // com.microsoft, rotate-half (interleaved 0) or pairs (1): x [B, N, S, H], pos [B, S] int64, cos/sin [P, H/2]
  infer: (x) => {
    const [v, pos, cos, sin] = need(x, 4);
    floatIn(v!);
    sameType([v!, cos!, sin!]);
    if (v!.rank !== 4) throw new Error(`x must be [B, heads, S, head_dim], got ${shapeStr(v!.shape)}`);
    if (pos!.dtype !== 'int64' || pos!.rank !== 2) throw new Error(`position ids must be int64 [B, S], got ${pos}`);
    const half = v!.shape[3];
    if (typeof half === 'number' && (cos!.shape[1] !== half / 2 || sin!.shape[1] !== half / 2)) {
      throw new Error(`cos/sin must be [positions, ${half / 2}], got ${shapeStr(cos!.shape)} and ${shapeStr(sin!.shape)}`);
    }
    return [{ dtype: v!.dtype, shape: [...v!.shape] }];
  },
  lower: (c) => {
    const heads = c.node.inputs[0]!.shape[1];
    c.emit('RotaryEmbedding', [c.in(0), c.in(1), c.in(2), c.in(3)], [c.out(0)], {
      interleaved: A.i(num(c.node.attrs, 'interleaved')),
      ...(typeof heads === 'number' ? { num_heads: A.i(heads) } : {}),
    }, 'com.microsoft');
  },
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy || !c.needs(0)) return [null, null, null, null];
    // a rotation's transpose is the rotation by −θ: same op with −sin (folded when sin is a constant)
    const [, pos, cos, sin] = c.x as Value[];
    return [c.g.apply('RotaryEmbedding', [gy, pos!, cos!, c.g.neg(sin!)], c.node.attrs)[0]!, null, null, null];
  },
});
