/**
 * Row kernels: reductions over any set of axes (Sum, Mean, Max, SumSquare, LogSumExp), Softmax over one
 * axis, and the fused norms (RMSNorm = SimplifiedLayerNormalization, LayerNorm) with their statistics.
 * One 64-thread workgroup per output row: each thread strides over the row, then a tree reduction in
 * workgroup memory. LogSumExp and Softmax take the row max first (two/three passes over the row).
 */
import { ints, num } from '../../../graph/ops/registry';
import { normAxis } from '../../../graph/types';
import { KernelBuilder, affine, coords, grid, lit, stridesOf } from '../wgsl';
import { ENTRY, inShape, prod, type EmitCtx, type Emitter } from './context';

const WG = 64;

/** Row layout: the kept dims (one workgroup each) and the reduced dims, with the input's strides. */
interface Rows { kept: number[]; keptStrides: number[]; red: number[]; redStrides: number[] }

function rowsOf(shape: readonly number[], axes: readonly number[]): Rows {
  const st = stridesOf(shape);
  const r: Rows = { kept: [], keptStrides: [], red: [], redStrides: [] };
  shape.forEach((d, k) => {
    if (axes.includes(k)) { r.red.push(d); r.redStrides.push(st[k]!); }
    else { r.kept.push(d); r.keptStrides.push(st[k]!); }
  });
  return r;
}

/**
 * A statement block computing `let <name> = combine over the row of f(x)`. `x` is the loaded element.
 * Uses the workgroup array `sh` and leaves it free again.
 */
function rowPass(name: string, rows: Rows, ld: string, init: string, f: (x: string) => string, comb: (a: string, b: string) => string): string {
  return `var ${name}_acc = ${init};
  for (var q = li; q < R; q = q + ${WG}u) {
    ${coords('q', rows.red, 'r')}
    let x = ${ld}(base + ${affine(rows.redStrides, 0, 'r')});
    ${name}_acc = ${comb(`${name}_acc`, f('x'))};
  }
  sh[li] = ${name}_acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { sh[li] = ${comb('sh[li]', 'sh[li + s]')}; }
    workgroupBarrier();
  }
  let ${name} = sh[0];
  workgroupBarrier();`;
}

/** Wraps per-row statements into the entry point: one workgroup per kept index `o`, `base` its first element. */
function rowKernel(c: EmitCtx, k: KernelBuilder, rows: Rows, stmts: string): void {
  const n = prod(rows.kept);
  const { groups, x } = grid(n, 1);
  k.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
  c.dispatch(k, `${ENTRY}(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let o = wid.y * ${x}u + wid.x;
  if (o >= ${n}u) { return; }
  ${coords('o', rows.kept, 'k')}
  let base = ${affine(rows.keptStrides, 0, 'k')};
  let R = ${k.param(prod(rows.red))};
  ${stmts}
}`, groups);
}

const add = (a: string, b: string) => `${a} + ${b}`;
const mx = (a: string, b: string) => `max(${a}, ${b})`;
/** The lowest finite f32 (WGSL constants cannot be infinite). */
const NEG = '-3.4028e+38f';

function reduceAxes(c: EmitCtx): number[] {
  const s = inShape(c, 0);
  const ax = ints(c.node.attrs, 'axes');
  return ax.length === 0 ? s.map((_, i) => i) : ax.map((i) => normAxis(i, s.length, 'reduce'));
}

function reduce(kind: 'sum' | 'mean' | 'max' | 'sumsq' | 'lse'): Emitter {
  return (c) => {
    if (c.node.inputs[0]!.dtype !== 'float32' && c.node.inputs[0]!.dtype !== 'float16') throw new Error(`${c.node.op} on ${c.node.inputs[0]!.dtype} has no GPU kernel.`);
    const rows = rowsOf(inShape(c, 0), reduceAxes(c));
    const k = new KernelBuilder(c.node.op);
    const ld = k.input(c.in(0));
    const st = k.output(c.out(0));
    const R = prod(rows.red);
    let stmts: string;
    switch (kind) {
      case 'sum': stmts = `${rowPass('t', rows, ld, '0.0', (x) => x, add)} if (li == 0u) { ${st}(o, t); }`; break;
      case 'mean': stmts = `${rowPass('t', rows, ld, '0.0', (x) => x, add)} if (li == 0u) { ${st}(o, t / ${lit(R)}); }`; break;
      case 'sumsq': stmts = `${rowPass('t', rows, ld, '0.0', (x) => `${x} * ${x}`, add)} if (li == 0u) { ${st}(o, t); }`; break;
      case 'max': stmts = `${rowPass('t', rows, ld, NEG, (x) => x, mx)} if (li == 0u) { ${st}(o, t); }`; break;
      case 'lse':
        stmts = `${rowPass('m', rows, ld, NEG, (x) => x, mx)}
  ${rowPass('t', rows, ld, '0.0', (x) => `exp(${x} - m)`, add)} if (li == 0u) { ${st}(o, m + log(t)); }`;
        break;
    }
    rowKernel(c, k, rows, stmts);
  };
}

/** Writes f(x, element index) for every element of the row. */
function rowWrite(rows: Rows, ld: string, st: string, f: (x: string) => string): string {
  return `for (var q = li; q < R; q = q + ${WG}u) {
    ${coords('q', rows.red, 'r')}
    let e = base + ${affine(rows.redStrides, 0, 'r')};
    let x = ${ld}(e);
    ${st}(e, ${f('x')});
  }`;
}

export const REDUCE: Record<string, Emitter> = {
  ReduceSum: reduce('sum'),
  ReduceMean: reduce('mean'),
  ReduceMax: reduce('max'),
  ReduceSumSquare: reduce('sumsq'),
  ReduceLogSumExp: reduce('lse'),
  Softmax: (c) => {
    const s = inShape(c, 0);
    const rows = rowsOf(s, [normAxis(num(c.node.attrs, 'axis'), s.length, 'Softmax')]);
    const k = new KernelBuilder('Softmax');
    const ld = k.input(c.in(0));
    const st = k.output(c.out(0));
    rowKernel(c, k, rows, `${rowPass('m', rows, ld, NEG, (x) => x, mx)}
  ${rowPass('t', rows, ld, '0.0', (x) => `exp(${x} - m)`, add)}
  let inv = 1.0 / t;
  ${rowWrite(rows, ld, st, (x) => `exp(${x} - m) * inv`)}`);
  },
  SimplifiedLayerNormalization: (c) => {
    // y = x · r · scale,  r = 1 / sqrt(mean(x²) + eps)  (second output: r, f32 [..., 1])
    const s = inShape(c, 0);
    const rows = rowsOf(s, [s.length - 1]);
    const D = s[s.length - 1]!;
    const k = new KernelBuilder('RMSNorm');
    const ld = k.input(c.in(0));
    const lds = k.input(c.in(1));
    const st = k.output(c.out(0));
    const str = c.used(1) ? k.output(c.out(1)) : null;
    rowKernel(c, k, rows, `${rowPass('t', rows, ld, '0.0', (x) => `${x} * ${x}`, add)}
  let r = inverseSqrt(t / ${lit(D)} + ${lit(num(c.node.attrs, 'epsilon'))});
  ${str ? `if (li == 0u) { ${str}(o, r); }` : ''}
  for (var q = li; q < R; q = q + ${WG}u) { ${st}(base + q, ${ld}(base + q) * r * ${lds}(q)); }`);
  },
  LayerNormalization: (c) => {
    // y = (x − μ) r · scale + bias,  r = 1 / sqrt(var + eps)  (outputs 1, 2: μ, r)
    const s = inShape(c, 0);
    const rows = rowsOf(s, [s.length - 1]);
    const D = s[s.length - 1]!;
    const k = new KernelBuilder('LayerNorm');
    const ld = k.input(c.in(0));
    const lds = k.input(c.in(1));
    const ldb = c.node.inputs[2] ? k.input(c.in(2)) : null;
    const st = k.output(c.out(0));
    const stm = c.used(1) ? k.output(c.out(1)) : null;
    const str = c.used(2) ? k.output(c.out(2)) : null;
    rowKernel(c, k, rows, `${rowPass('t', rows, ld, '0.0', (x) => x, add)}
  let mu = t / ${lit(D)};
  ${rowPass('v', rows, ld, '0.0', (x) => `(${x} - mu) * (${x} - mu)`, add)}
  let r = inverseSqrt(v / ${lit(D)} + ${lit(num(c.node.attrs, 'epsilon'))});
  if (li == 0u) { ${stm ? `${stm}(o, mu);` : ''} ${str ? `${str}(o, r);` : ''} }
  for (var q = li; q < R; q = q + ${WG}u) { ${st}(base + q, (${ld}(base + q) - mu) * r * ${lds}(q)${ldb ? ` + ${ldb}(q)` : ''}); }`);
  },
};
