/**
 * GPT-2: learned positions, pre-LayerNorm (with bias), fused q|k|v projection, gelu_new MLP, biases
 * everywhere, lm_head always tied to wte. Its projections are Conv1D: weights stored [in, out], the
 * transpose of nn.Linear. Checkpoints name tensors "transformer.h.0..." (save_pretrained today) or
 * "h.0..." (the original OpenAI conversion); both load. "attn.bias"/"attn.masked_bias" are mask buffers.
 */
import { ConfigReader, checkAttentionShape, storedDtype, type ModelConfig } from './config';
import { archName } from './llama';
import type { LinearWeights, WeightsLayout } from './layout';

export const gpt2 = {
  family: 'gpt2' as const,
  architectures: ['GPT2LMHeadModel'],
  modelTypes: ['gpt2'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    const C = r.int('n_embd', 768);
    const H = r.int('n_head', 12);
    const L = r.int('n_layer', 12);
    const act = r.str('activation_function', 'gelu_new');
    if (act !== 'gelu_new' && act !== 'gelu' && act !== 'gelu_pytorch_tanh' && act !== 'relu') {
      throw r.invalid('activation_function', 'gelu_new, gelu, gelu_pytorch_tanh or relu', act);
    }
    if (C % H !== 0) throw r.invalid('n_embd', `a multiple of n_head (${H})`, C);
    if (r.bool('scale_attn_by_inverse_layer_idx', false)) throw r.invalid('scale_attn_by_inverse_layer_idx', 'false (not supported)', true);
    if (!r.bool('scale_attn_weights', true)) throw r.invalid('scale_attn_weights', 'true (unscaled attention is not supported)', false);
    const cfg: ModelConfig = {
      family: 'gpt2',
      architecture: archName(raw, 'GPT2LMHeadModel'),
      modelType: r.str('model_type', 'gpt2'),
      vocabSize: r.int('vocab_size', 50257),
      hiddenSize: C,
      numLayers: L,
      numHeads: H,
      numKvHeads: H,
      headDim: C / H,
      intermediateSize: r.int('n_inner', 4 * C),
      maxPositions: r.int('n_positions', 1024),
      norm: 'layer',
      normEps: r.num('layer_norm_epsilon', 1e-5),
      activation: act,
      gatedMlp: false,
      positions: 'learned',
      rope: null,
      ropeLayers: new Array<boolean>(L).fill(false),
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      qkNorm: false,
      qkNormScope: 'head',
      tieWordEmbeddings: true, // GPT2LMHeadModel always ties lm_head to wte
      slidingWindow: null,
      windowLayers: new Array<boolean>(L).fill(false),
      localRope: null,
      normPlacement: 'pre',
      normUnitOffset: false,
      embedScale: 1,
      attnScale: 1 / Math.sqrt(C / H),
      attnSoftcap: null,
      residualScale: 1,
      logitScale: 1,
      finalSoftcap: null,
      bosTokenId: r.optInt('bos_token_id'),
      eosTokenIds: r.intList('eos_token_id'),
      padTokenId: r.optInt('pad_token_id'),
      torchDtype: storedDtype(raw),
    };
    checkAttentionShape(cfg, r);
    return cfg;
  },
};

/** `prefix` is "transformer." or "" depending on how the checkpoint was saved. */
export function gpt2Layout(cfg: ModelConfig, prefix = 'transformer.'): WeightsLayout {
  const { vocabSize: V, hiddenSize: C, intermediateSize: F, maxPositions: P } = cfg;
  const shapes = new Map<string, number[]>();
  const conv = (name: string, inDim: number, outDim: number): LinearWeights => {
    shapes.set(`${name}.weight`, [inDim, outDim]); // Conv1D: [in, out]
    shapes.set(`${name}.bias`, [outDim]);
    return { weight: `${name}.weight`, bias: `${name}.bias`, inOut: true };
  };
  const ln = (name: string): { weight: string; bias: string } => {
    shapes.set(`${name}.weight`, [C]);
    shapes.set(`${name}.bias`, [C]);
    return { weight: `${name}.weight`, bias: `${name}.bias` };
  };
  shapes.set(`${prefix}wte.weight`, [V, C]);
  shapes.set(`${prefix}wpe.weight`, [P, C]);
  const layers = Array.from({ length: cfg.numLayers }, (_, i) => {
    const p = `${prefix}h.${i}`;
    return {
      attnNorm: ln(`${p}.ln_1`),
      q: null, k: null, v: null,
      qkv: conv(`${p}.attn.c_attn`, C, 3 * C),
      o: conv(`${p}.attn.c_proj`, C, C),
      qNorm: null, kNorm: null,
      postAttnNorm: null,
      mlpNorm: ln(`${p}.ln_2`),
      postMlpNorm: null,
      gate: null,
      gateUp: null,
      up: conv(`${p}.mlp.c_fc`, C, F),
      down: conv(`${p}.mlp.c_proj`, F, C),
    };
  });
  return {
    embed: `${prefix}wte.weight`,
    positions: `${prefix}wpe.weight`,
    layers,
    finalNorm: ln(`${prefix}ln_f`),
    lmHead: null,
    shapes,
    ignorable: [/\.attn\.(masked_)?bias$/, /^lm_head\.weight$/],
  };
}
