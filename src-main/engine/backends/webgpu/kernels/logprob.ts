/**
 * Per-row softmax cross-entropy (graph/ops/fused-logprob.ts SoftmaxCrossEntropyRows / ...RowsGrad): the
 * per-token log-probs of the preference losses (DPO, ORPO), which sum them per sequence.
 *  forward   1 dispatch, one 64-thread workgroup per row: lse = max + log Σ exp(l − max), then the row's
 *            nll = w · (lse − l[t]) (written by the first thread; 0 when the target is out of range);
 *  backward  1 dispatch, one thread per logit: dl = gy[row] · w · (exp(l − lse) − [col = t]), over the
 *            logits in place when the backward is their last reader (as cross-entropy.ts does).
 * Shapes: logits [N, V]; targets, weights, nll, lse, gy [N, 1].
 */
import { KernelBuilder } from '../wgsl';
import { inShape, type Emitter } from './context';
import { WG, logitsGrad, perRowWorkgroups, rowLse, targetOf as target } from './cross-entropy';

export const LOGPROB: Record<string, Emitter> = {
  SoftmaxCrossEntropyRows: (c) => {
    const [N, V] = inShape(c, 0) as [number, number];
    const k = new KernelBuilder('CrossEntropyRows');
    const ldl = k.input(c.in(0)), ldt = k.input(c.in(1)), ldw = k.input(c.in(2));
    const stn = k.output(c.out(0)), stl = k.output(c.out(1));
    k.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
    perRowWorkgroups(c, k, N, V, `${rowLse(ldl, V)}
  if (li == 0u) {
    let lse = m + log(t);
    let col = ${target(ldt, V, 'row')};
    ${stl}(row, lse);
    ${stn}(row, select(0.0, (lse - ${ldl}(base + min(col, ${V - 1}u))) * ${ldw}(row), col < ${V}u));
  }`);
  },
  SoftmaxCrossEntropyRowsGrad: (c) => {
    const [N, V] = inShape(c, 0) as [number, number];
    // the logits' last reader: the gradient overwrites them in place (one [N, V] buffer, not two)
    logitsGrad(c, 'CrossEntropyRowsGrad', N, V, c.lastUse?.(0) === true && c.in(0).storage === 'f32', 'row');
  },
};
