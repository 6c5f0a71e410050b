/**
 * Granite 3 (GraniteForCausalLM): Llama's layers with four multipliers. HF: embeddings × embedding_multiplier;
 * attention scores scaled by attention_multiplier (instead of 1/√D); each attention and MLP output ×
 * residual_multiplier before its residual add; logits ÷ logits_scaling. attention_bias covers q, k, v and o.
 */
import { ConfigReader, type ModelConfig } from './config';
import { archName, parseLlamaLike } from './llama';

export const granite = {
  family: 'granite' as const,
  architectures: ['GraniteForCausalLM'],
  modelTypes: ['granite'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    const cfg = parseLlamaLike(raw, 'granite', { theta: 10000, eps: 1e-6 });
    cfg.architecture = archName(raw, 'GraniteForCausalLM');
    const positive = (key: string): number => {
      const v = r.num(key, 1);
      if (v <= 0) throw r.invalid(key, 'a positive number', v);
      return v;
    };
    cfg.embedScale = positive('embedding_multiplier');
    cfg.residualScale = positive('residual_multiplier');
    cfg.attnScale = positive('attention_multiplier');
    cfg.logitScale = 1 / positive('logits_scaling');
    return cfg;
  },
};
