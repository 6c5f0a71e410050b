/**
 * Where each weight of a model lives (tensor names) and what shape it must have, per architecture.
 * The graph builder reads weights by role (layers[i].q.weight) instead of spelling HF names.
 */
import type { ModelConfig } from './config';

export interface LinearWeights {
  weight: string;
  bias: string | null;
  /** false: stored [out, in] (nn.Linear); true: stored [in, out] (GPT-2 Conv1D), transpose on use. */
  inOut: boolean;
}

export interface NormWeights {
  weight: string;
  bias: string | null; // LayerNorm only
}

export interface LayerLayout {
  /** Norm of the block input before attention (null for OLMo 2's post-norm blocks). */
  attnNorm: NormWeights | null;
  /** Separate projections (Llama family) ... */
  q: LinearWeights | null;
  k: LinearWeights | null;
  v: LinearWeights | null;
  /** ... or one fused projection, q|k|v along the output (GPT-2 c_attn [C, 3C], Phi-3 qkv_proj [(H+2K)·D, C]). */
  qkv: LinearWeights | null;
  o: LinearWeights;
  qNorm: NormWeights | null;
  kNorm: NormWeights | null;
  /** Norm of the attention output before the residual add (Gemma 2/3, OLMo 2). */
  postAttnNorm: NormWeights | null;
  /** Norm before the MLP (null for OLMo 2). */
  mlpNorm: NormWeights | null;
  /** Norm of the MLP output before the residual add (Gemma 2/3, OLMo 2). */
  postMlpNorm: NormWeights | null;
  gate: LinearWeights | null;
  up: LinearWeights | null;
  /** Phi-3's fused [2F, C] gate|up projection (gate the first half), instead of gate and up. */
  gateUp: LinearWeights | null;
  down: LinearWeights;
}

export interface WeightsLayout {
  embed: string; // [V, C]
  positions: string | null; // [P, C] learned positions (GPT-2)
  layers: LayerLayout[];
  finalNorm: NormWeights;
  /** null when tied to `embed` (a checkpoint may still carry a copy; it is then ignored). */
  lmHead: string | null;
  /** Every expected tensor and its shape. */
  shapes: Map<string, number[]>;
  /** Tensors that may appear in checkpoints but are not weights (buffers such as rotary inv_freq). */
  ignorable: RegExp[];
}

const lin = (weight: string, bias: boolean, inOut = false): LinearWeights => ({
  weight: `${weight}.weight`, bias: bias ? `${weight}.bias` : null, inOut,
});

/**
 * The Llama-style families share one layout, differing in biases, q/k norms, where the norms sit
 * (ModelConfig.normPlacement) and Phi-3's fused qkv_proj / gate_up_proj.
 */
export function decoderLayout(cfg: ModelConfig): WeightsLayout {
  const { vocabSize: V, hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: F } = cfg;
  const shapes = new Map<string, number[]>();
  const put = (name: string | null | undefined, shape: number[]): void => { if (name) shapes.set(name, shape); };
  const fused = cfg.family === 'phi3';
  const layers: LayerLayout[] = [];
  put('model.embed_tokens.weight', [V, C]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const nw = (name: string): NormWeights => ({ weight: `${p}.${name}.weight`, bias: null });
    const at = (proj: string): LinearWeights | null => (fused ? null : lin(`${p}.self_attn.${proj}`, cfg.qkvBias));
    const mlp = (proj: string): LinearWeights | null => (fused ? null : lin(`${p}.mlp.${proj}`, cfg.mlpBias));
    const place = cfg.normPlacement;
    const l: LayerLayout = {
      attnNorm: place === 'post' ? null : nw('input_layernorm'),
      q: at('q_proj'), k: at('k_proj'), v: at('v_proj'),
      qkv: fused ? lin(`${p}.self_attn.qkv_proj`, cfg.qkvBias) : null,
      o: lin(`${p}.self_attn.o_proj`, cfg.oBias),
      qNorm: cfg.qkNorm ? nw('self_attn.q_norm') : null,
      kNorm: cfg.qkNorm ? nw('self_attn.k_norm') : null,
      postAttnNorm: place === 'pre' ? null : nw('post_attention_layernorm'),
      mlpNorm: place === 'pre' ? nw('post_attention_layernorm') : place === 'sandwich' ? nw('pre_feedforward_layernorm') : null,
      postMlpNorm: place === 'pre' ? null : nw('post_feedforward_layernorm'),
      gate: mlp('gate_proj'), up: mlp('up_proj'),
      gateUp: fused ? lin(`${p}.mlp.gate_up_proj`, cfg.mlpBias) : null,
      down: lin(`${p}.mlp.down_proj`, cfg.mlpBias),
    };
    put(l.attnNorm?.weight, [C]);
    put(l.q?.weight, [H * D, C]); put(l.q?.bias, [H * D]);
    put(l.k?.weight, [K * D, C]); put(l.k?.bias, [K * D]);
    put(l.v?.weight, [K * D, C]); put(l.v?.bias, [K * D]);
    put(l.qkv?.weight, [(H + 2 * K) * D, C]); put(l.qkv?.bias, [(H + 2 * K) * D]);
    put(l.o.weight, [C, H * D]); put(l.o.bias, [C]);
    put(l.qNorm?.weight, [cfg.qkNormScope === 'all' ? H * D : D]);
    put(l.kNorm?.weight, [cfg.qkNormScope === 'all' ? K * D : D]);
    put(l.postAttnNorm?.weight, [C]);
    put(l.mlpNorm?.weight, [C]);
    put(l.postMlpNorm?.weight, [C]);
    put(l.gate?.weight, [F, C]); put(l.gate?.bias, [F]);
    put(l.up?.weight, [F, C]); put(l.up?.bias, [F]);
    put(l.gateUp?.weight, [2 * F, C]); put(l.gateUp?.bias, [2 * F]);
    put(l.down.weight, [C, F]); put(l.down.bias, [C]);
    layers.push(l);
  }
  put('model.norm.weight', [C]);
  const lmHead = cfg.tieWordEmbeddings ? null : 'lm_head.weight';
  put(lmHead, [V, C]);
  return {
    embed: 'model.embed_tokens.weight',
    positions: null,
    layers,
    finalNorm: { weight: 'model.norm.weight', bias: null },
    lmHead,
    shapes,
    ignorable: [/\.rotary_emb\.inv_freq$/, ...(cfg.tieWordEmbeddings ? [/^lm_head\.weight$/] : [])],
  };
}
