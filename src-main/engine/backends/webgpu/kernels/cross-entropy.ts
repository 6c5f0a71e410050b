/**
 * Softmax cross-entropy over the vocabulary (fused.ts SoftmaxCrossEntropy / SoftmaxCrossEntropyGrad).
 *  forward   1. one 64-thread workgroup per row: lse = max + log Σ exp(l − max) (two passes over the row);
 *            2. one workgroup: loss = Σ_rows w · (lse − l[t]) (reads one logit per row).
 *  backward  one thread per logit: dl = gy · w · (exp(l − lse) − [col = t]) — the softmax and the one-hot
 *            in one pass that reads the logits once; no [N, V] softmax is stored, and when the backward is
 *            the logits' last reader it overwrites them in place (one [N, V] buffer for logits and gradient).
 * A target outside [0, V) (an ignore label such as −100) makes its row contribute nothing, like weight 0.
 * Shapes: logits [N, V]; targets, weights, lse [N, 1].
 */
import { KernelBuilder, grid } from '../wgsl';
import { ENTRY, dispatchPerElement, inShape, type Emitter } from './context';

const WG = 64;
const NEG = '-3.4028e+38f';

/** The workgroup tree reduction of `${v}_a` into `let ${v}` (combine with op). */
const tree = (v: string, comb: (a: string, b: string) => string) => `sh[li] = ${v}_a;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { sh[li] = ${comb('sh[li]', 'sh[li + s]')}; }
    workgroupBarrier();
  }
  let ${v} = sh[0];
  workgroupBarrier();`;

/** The target column of row `row`, or V (none) when out of range. */
const targetOf = (ldt: string, V: number, row: string) => `select(${V}u, u32(${ldt}(${row})), ${ldt}(${row}) >= 0i && ${ldt}(${row}) < ${V}i)`;

export const CROSS_ENTROPY: Record<string, Emitter> = {
  SoftmaxCrossEntropy: (c) => {
    const [N, V] = inShape(c, 0) as [number, number];
    // 1. lse per row
    const k = new KernelBuilder('CrossEntropyLse');
    const ldl = k.input(c.in(0));
    const stl = k.output(c.out(1));
    k.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
    const { groups, x } = grid(N, 1);
    c.dispatch(k, `${ENTRY}(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wid.y * ${x}u + wid.x;
  if (row >= ${N}u) { return; }
  let base = row * ${V}u;
  var m_a = ${NEG};
  for (var j = li; j < ${V}u; j = j + ${WG}u) { m_a = max(m_a, ${ldl}(base + j)); }
  ${tree('m', (a, b) => `max(${a}, ${b})`)}
  var t_a = 0.0;
  for (var j = li; j < ${V}u; j = j + ${WG}u) { t_a = t_a + exp(${ldl}(base + j) - m); }
  ${tree('t', (a, b) => `${a} + ${b}`)}
  if (li == 0u) { ${stl}(row, m + log(t)); }
}`, groups);
    if (!c.used(0)) return;
    // 2. the weighted sum of the rows' losses
    const k2 = new KernelBuilder('CrossEntropyLoss');
    const ldl2 = k2.input(c.in(0)), ldt = k2.input(c.in(1)), ldw = k2.input(c.in(2)), ldlse = k2.input(c.out(1));
    const st = k2.output(c.out(0));
    k2.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
    c.dispatch(k2, `${ENTRY}(${WG}) fn main(@builtin(local_invocation_index) li: u32) {
  var a_a = 0.0;
  for (var row = li; row < ${N}u; row = row + ${WG}u) {
    let col = ${targetOf(ldt, V, 'row')};
    if (col < ${V}u) { a_a = a_a + (${ldlse}(row) - ${ldl2}(row * ${V}u + col)) * ${ldw}(row); }
  }
  ${tree('a', (p, q) => `${p} + ${q}`)}
  if (li == 0u) { ${st}(0u, a); }
}`, [1, 1, 1]);
  },
  SoftmaxCrossEntropyGrad: (c) => {
    const [N, V] = inShape(c, 0) as [number, number];
    const k = new KernelBuilder('CrossEntropyGrad');
    // the logits' last reader: the gradient overwrites them in place (one [N, V] buffer, not two)
    // (f16 logits in f16 storage: the f16 gradient takes the same storage)
    const st0 = c.in(0).storage;
    const inPlace = c.lastUse?.(0) === true && (st0 === 'f32' || ((st0 === 'h16' || st0 === 'f16r') && c.node.outputs[0]!.dtype === 'float16'));
    if (inPlace) c.view(0, c.in(0));
    const [ldl, st] = inPlace ? k.inout(c.in(0)) : [k.input(c.in(0)), k.output(c.out(0))];
    const ldt = k.input(c.in(1)), ldw = k.input(c.in(2)), ldlse = k.input(c.in(3)), ldg = k.input(c.in(4));
    dispatchPerElement(c, k, N * V, `  let row = i / ${V}u;
  let col = i % ${V}u;
  let t = ${targetOf(ldt, V, 'row')};
  let wg = select(0.0, ${ldw}(row) * ${ldg}(0u), t < ${V}u);
  ${st}(i, wg * (exp(${ldl}(i) - ${ldlse}(row)) - select(0.0, 1.0, col == t)));`);
  },
};
