/**
 * Preference tuning (DPO, IPO, ORPO) as ONE train-step graph, like train-graph.ts:
 *
 *   policy forward (LoRA on) [-> reference forward (LoRA off), DPO only] -> per-row completion log-probs
 *   -> per-pair loss -> backward (LoRA params only) -> accumulate / clip / AdamW / non-finite guard
 *
 * Rows: a micro-batch of P pairs is R = 2P rows of T tokens, the P chosen completions first, then the P
 * rejected ones in the same order (row p and row P + p are one pair). Each row is one sample (prompt +
 * completion, padded at the end), so causal attention needs no segment ids. `mask` marks the predicted
 * tokens of the completion only; `pairs` [P] weighs each pair (0 for a padding pair in evaluation).
 *
 * Log-probs: logp[r] = Σ_t mask · log softmax(logits)[target] (summed over the completion's tokens).
 *
 * DPO (Rafailov et al. 2023), h = (πc − rc) − (πr − rr) with π the policy's and r the reference's logp:
 *   sigmoid:  (1 − ε) · softplus(−β·h) + ε · softplus(β·h)     (ε = label smoothing, cDPO; −log σ(z) = softplus(−z))
 *   ipo:      (h − 1/(2β))²                                  (Azar et al. 2023, on summed log-probs)
 * The reference is the frozen base with the adapter off: the same forward without LoRA, in the same graph,
 * reading the same weight initializers (no second copy of the weights; no gradient flows through it).
 *
 * ORPO (Hong et al. 2024), no reference; a = logp / tokens (per-token mean), log odds(a) = a − log(1 − eᵃ):
 *   −a_c + λ · softplus(−(log odds(a_c) − log odds(a_r)))
 *
 * The loss of a micro-batch is Σ_p pairs[p] · loss_p (`loss_sum`); the optimizer step divides the
 * accumulated gradient by the number of pairs in the step (`invCount` = 1 / pairs), so the step's loss is
 * the mean over its pairs. Outputs for the metrics: `logps` [R] (policy), `ref_logps` [R] (DPO).
 */
import { GraphBuilder, type Value } from '../graph/graph';
import { gradients } from '../autodiff/grad';
import type { OnnxModel } from '../onnx/spec';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import { buildForward, rowNllOf, type ForwardResult, type WeightSource } from './forward';
import type { LoraLayout } from './lora';
import { onDemandLowering, optimizerStep, recomputedGradient, trainState, type OptimConfig, type TrainGraph } from './train-graph';

export type PreferenceMethod = 'dpo' | 'orpo';

/** What the preference loss is; every field is fixed when the graph is built. */
export interface PreferenceLoss {
  method: PreferenceMethod;
  /** DPO: β, how far the policy may move from the reference (0.1 is the usual value). */
  beta: number;
  /** DPO: 'sigmoid' (the DPO paper) or 'ipo' (squared loss, Azar et al.). */
  loss: 'sigmoid' | 'ipo';
  /** DPO sigmoid: ε, the assumed share of flipped labels (conservative DPO); 0 = off. */
  labelSmoothing: number;
  /** ORPO: λ, the weight of the odds-ratio term beside the SFT term. */
  orpoLambda: number;
}

export interface PreferenceShape {
  /** Pairs per micro-batch (the graph has 2 × pairs rows). */
  pairs: number;
  seqLen: number;
  dropout?: number;
  recompute?: boolean;
  /**
   * DPO: take the reference log-probs as an input `ref_logps_in` [R] instead of running the base forward
   * in the graph (the "precomputed in one pass" alternative; measured by test/bench/preference.ts).
   */
  refInput?: boolean;
  /**
   * For Lathe's GPU backend: the fused ops (flash attention, norm backwards, and the per-token log-probs as
   * one SoftmaxCrossEntropyRows node per forward; graph/ops/fused*.ts), as buildTrainGraph's `fused`. The
   * graph then lowers to ONNX only on demand (each fused op as its decomposition).
   */
  fused?: boolean;
  /** Gradient accumulation over micro-batches (a `gacc` state; default true), as buildTrainGraph's `accumulate`. */
  accumulate?: boolean;
}

/** Static loss scale for f16 compute, applied to the mean over pairs (as train-graph.ts does per token). */
const F16_LOSS_SCALE = 256;

interface Built { g: GraphBuilder; lossSum: Value; forwardNodes: number; fwd: Awaited<ReturnType<typeof buildForward>>; params: Value | null }

/** Inputs, forwards and the per-pair loss; shared by the train and eval graphs. */
async function buildLoss(
  cfg: ModelConfig, layout: WeightsLayout, src: WeightSource, lora: LoraLayout | null, shape: PreferenceShape,
  loss: PreferenceLoss, g: GraphBuilder, params: Value | null, dropout: { p: number; seed: Value } | undefined,
): Promise<Built> {
  if (lora?.newRows) throw new Error('preference graph: trainable new-token rows are not supported.');
  const P = shape.pairs, R = 2 * P, T = shape.seqLen, N = R * T;
  const ids = g.input('ids', 'int64', [R, T]);
  const targets = g.input('targets', 'int64', [N, 1]);
  const mask = g.input('mask', 'float32', [N, 1]);
  const pairs = g.input('pairs', 'float32', [P]);
  const fwd = await buildForward(g, cfg, layout, src, ids, { batch: R, seqLen: T, ...(dropout ? { dropout } : {}) }, lora, params);
  const forwardNodes = g.nodes.length;
  const rowLogp = (f: ForwardResult): Value => {
    // GPU backend with a frozen head in one piece: the lm_head GEMM and the per-row nll by vocabulary chunks
    // (LinearCrossEntropy rows), never holding [N, V] logits
    const fusedNll = rowNllOf(g, f, targets, mask);
    if (fusedNll) return g.neg(g.reduceSum(g.reshape(fusedNll, [R, T]), [1], false)); // [R]
    const logits = g.cast(f.logits, 'float32');
    if (g.fused) {
      // GPU backend: lse and the picked logit per row in one kernel; its backward reads the logits once
      const nll = g.apply('SoftmaxCrossEntropyRows', [logits, targets, mask])[0]!; // [N, 1], mask · nll
      return g.neg(g.reduceSum(g.reshape(nll, [R, T]), [1], false)); // [R]
    }
    const lse = g.reduceLogSumExp(logits, [1], true); // [N, 1]
    const picked = g.gatherElements(logits, targets, 1); // [N, 1]
    const nll = g.mul(g.sub(lse, picked), mask); // [N, 1]
    return g.neg(g.reduceSum(g.reshape(nll, [R, T]), [1], false)); // [R]
  };
  const logp = rowLogp(fwd);
  g.output('logps', logp);
  const [pc, pr] = g.split(logp, [P, P], 0) as [Value, Value];
  let perPair: Value;
  if (loss.method === 'dpo') {
    // the reference: the same forward with the adapter off (no LoRA inputs, so nothing to differentiate)
    const refLogp = shape.refInput ? g.input('ref_logps_in', 'float32', [R])
      : rowLogp(await buildForward(g, cfg, layout, src, ids, { batch: R, seqLen: T }, null, null));
    if (!shape.refInput) g.output('ref_logps', refLogp);
    const [rc, rr] = g.split(refLogp, [P, P], 0) as [Value, Value];
    const h = g.sub(g.sub(pc, rc), g.sub(pr, rr)); // [P]
    if (loss.loss === 'ipo') {
      const d = g.sub(h, 1 / (2 * loss.beta));
      perPair = g.mul(d, d);
    } else {
      const z = g.mul(h, loss.beta);
      const eps = loss.labelSmoothing;
      perPair = g.softplus(g.neg(z)); // −log σ(βh)
      if (eps > 0) perPair = g.add(g.mul(perPair, 1 - eps), g.mul(g.softplus(z), eps)); // + ε · −log σ(−βh)
    }
  } else {
    const counts = g.max(g.reduceSum(g.reshape(mask, [R, T]), [1], false), 1); // [R] completion tokens
    const avg = g.div(logp, counts); // per-token mean log-prob (< 0)
    // log(p / (1 − p)) with p = e^avg; a reply the model is all but certain of (avg > −1e-6) would make
    // 1 − p round to 0 in f32 (−inf), so the odds use avg capped there (its SFT term still sees avg itself)
    const capped = g.min(avg, -1e-6);
    const logOdds = g.sub(capped, g.log(g.sub(1, g.exp(capped))));
    const [ac] = g.split(avg, [P, P], 0) as [Value, Value];
    const [oc, or] = g.split(logOdds, [P, P], 0) as [Value, Value];
    perPair = g.add(g.neg(ac), g.mul(g.softplus(g.neg(g.sub(oc, or))), loss.orpoLambda));
  }
  const lossSum = g.reduceSum(g.mul(perPair, pairs), [0], false); // scalar
  return { g, lossSum, forwardNodes, fwd, params };
}

export async function buildPreferenceTrainGraph(
  cfg: ModelConfig, layout: WeightsLayout, src: WeightSource, lora: LoraLayout,
  shape: PreferenceShape, loss: PreferenceLoss, optim: OptimConfig,
): Promise<TrainGraph> {
  const g = new GraphBuilder();
  g.fused = !!shape.fused;
  const Psize = lora.size;
  const dropout = shape.dropout && shape.dropout > 0 ? { p: shape.dropout, seed: g.input('dropout_seed', 'float32', []) } : undefined;
  const apply = g.input('apply', 'bool', []);
  /** 1 / (pairs in the whole optimizer step) */
  const invCount = g.input('invCount', 'float32', []);
  const adam = g.input('adam', 'float32', [3]);
  const params = g.input('params', 'float32', [Psize]);
  const m = g.input('m', 'float32', [Psize]);
  const v = g.input('v', 'float32', [Psize]);
  const accumulate = shape.accumulate ?? true;
  const gacc = accumulate ? g.input('gacc', 'float32', [Psize]) : null;
  const b = await buildLoss(cfg, layout, src, lora, shape, loss, g, params, dropout);
  const forwardNodes = g.nodes.length;
  // f16 compute: seed the backward with S/P (a mean-scaled loss times S) and undo it in f32
  const cot = src.compute === 'float16' ? F16_LOSS_SCALE / shape.pairs : 1;
  const seed = cot === 1 ? null : g.scalar(cot, 'float32');
  let grad = shape.recompute
    ? await recomputedGradient(g, b.fwd.blocks, b.lossSum, params, g.input('recompute_one', 'float32', []), seed)
    : (gradients(g, [[b.lossSum, seed]], [params]).grads[0] ?? g.zerosLike(params));
  if (cot !== 1) grad = g.mul(grad, 1 / cot);
  const backwardNodes = g.nodes.length - forwardNodes;
  g.output('loss_sum', b.lossSum);
  optimizerStep(g, grad, { params, m, v, gacc, apply, invCount, adam }, optim);
  const onnx = onDemandLowering(g, src, `lathe_${loss.method}_step`, 'preference graph');
  return {
    get model(): OnnxModel { return onnx.model(); },
    nodes: { forward: b.forwardNodes, backward: backwardNodes, total: onnx.nodeCount() },
    byOp: onnx.byOp(),
    state: trainState(accumulate),
    fetch: ['loss_sum', 'grad_norm', 'logps', ...(loss.method === 'dpo' && !shape.refInput ? ['ref_logps'] : [])],
    graph: g,
  };
}

/** Forward-only graph for held-out pairs: loss_sum, logps (and ref_logps for DPO). */
export async function buildPreferenceEvalGraph(
  cfg: ModelConfig, layout: WeightsLayout, src: WeightSource, lora: LoraLayout,
  shape: PreferenceShape, loss: PreferenceLoss,
): Promise<{ model: OnnxModel; nodes: number; graph: GraphBuilder }> {
  const g = new GraphBuilder();
  g.fused = !!shape.fused;
  const params = g.input('params', 'float32', [lora.size]);
  const b = await buildLoss(cfg, layout, src, lora, { pairs: shape.pairs, seqLen: shape.seqLen }, loss, g, params, undefined);
  g.output('loss_sum', b.lossSum);
  const onnx = onDemandLowering(g, src, `lathe_${loss.method}_eval`, 'preference eval graph');
  return {
    get model(): OnnxModel { return onnx.model(); },
    get nodes(): number { return onnx.nodeCount(); },
    graph: g,
  };
}
