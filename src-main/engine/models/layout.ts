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
  attnNorm: NormWeights;
  /** Separate projections (Llama family) ... */
  q: LinearWeights | null;
  k: LinearWeights | null;
  v: LinearWeights | null;
  /** ... or one fused [C, 3C] projection, q|k|v along the output (GPT-2 c_attn). */
  qkv: LinearWeights | null;
  o: LinearWeights;
  qNorm: NormWeights | null;
  kNorm: NormWeights | null;
  mlpNorm: NormWeights;
  gate: LinearWeights | null;
  up: LinearWeights;
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

/** Llama / Mistral / Qwen2 / Qwen3 / SmolLM3 share one layout, differing in biases and q/k norms. */
export function decoderLayout(cfg: ModelConfig): WeightsLayout {
  const { vocabSize: V, hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: F } = cfg;
  const shapes = new Map<string, number[]>();
  const put = (name: string | null, shape: number[]): void => { if (name) shapes.set(name, shape); };
  const layers: LayerLayout[] = [];
  put('model.embed_tokens.weight', [V, C]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const l: LayerLayout = {
      attnNorm: { weight: `${p}.input_layernorm.weight`, bias: null },
      q: lin(`${p}.self_attn.q_proj`, cfg.qkvBias),
      k: lin(`${p}.self_attn.k_proj`, cfg.qkvBias),
      v: lin(`${p}.self_attn.v_proj`, cfg.qkvBias),
      qkv: null,
      o: lin(`${p}.self_attn.o_proj`, cfg.oBias),
      qNorm: cfg.qkNorm ? { weight: `${p}.self_attn.q_norm.weight`, bias: null } : null,
      kNorm: cfg.qkNorm ? { weight: `${p}.self_attn.k_norm.weight`, bias: null } : null,
      mlpNorm: { weight: `${p}.post_attention_layernorm.weight`, bias: null },
      gate: lin(`${p}.mlp.gate_proj`, cfg.mlpBias),
      up: lin(`${p}.mlp.up_proj`, cfg.mlpBias),
      down: lin(`${p}.mlp.down_proj`, cfg.mlpBias),
    };
    put(l.attnNorm.weight, [C]);
    put(l.q!.weight, [H * D, C]); put(l.q!.bias, [H * D]);
    put(l.k!.weight, [K * D, C]); put(l.k!.bias, [K * D]);
    put(l.v!.weight, [K * D, C]); put(l.v!.bias, [K * D]);
    put(l.o.weight, [C, H * D]); put(l.o.bias, [C]);
    put(l.qNorm?.weight ?? null, [D]);
    put(l.kNorm?.weight ?? null, [D]);
    put(l.mlpNorm.weight, [C]);
    put(l.gate!.weight, [F, C]); put(l.gate!.bias, [F]);
    put(l.up.weight, [F, C]); put(l.up.bias, [F]);
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
