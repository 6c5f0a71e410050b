/**
 * Qwen3 (dense): Llama's layers plus an RMSNorm over the head dim on q and on k (per head, after the
 * projection, before RoPE); attention_bias (default false) covers q, k, v and o; head_dim is explicit
 * and need not equal hidden_size / num_attention_heads.
 */
import { ConfigReader, type ModelConfig } from './config';
import { archName, parseLlamaLike } from './llama';

export const qwen3 = {
  family: 'qwen3' as const,
  architectures: ['Qwen3ForCausalLM'],
  modelTypes: ['qwen3'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    const cfg = parseLlamaLike({ ...raw, mlp_bias: false }, 'qwen3', { theta: 10000, eps: 1e-6 });
    cfg.architecture = archName(raw, 'Qwen3ForCausalLM');
    cfg.qkNorm = true;
    cfg.slidingWindow = r.bool('use_sliding_window', false) ? r.optInt('sliding_window') : null;
    return cfg;
  },
};
