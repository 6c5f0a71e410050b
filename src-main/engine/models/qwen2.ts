/**
 * Qwen2 / Qwen2.5: Llama's layers with biases on q, k and v (never on o, never in the MLP; the config
 * has no field for it). Sliding window only when use_sliding_window is true.
 */
import { ConfigReader, type ModelConfig } from './config';
import { archName, parseLlamaLike } from './llama';

export const qwen2 = {
  family: 'qwen2' as const,
  architectures: ['Qwen2ForCausalLM'],
  modelTypes: ['qwen2'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    const cfg = parseLlamaLike({ ...raw, attention_bias: false, mlp_bias: false }, 'qwen2', { theta: 10000, eps: 1e-6 });
    cfg.architecture = archName(raw, 'Qwen2ForCausalLM');
    cfg.qkvBias = true;
    cfg.oBias = false;
    cfg.slidingWindow = r.bool('use_sliding_window', false) ? r.optInt('sliding_window') : null;
    return cfg;
  },
};
