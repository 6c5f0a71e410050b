/**
 * The KV-cache step graph: Tc new tokens at positions [p, p + Tc) in, logits of one chosen row and the
 * updated caches out. The Generator builds it with a symbolic Tc ('dynamic'): one session runs prompt pieces
 * (Tc = piece length) and decode steps (Tc = 1). A fixed Tc works too (Tc = 1 drops the `pick` input).
 *
 * Dimension letters as in llm/forward.ts: C hidden, V vocab, H heads, K kv heads, G = H/K, D head dim,
 * plus Tc tokens in this step and S the cache capacity (fixed, so the graph and its state keep one shape).
 *
 * Choices made for the EPs:
 * - Fixed-capacity caches k{i}/v{i} [1, K, S, D] are graph inputs and outputs with the same shape, so the
 *   runtime can keep them on the GPU (WebGPU 'gpu-buffer' outputs fed back as inputs).
 * - Everything positional is host-computed float input, no int64 arithmetic in the graph (WebGPU runs int64
 *   math on the CPU): `write` [S, Tc] one-hot places the new keys (cache·keep + write·k_new, one MatMul),
 *   `mask` [G·Tc, S] additive (causal over absolute positions, sliding window), cos/sin [Tc, D] for RoPE,
 *   `pick` [1, Tc] one-hot selects the row whose logits come out (the lm_head runs on one row only).
 * - GPT-2's learned positions are a Gather of wpe by int64 `pos` [Tc] (indices only, no arithmetic).
 * - LoRA stays unmerged: the flat f32 `params` vector is an input, so generations mid-training use the
 *   current adapter without merging; without a LoRA layout the graph is the plain (merged/exported) model.
 */
import { GraphBuilder, type Value } from '../graph/graph';
import type { Dim } from '../graph/types';
import { lowerGraph } from '../backends/onnx/lower';
import type { OnnxModel } from '../onnx/spec';
import type { ModelConfig } from '../models/config';
import { ropeCosSin, type RopeParams } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import {
  attentionScores, baseWeight, finishLogits, isWindowLayer, layerRope, linear, mlpResidual, norm, qkvHeads, residualAdd, rope, ropeRot,
  scaleEmbedding, type Ctx, type WeightSource,
} from '../llm/forward';
import type { LoraLayout } from '../llm/lora';

export interface StepGraphShape {
  /**
   * Tc: tokens per step (1 for decode), or 'dynamic': a symbolic T, so ONE session serves prefill (T = the
   * prompt piece) and decode (T = 1) and the weights are loaded once.
   */
  chunk: number | 'dynamic';
  /** S: cache capacity in positions. */
  capacity: number;
  /**
   * For Lathe's GPU backend (engine/backends/webgpu): `params` is also an output (`params_out`, the input
   * itself) so the adapter is a resident state slot written once per setAdapter, not fed every token; the
   * ONNX model is lowered only when asked for (bf16 weights read in place have no ONNX form).
   */
  gpu?: boolean;
}

export interface StepGraph {
  model: OnnxModel;
  /** The IR graph (what the GPU backend plans). */
  graph: GraphBuilder;
  shape: StepGraphShape;
  /** Cache slots: graph input name -> output name, [1, K, S, D] f32 each. */
  cache: { input: string; output: string }[];
  /** Per-step inputs the host feeds (besides caches and params). */
  feeds: string[];
  nodes: number;
}

export async function buildStepGraph(
  cfg: ModelConfig, layout: WeightsLayout, src: WeightSource, lora: LoraLayout | null, shape: StepGraphShape,
): Promise<StepGraph> {
  const g = new GraphBuilder();
  const { capacity: S } = shape;
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D } = cfg;
  const G = H / K;
  const Tc: Dim = shape.chunk === 'dynamic' ? 'T' : shape.chunk;
  if (shape.gpu && typeof Tc !== 'number') throw new Error('buildStepGraph: a graph for the GPU backend has a fixed token count.');
  const GTc: Dim = typeof Tc === 'number' ? G * Tc : G === 1 ? Tc : `${G}*${Tc}`;

  const ids = g.input('ids', 'int64', [1, Tc]);
  const feeds = ['ids'];
  let pos: Value | null = null;
  // cos/sin inputs per RoPE the layers use (cos/sin: cfg.rope; cosLocal/sinLocal: Gemma 3's local RoPE)
  const ropeIn = new Map<RopeParams, { cos: Value; sin: Value }>();
  for (let i = 0; i < cfg.numLayers; i++) {
    const params = cfg.ropeLayers[i] ? layerRope(cfg, i) : null;
    if (!params || ropeIn.has(params)) continue;
    const sfx = params === cfg.rope ? '' : 'Local';
    ropeIn.set(params, { cos: g.input(`cos${sfx}`, 'float32', [Tc, D]), sin: g.input(`sin${sfx}`, 'float32', [Tc, D]) });
    feeds.push(`cos${sfx}`, `sin${sfx}`);
  }
  if (layout.positions) {
    pos = g.input('pos', 'int64', [Tc]);
    feeds.push('pos');
  }
  const write = g.input('write', 'float32', [S, Tc]);
  const keep = g.input('keep', 'float32', [S, 1]);
  feeds.push('write', 'keep');
  // additive masks: 'mask' (causal) for global layers, 'maskWindow' for sliding-window layers
  const masks = new Map<string, Value>();
  for (let i = 0; i < cfg.numLayers; i++) {
    const name = isWindowLayer(cfg, i) ? 'maskWindow' : 'mask';
    if (!masks.has(name)) { masks.set(name, g.input(name, 'float32', [GTc, S])); feeds.push(name); }
    // GPU: the cache part masks the positions this step writes (s >= start); the new keys have their own mask
    if (shape.gpu && !masks.has(`${name}New`)) { masks.set(`${name}New`, g.input(`${name}New`, 'float32', [GTc, Tc])); feeds.push(`${name}New`); }
  }
  // decode has one row already; prefill picks the prompt's last real row
  const pick = Tc !== 1 ? g.input('pick', 'float32', [1, Tc]) : null;
  if (pick) feeds.push('pick');
  const params = lora ? g.input('params', 'float32', [lora.size]) : null;
  // trainable rows for new tokens (extended tokenizer): ids hold base-clamped ids, newIdx/isNew pick the rows
  const nr = lora?.newRows ?? null;
  const newIdx = nr ? g.input('newIdx', 'int64', [1, Tc]) : null;
  const isNew = nr ? g.input('isNew', 'float32', [Tc, 1]) : null;
  if (nr) feeds.push('newIdx', 'isNew');

  const loraTensors = new Map<string, { a: Value; b: Value }>();
  let newEmbed: Value | null = null, newHead: Value | null = null;
  if (lora && params) {
    // the same cut as buildForward: A [r, in], B [out, r] per module, in layout order
    const sizes: number[] = [];
    for (const m of lora.modules) sizes.push(lora.rank * m.inFeatures, m.outFeatures * lora.rank);
    if (nr) sizes.push(nr.ids.length * nr.hidden, ...(nr.headOffset !== null ? [nr.ids.length * nr.hidden] : []));
    const parts = g.split(params, sizes, 0);
    lora.modules.forEach((m, i) => {
      loraTensors.set(`${m.layer}:${m.role}`, {
        a: g.reshape(parts[2 * i]!, [lora.rank, m.inFeatures]),
        b: g.reshape(parts[2 * i + 1]!, [m.outFeatures, lora.rank]),
      });
    });
    if (nr) {
      const k = 2 * lora.modules.length, r = nr.ids.length;
      newEmbed = g.reshape(parts[k]!, [r, nr.hidden]); // [r, C]
      newHead = nr.headOffset !== null ? g.reshape(parts[k + 1]!, [r, nr.hidden]) : newEmbed;
    }
  }
  const c: Ctx = { g, cfg, src, lora, loraTensors, N: typeof Tc === 'number' ? Tc : -1 };

  // x [Tc, C]
  const wte = await baseWeight(g, src, layout.embed);
  let x = g.reshape(g.gather(wte, ids), [Tc, C]);
  if (newEmbed && newIdx && isNew) {
    // x + isNew · (rows[newIdx] − x), as buildForward
    x = g.add(x, g.mul(isNew, g.sub(g.reshape(g.gather(newEmbed, newIdx), [Tc, C]), x)));
  }
  x = scaleEmbedding(c, x);
  if (layout.positions && pos) x = g.add(x, g.gather(await baseWeight(g, src, layout.positions), pos));
  const rot = cfg.rope ? ropeRot(g, cfg) : null; // the rotate-half matrix R [D, D]
  const cache: { input: string; output: string }[] = [];

  for (let i = 0; i < cfg.numLayers; i++) {
    const L = layout.layers[i]!;
    const { q4, k4, v } = await qkvHeads(c, L.attnNorm ? await norm(c, x, L.attnNorm) : x, L, i, 1, Tc);
    // q [1, Tc, K, G, D] -> [1, K, G, Tc, D]; k, v [1, Tc, K, D] -> [1, K, Tc, D]
    let qg = g.transpose(g.reshape(q4, [1, Tc, K, G, D]), [0, 2, 3, 1, 4]);
    let kt = g.transpose(k4, [0, 2, 1, 3]);
    const vt = g.transpose(g.reshape(v, [1, Tc, K, D]), [0, 2, 1, 3]);
    const params = cfg.ropeLayers[i] ? layerRope(cfg, i) : null;
    const cs = params ? ropeIn.get(params) : undefined;
    if (rot && cs) {
      const t = { cos: cs.cos, sin: cs.sin, rot };
      qg = rope(g, qg, t); // cos/sin [Tc, D] broadcast over heads
      kt = rope(g, kt, t);
    }
    const kIn = g.input(`k${i}`, 'float32', [1, K, S, D]);
    const vIn = g.input(`v${i}`, 'float32', [1, K, S, D]);
    const maskName = isWindowLayer(cfg, i) ? 'maskWindow' : 'mask';
    if (shape.gpu) {
      // GPU backend: the cache is read as it is (k{i}_out = the input: nothing rewritten) and the new rows come
      // out as k{i}_new / v{i}_new [1, K, Tc, D], which the program copies into the cache rows after the step
      // (gpu-step.ts). Attention = softmax over [old keys | new keys], o = p_old·v_cache + p_new·v_new.
      g.output(`k${i}_out`, kIn);
      g.output(`v${i}_out`, vIn);
      g.output(`k${i}_new`, kt);
      g.output(`v${i}_new`, vt);
      cache.push({ input: `k${i}`, output: `k${i}_out` }, { input: `v${i}`, output: `v${i}_out` });
      const qf = g.reshape(qg, [1, K, GTc, D]);
      const sOld = attentionScores(c, qf, g.transpose(kIn, [0, 1, 3, 2]), masks.get(maskName)!);
      const sNew = attentionScores(c, qf, g.transpose(kt, [0, 1, 3, 2]), masks.get(`${maskName}New`)!);
      const [pOld, pNew] = g.split(g.softmax(g.concat([sOld, sNew], 3), -1), [S, typeof Tc === 'number' ? Tc : -1], 3);
      const att = g.add(g.matmul(pOld!, vIn), g.matmul(pNew!, vt)); // [1, K, G·Tc, D]
      const merged = g.reshape(g.transpose(g.reshape(att, [1, K, G, Tc, D]), [0, 3, 1, 2, 4]), [Tc, H * D]);
      x = await residualAdd(c, x, await linear(c, merged, L.o, i, 'o'), L.postAttnNorm);
      x = await mlpResidual(c, x, L, i);
      continue;
    }
    // caches [1, K, S, D]: old rows kept, new rows placed: cache·keep + write [S, Tc] · new [1, K, Tc, D]
    const kc = g.add(g.mul(kIn, keep), g.matmul(write, kt));
    const vc = g.add(g.mul(vIn, keep), g.matmul(write, vt));
    g.output(`k${i}_out`, kc);
    g.output(`v${i}_out`, vc);
    cache.push({ input: `k${i}`, output: `k${i}_out` }, { input: `v${i}`, output: `v${i}_out` });
    // scores [1, K, G·Tc, S] = q · kᵀ · scale (soft-capped) + mask
    const qf = g.reshape(qg, [1, K, GTc, D]);
    const mask = masks.get(maskName)!;
    const att = g.matmul(g.softmax(attentionScores(c, qf, g.transpose(kc, [0, 1, 3, 2]), mask), -1), vc); // [1, K, G·Tc, D]
    const merged = g.reshape(g.transpose(g.reshape(att, [1, K, G, Tc, D]), [0, 3, 1, 2, 4]), [Tc, H * D]);
    x = await residualAdd(c, x, await linear(c, merged, L.o, i, 'o'), L.postAttnNorm);

    x = await mlpResidual(c, x, L, i);
  }

  // one row [1, C] -> norm -> logits [1, V]
  const row = pick ? g.gemm(pick, x) : x;
  const xn = await norm(c, row, layout.finalNorm);
  const head = await baseWeight(g, src, layout.lmHead ?? layout.embed);
  let logits = g.gemm(xn, head, null, { transB: true }); // [1, V]
  if (nr && newHead) logits = g.concat([logits, g.gemm(xn, newHead, null, { transB: true })], 1);
  logits = finishLogits(c, logits); // (scaled / soft-capped before any column mask)
  if (nr && newHead) {
    // [1, V + r]: the new rows' columns appended; base columns of re-used ids (< V) masked out
    const V = nr.baseRows, reused = nr.ids.filter((id) => id < V);
    if (reused.length) {
      const colMask = new Float32Array(V + nr.ids.length);
      for (const id of reused) colMask[id] = -1e9;
      logits = g.add(logits, g.constant(colMask, 'float32', [V + nr.ids.length]));
    }
  }
  g.output('logits', logits);
  if (shape.gpu && params) g.output('params_out', params);
  const name = Tc === 1 ? 'lathe_decode' : 'lathe_step';
  let lowered = shape.gpu ? null : lowerGraph(g, { name });
  return {
    get model(): OnnxModel {
      lowered ??= lowerGraph(g, { name });
      return lowered.model;
    },
    graph: g, shape, cache, feeds, nodes: lowered?.nodeCount ?? g.nodes.length,
  };
}

/**
 * cos/sin rows [n, D] for absolute positions, computed like forward.ts's tables (config.ts ropeCosSin);
 * `params` is cfg.rope or cfg.localRope. Longrope picks its factors by the longest position, as HF does.
 */
export function ropeRows(cfg: ModelConfig, params: RopeParams, positions: ArrayLike<number>, rows = positions.length): { cos: Float32Array; sin: Float32Array } {
  let last = 0;
  for (let i = 0; i < positions.length; i++) last = Math.max(last, positions[i]!);
  return ropeCosSin(cfg, params, positions, last + 1, rows);
}
