/**
 * Llama 2, Llama 3.x (rope_scaling "llama3"), TinyLlama and SmolLM2 (both plain LlamaForCausalLM).
 * HF: RMSNorm (x * rsqrt(mean(x²) + eps)) * w, computed in f32; rotate-half RoPE; SwiGLU MLP;
 * optional attention_bias (q, k, v and o) and mlp_bias; optional explicit head_dim.
 */
import { ConfigReader, checkAttentionShape, parseRopeScaling, ropeTheta, storedDtype, type Family, type ModelConfig } from './config';

/** Fields every Llama-like config shares; families override what differs. */
export function parseLlamaLike(raw: Record<string, unknown>, family: Family, defaults: { theta: number; eps: number }): ModelConfig {
  const r = new ConfigReader(raw);
  const hidden = r.int('hidden_size');
  const heads = r.int('num_attention_heads');
  const layers = r.int('num_hidden_layers');
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') throw r.invalid('hidden_act', '"silu" for this architecture', act);
  const attentionBias = r.bool('attention_bias', false);
  const cfg: ModelConfig = {
    family,
    architecture: archName(raw, 'LlamaForCausalLM'),
    modelType: r.str('model_type', family),
    vocabSize: r.int('vocab_size'),
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: heads,
    numKvHeads: r.int('num_key_value_heads', heads),
    headDim: r.int('head_dim', Math.floor(hidden / heads)),
    intermediateSize: r.int('intermediate_size'),
    maxPositions: r.int('max_position_embeddings', 2048),
    norm: 'rms',
    normEps: r.num('rms_norm_eps', defaults.eps),
    activation: 'silu',
    gatedMlp: true,
    positions: 'rope',
    rope: { theta: ropeTheta(r, defaults.theta), scaling: parseRopeScaling(r) },
    ropeLayers: new Array<boolean>(layers).fill(true),
    qkvBias: attentionBias,
    oBias: attentionBias,
    mlpBias: r.bool('mlp_bias', false),
    qkNorm: false,
    qkNormScope: 'head',
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    slidingWindow: null,
    windowLayers: new Array<boolean>(layers).fill(true),
    localRope: null,
    normPlacement: 'pre',
    normUnitOffset: false,
    embedScale: 1,
    attnScale: 0, // set below from the head dim
    attnSoftcap: null,
    residualScale: 1,
    logitScale: 1,
    finalSoftcap: null,
    bosTokenId: r.optInt('bos_token_id'),
    eosTokenIds: r.intList('eos_token_id'),
    padTokenId: r.optInt('pad_token_id'),
    torchDtype: storedDtype(raw),
  };
  cfg.attnScale = 1 / Math.sqrt(cfg.headDim);
  if (!r.has('head_dim') && hidden % heads !== 0) throw r.invalid('hidden_size', `a multiple of num_attention_heads (${heads})`, hidden);
  checkAttentionShape(cfg, r);
  return cfg;
}

export function archName(raw: Record<string, unknown>, fallback: string): string {
  const a = raw.architectures;
  return Array.isArray(a) && typeof a[0] === 'string' ? a[0] : fallback;
}

export const llama = {
  family: 'llama' as const,
  architectures: ['LlamaForCausalLM'],
  modelTypes: ['llama'],
  parse(raw: Record<string, unknown>): ModelConfig {
    return parseLlamaLike(raw, 'llama', { theta: 10000, eps: 1e-6 });
  },
};
