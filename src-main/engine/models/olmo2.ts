/**
 * OLMo 2 (Olmo2ForCausalLM): Llama's projections with the norms moved after the sub-blocks. HF: no input
 * norm; h = x + post_attention_layernorm(attn(x)), then h + post_feedforward_layernorm(mlp(h)); q_norm and
 * k_norm are RMSNorms over the whole q [H·D] and k [K·D] projections (not per head), before RoPE.
 */
import type { ModelConfig } from './config';
import { archName, parseLlamaLike } from './llama';

export const olmo2 = {
  family: 'olmo2' as const,
  architectures: ['Olmo2ForCausalLM'],
  modelTypes: ['olmo2'],
  parse(raw: Record<string, unknown>): ModelConfig {
    // Olmo2MLP has no biases; Olmo2Config's rms_norm_eps defaults to 1e-5.
    const cfg = parseLlamaLike({ ...raw, mlp_bias: false }, 'olmo2', { theta: 10000, eps: 1e-5 });
    cfg.architecture = archName(raw, 'Olmo2ForCausalLM');
    cfg.normPlacement = 'post';
    cfg.qkNorm = true;
    cfg.qkNormScope = 'all';
    return cfg;
  },
};
