/**
 * The whole training step for a causal LM with LoRA as ONE graph (one GPU submission per micro-batch):
 *
 *   forward -> masked cross-entropy sum -> backward (LoRA params only) -> accumulate gradient
 *   -> on the last micro-batch of an optimizer step: scale by 1/tokens, clip by global norm, AdamW
 *
 * State (persists between runs, GPU-resident on WebGPU): params, m, v (AdamW moments), gacc (gradient
 * accumulator; only with `accumulate`, the default: a run with gradAccum = 1 has none), all flat f32 [P]. Per-run feeds: ids, targets, mask, and scalars. The loss is the mean over
 * unmasked tokens of the whole optimizer step (all micro-batches), as Σ losses · (1/count).
 *
 * Non-finite guard: if the accumulated gradient's norm is NaN/inf, the update is skipped (params and
 * moments unchanged) and the accumulator cleared, so a bad batch is reported instead of trained through.
 */
import { GraphBuilder, type Value } from '../graph/graph';
import { gradients } from '../autodiff/grad';
import { lowerGraph } from '../backends/onnx/lower';
import type { OnnxModel } from '../onnx/spec';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import type { AdamWConfig } from '../nn/layers';
import { adamwStep } from '../nn/adamw-step';
import { buildForward, lossOf, type ForwardBlocks, type WeightSource } from './forward';
import type { LoraLayout } from './lora';

/** Static loss scale for f16 compute (applied to a mean-scaled loss; the non-finite guard skips a step that overflows). */
const F16_LOSS_SCALE = 256;

export interface OptimConfig extends Required<AdamWConfig> {
  /** Global gradient-norm clip (0 = off). */
  maxGradNorm: number;
}

export interface TrainGraph {
  model: OnnxModel;
  nodes: { forward: number; backward: number; total: number };
  byOp: Record<string, number>;
  /** Names of the state slots (input -> output). */
  state: { name: string; input: string; output: string }[];
  fetch: string[];
  /** The IR graph itself (the GPU backend compiles it to WGSL instead of ONNX). */
  graph: GraphBuilder;
}

/** Rows of B×T tokens; `packed` adds per-token segment ids and positions inputs (several SFT samples per row). */
export interface GraphShape {
  batch: number;
  seqLen: number;
  packed?: boolean;
  /** Training only: LoRA dropout probability (adds a `dropout_seed` input). */
  dropout?: number;
  /** Training only: activation recomputation (gradient checkpointing) per decoder block. */
  recompute?: boolean;
  /**
   * For Lathe's GPU backend: build the fused ops (flash attention, fused cross-entropy, norm backwards;
   * graph/ops/fused.ts) its dedicated kernels run. Off, the graph is the decomposed one the ONNX path runs.
   */
  fused?: boolean;
  /**
   * Training only: gradient accumulation over micro-batches (default true): a `gacc` state slot sums the
   * gradients of runs fed apply = false, and the run fed apply = true steps on the sum. False (the trainer's
   * gradAccum = 1): no gacc state (4·P bytes less on the device, and no accumulate add); each run's gradient
   * feeds the optimizer step directly. Same numbers, bit for bit, as accumulating onto a zero gacc with
   * apply = true; a run fed apply = false then updates nothing (its gradient is dropped).
   */
  accumulate?: boolean;
  /** The reference formulation of the LoRA factors' Casts (ForwardOptions.castPerFactor), for tests. */
  castPerFactor?: boolean;
}

/** The state slots of a train graph: params, m, v, and gacc where it accumulates. */
export function trainState(accumulate: boolean): { name: string; input: string; output: string }[] {
  return ['params', 'm', 'v', ...(accumulate ? ['gacc'] : [])].map((n) => ({ name: n, input: n, output: `${n}_out` }));
}

/**
 * The gradient of the loss w.r.t. the flat parameter vector with activation recomputation: the forward
 * keeps only each block's input x[i]; the backward walks the blocks from the top, emitting block i again
 * from x[i] and differentiating that copy (seeded with the gradient arriving at its output). No backward
 * node reads an activation inside a forward block, so onnxruntime frees those as soon as the forward has
 * used them; only the block inputs (L × [N, C]) and one block's activations at a time stay alive.
 * The graph gets a `recompute_one` input: feed 1.
 */
export async function recomputedGradient(g: GraphBuilder, blocks: ForwardBlocks, loss: Value, params: Value, one: Value, seed: Value | null): Promise<Value> {
  const L = blocks.x.length - 1;
  const got = new Map<Value, Value>(); // part.used -> its gradient
  const add = (used: Value, gr: Value | null) => { if (gr) got.set(used, got.has(used) ? g.add(got.get(used)!, gr) : gr); };
  // head: loss -> x[L] (final norm, lm_head, trainable head rows)
  const head = blocks.parts.filter((p) => p.layer === 'head');
  const top = gradients(g, [[loss, seed]], [blocks.x[L]!, ...head.map((p) => p.used)]);
  head.forEach((p, k) => add(p.used, top.grads[k + 1] ?? null));
  let gx = top.grads[0];
  for (let i = L - 1; i >= 0 && gx; i--) {
    const mine = blocks.parts.filter((p) => p.layer === i);
    // x·one with `one` a run-time input (always 1): without it the IR's and onnxruntime's common-subexpression
    // elimination would merge the copy back into the forward block, and nothing would be recomputed
    const out = await blocks.rebuild(g.mul(blocks.x[i]!, g.cast(one, blocks.x[i]!.dtype)), i);
    const r = gradients(g, [[out, gx]], [blocks.x[i]!, ...mine.map((p) => p.used)]);
    mine.forEach((p, k) => add(p.used, r.grads[k + 1] ?? null));
    gx = r.grads[0];
  }
  // new-token embedding rows: through the embedding lookup into x[0]
  const embed = blocks.parts.filter((p) => p.layer === 'embed');
  if (gx && embed.length) {
    const r = gradients(g, [[blocks.x[0]!, gx]], embed.map((p) => p.used));
    embed.forEach((p, k) => add(p.used, r.grads[k] ?? null));
  }
  // back to the flat layout: one piece per distinct flat slice (tied rows: embedding + head uses summed)
  const pieces: Value[] = [];
  const seen = new Set<Value>();
  for (const p of blocks.parts) {
    if (seen.has(p.flat)) continue;
    seen.add(p.flat);
    const uses = blocks.parts.filter((q) => q.flat === p.flat).map((q) => got.get(q.used)).filter((v): v is Value => !!v);
    const n = p.flat.shape[0] as number;
    const sum = uses.length ? uses.map((u) => g.reshape(u, [n])).reduce((a, b) => g.add(a, b)) : g.zerosLike(p.flat);
    pieces.push(sum);
  }
  // (the LoRA factors' pieces are in the compute type, pieces of one Cast: their Concat is widened once)
  const runs: Value[][] = [];
  for (const p of pieces) {
    const last = runs[runs.length - 1];
    if (last && last[0]!.dtype === p.dtype) last.push(p);
    else runs.push([p]);
  }
  const flat = runs.map((r) => g.cast(r.length === 1 ? r[0]! : g.concat(r, 0), params.dtype));
  return flat.length === 0 ? g.zerosLike(params) : flat.length === 1 ? flat[0]! : g.concat(flat, 0);
}

/** Inputs for trainable new-token rows (see TokenRows for how the host fills them). */
function newTokenInputs(g: GraphBuilder, shape: GraphShape, lora: LoraLayout | null) {
  if (!lora?.newRows) return undefined;
  return {
    newIdx: g.input('new_idx', 'int64', [shape.batch, shape.seqLen]),
    isNew: g.input('is_new', 'float32', [shape.batch, shape.seqLen, 1]),
  };
}

function packingInputs(g: GraphBuilder, shape: GraphShape) {
  if (!shape.packed) return undefined;
  return {
    segments: g.input('segments', 'float32', [shape.batch, shape.seqLen]),
    positions: g.input('positions', 'int64', [shape.batch, shape.seqLen]),
  };
}

export async function buildTrainGraph(
  cfg: ModelConfig, layout: WeightsLayout, src: WeightSource, lora: LoraLayout,
  shape: GraphShape, optim: OptimConfig,
): Promise<TrainGraph> {
  const g = new GraphBuilder();
  g.fused = !!shape.fused;
  const { batch: B, seqLen: T } = shape;
  const N = B * T, P = lora.size;
  const ids = g.input('ids', 'int64', [B, T]);
  const packing = packingInputs(g, shape);
  const newTokens = newTokenInputs(g, shape, lora);
  /** LoRA dropout: the trainer feeds a seed that depends only on (run seed, step, micro-batch) */
  const dropout = shape.dropout && shape.dropout > 0 ? { p: shape.dropout, seed: g.input('dropout_seed', 'float32', []) } : undefined;
  const targets = g.input('targets', 'int64', [N, 1]);
  const mask = g.input('mask', 'float32', [N, 1]);
  /** true on the last micro-batch of an optimizer step */
  const apply = g.input('apply', 'bool', []);
  /** 1 / (unmasked tokens in the whole optimizer step) */
  const invCount = g.input('invCount', 'float32', []);
  /** adamwScalars(): [alpha, epsHat, decay] for this step */
  const adam = g.input('adam', 'float32', [3]);
  const params = g.input('params', 'float32', [P]);
  const m = g.input('m', 'float32', [P]);
  const v = g.input('v', 'float32', [P]);
  const accumulate = shape.accumulate ?? true;
  const gacc = accumulate ? g.input('gacc', 'float32', [P]) : null;

  const fwd = await buildForward(g, cfg, layout, src, ids, { batch: B, seqLen: T, packing, newTokens, ...(dropout ? { dropout } : {}), ...(shape.castPerFactor ? { castPerFactor: true } : {}) }, lora, params);
  const lossSum = lossOf(g, fwd, targets, mask); // Σ mask · nll (scalar); LinearCrossEntropy in fused graphs
  const forwardNodes = g.nodes.length;
  // f16 compute: seed the backward with S/N instead of 1 so f16 gradients sit in the range of a mean loss
  // times a loss scale S (neither overflowing from the sum over N tokens nor underflowing), and undo it in f32
  const cot = src.compute === 'float16' ? F16_LOSS_SCALE / N : 1;
  const seed = cot === 1 ? null : g.scalar(cot, 'float32');
  let grad = shape.recompute ? await recomputedGradient(g, fwd.blocks, lossSum, params, g.input('recompute_one', 'float32', []), seed) : (gradients(g, [[lossSum, seed]], [params]).grads[0] ?? g.zerosLike(params));
  if (cot !== 1) grad = g.mul(grad, 1 / cot);
  const backwardNodes = g.nodes.length - forwardNodes;

  g.output('loss_sum', lossSum);
  optimizerStep(g, grad, { params, m, v, gacc, apply, invCount, adam }, optim);

  const onnx = onDemandLowering(g, src, 'lathe_train_step', 'train graph');
  return {
    get model(): OnnxModel { return onnx.model(); },
    nodes: { forward: fwd.nodes, backward: backwardNodes, total: onnx.nodeCount() },
    byOp: onnx.byOp(),
    state: trainState(accumulate),
    fetch: ['loss_sum', 'grad_norm'],
    graph: g,
  };
}

/**
 * The optimizer end of a train step, shared by every train graph (SFT/pretraining here, preference
 * tuning in preference-graph.ts): accumulate the gradient; on the last micro-batch of an optimizer step
 * scale by invCount, clip by global norm, AdamW, and skip the update when the norm is not finite.
 * Outputs grad_norm, params_out, m_out, v_out, and gacc_out when there is an accumulator (`gacc` null:
 * the gradient is the step's whole sum, as gacc + grad with gacc = 0 is, bit for bit).
 */
export function optimizerStep(
  g: GraphBuilder, grad: Value,
  s: { params: Value; m: Value; v: Value; gacc: Value | null; apply: Value; invCount: Value; adam: Value },
  optim: OptimConfig,
): void {
  const { params, m, v, gacc, apply, invCount, adam } = s;
  // accumulate; at the optimizer step: mean over the step's items, global norm (one reduction), then clip,
  // AdamW and the non-finite guard as one op (nn/adamw-step.ts: one pass on the GPU backend, today's chain in ONNX)
  const gsum = gacc ? g.add(gacc, grad) : grad;
  const norm = g.sqrt(g.reduceSumSquare(g.mul(gsum, invCount), [0], false)); // ‖g‖₂ (scalar)
  const upd = adamwStep(g, { params, m, v, gsum, invCount, norm, apply, adam }, optim);
  g.output('grad_norm', norm);
  g.output('params_out', upd.p);
  g.output('m_out', upd.m);
  g.output('v_out', upd.v);
  if (gacc) g.output('gacc_out', upd.gacc);
}

/** Forward-only graph for evaluation and `lathe logits`: outputs logits [N, V] and the masked loss sum (each computed only when fetched on the GPU backend). */
export async function buildEvalGraph(
  cfg: ModelConfig, layout: WeightsLayout, src: WeightSource, lora: LoraLayout | null,
  shape: GraphShape,
): Promise<{ model: OnnxModel; nodes: number; graph: GraphBuilder }> {
  const g = new GraphBuilder();
  g.fused = !!shape.fused; // (Lathe's GPU backend: flash attention, fused cross-entropy)
  const { batch: B, seqLen: T } = shape;
  const N = B * T;
  const ids = g.input('ids', 'int64', [B, T]);
  const packing = packingInputs(g, shape);
  const newTokens = newTokenInputs(g, shape, lora);
  const targets = g.input('targets', 'int64', [N, 1]);
  const mask = g.input('mask', 'float32', [N, 1]);
  const params = lora ? g.input('params', 'float32', [lora.size]) : null;
  const fwd = await buildForward(g, cfg, layout, src, ids, { batch: B, seqLen: T, packing, newTokens }, lora, params);
  g.output('logits', fwd.logits);
  // fused graphs (GPU backend): LinearCrossEntropy from the head's input, so a run fetching only loss_sum
  // (validation, perplexity) never holds [N, V] logits; fetching logits computes them as before
  g.output('loss_sum', lossOf(g, fwd, targets, mask));
  const onnx = onDemandLowering(g, src, 'lathe_eval', 'eval graph');
  return {
    get model(): OnnxModel { return onnx.model(); },
    nodes: onnx.nodeCount(),
    graph: g,
  };
}

/**
 * The ONNX form of a built graph `g` (the CPU EP's): lowered now for plain graphs, and on first use for the GPU
 * backend's fused graphs (their ONNX form is each fused op's decomposition). A graph referencing bf16 weights in
 * place (WeightSource.bf16InPlace) runs on the GPU backend only and has no ONNX model: `model()` refuses it.
 * `nodeCount()` / `byOp()` count the ONNX nodes where lowered, else the graph's.
 */
export function onDemandLowering(g: GraphBuilder, src: WeightSource, name: string, what: string) {
  let lowered = src.bf16InPlace || g.fused ? null : lowerGraph(g, { name });
  return {
    model(): OnnxModel {
      if (src.bf16InPlace) throw new Error(`This ${what} references bf16 weights in place (WeightSource.bf16InPlace): it runs on the GPU backend only and has no ONNX model.`);
      lowered ??= lowerGraph(g, { name });
      return lowered.model;
    },
    nodeCount: (): number => lowered?.nodeCount ?? g.nodes.length,
    byOp: () => lowered?.byOp ?? g.countByOp(),
  };
}
