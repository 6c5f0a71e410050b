/**
 * Per-row softmax cross-entropy as one fused op for the GPU backend (kernels/logprob.ts): the per-token
 * negative log-likelihoods the preference losses sum per sequence (llm/preference-graph.ts). It is
 * fused.ts's SoftmaxCrossEntropy without the final sum over rows, so each row keeps its own value and
 * its own incoming gradient. Like every fused op it lowers to ONNX as its decomposition (composite.ts).
 *
 * Letters: N rows (tokens), V vocab.
 */
import type { Value } from '../graph';
import { lowerAsDecomposition } from './composite';
import { def, need, floatIn } from './registry';
import { shapeStr } from '../types';

def({
  // nll [N, 1] = w · (logsumexp(logits) − logits[t]) per row; lse [N, 1] for the backward.
  // inputs logits [N, V], targets int [N, 1], weights f32 [N, 1] (0 = masked row: its nll is 0)
  name: 'SoftmaxCrossEntropyRows',
  optionalOutputs: true,
  infer: (x) => {
    const [l, t, w] = need(x, 3);
    floatIn(l!);
    if (l!.rank !== 2 || t!.rank !== 2 || t!.shape[1] !== 1 || w!.rank !== 2 || w!.shape[1] !== 1 || t!.shape[0] !== l!.shape[0] || w!.shape[0] !== l!.shape[0]) {
      throw new Error(`expected logits [N, V], targets [N, 1], weights [N, 1]; got ${shapeStr(l!.shape)}, ${shapeStr(t!.shape)}, ${shapeStr(w!.shape)}`);
    }
    const col = { dtype: l!.dtype, shape: [l!.shape[0]!, 1] };
    return [col, col];
  },
  lower: (c) => lowerAsDecomposition(c, (g, [l, t, w]) => {
    const lse = g.reduceLogSumExp(l!, [1], true);
    return [g.mul(g.sub(lse, g.gatherElements(l!, t!, 1)), w!), lse];
  }),
  grad: (c) => {
    const gy = c.gy[0];
    if (c.gy[1]) throw new Error('SoftmaxCrossEntropyRows: its logsumexp output has no gradient');
    if (!gy) return [null, null, null];
    const [l, t, w] = c.x as Value[];
    const dl = c.needs(0) ? c.g.apply('SoftmaxCrossEntropyRowsGrad', [l!, t!, w!, c.y[1]!, gy])[0]! : null;
    const dw = c.needs(2) ? c.g.mul(c.g.sub(c.y[1]!, c.g.gatherElements(l!, t!, 1)), gy) : null;
    return [dl, null, dw];
  },
});

def({
  // dlogits [N, V] = gy[row] · w · (softmax(logits) − onehot(t)), reading the logits once (exp(l − lse))
  name: 'SoftmaxCrossEntropyRowsGrad',
  nondiff: true, // a backward op: no second-order gradients
  infer: (x) => {
    const [l, , , , gy] = need(x, 5);
    if (gy!.rank !== 2 || gy!.shape[0] !== l!.shape[0] || gy!.shape[1] !== 1) throw new Error(`gy ${shapeStr(gy!.shape)} must be [N, 1] for logits ${shapeStr(l!.shape)}`);
    return [{ dtype: l!.dtype, shape: [...l!.shape] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, [l, t, w, lse, gy]) => {
    const wg = g.mul(w!, gy!); // [N, 1]
    return [g.scatterAdd(g.mul(g.exp(g.sub(l!, lse!)), wg), t!, g.neg(wg), 1)];
  }),
});
