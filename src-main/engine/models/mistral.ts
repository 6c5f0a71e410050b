/**
 * Mistral: Llama's layers without biases; `sliding_window` limits attention (v0.1: 4096; null from
 * v0.2). Training sequences no longer than the window see exactly full causal attention.
 */
import { ConfigReader, type ModelConfig } from './config';
import { archName, parseLlamaLike } from './llama';

export const mistral = {
  family: 'mistral' as const,
  architectures: ['MistralForCausalLM'],
  modelTypes: ['mistral'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    // Mistral has no attention_bias / mlp_bias fields: its projections never have biases.
    const cfg = parseLlamaLike({ ...raw, attention_bias: false, mlp_bias: false }, 'mistral', { theta: 10000, eps: 1e-6 });
    cfg.architecture = archName(raw, 'MistralForCausalLM');
    cfg.slidingWindow = r.optInt('sliding_window');
    return cfg;
  },
};
