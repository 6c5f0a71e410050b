/**
 * The supported architecture families, and config.json -> ModelConfig dispatch.
 */
import { UserError } from '../../util/progress';
import type { ModelConfig } from './config';
import { decoderLayout, type WeightsLayout } from './layout';
import { llama } from './llama';
import { mistral } from './mistral';
import { qwen2 } from './qwen2';
import { qwen3 } from './qwen3';
import { smollm3 } from './smollm3';
import { gpt2, gpt2Layout } from './gpt2';
import { granite } from './granite';
import { olmo2 } from './olmo2';
import { gemma2, gemma3 } from './gemma';
import { phi3 } from './phi3';

export const FAMILIES = [llama, mistral, qwen2, qwen3, smollm3, gpt2, granite, olmo2, gemma2, gemma3, phi3] as const;

export const SUPPORTED_TEXT = 'Llama 2 and 3.x, TinyLlama, SmolLM2 (LlamaForCausalLM), Mistral and Mistral-Nemo, Qwen2/2.5, Qwen3, SmolLM3, '
  + 'Gemma 2, Gemma 3 text (Gemma3ForCausalLM), Phi-3/3.5 and Phi-4-mini, OLMo 2, Granite 3 and GPT-2';

/** Parses a config.json object. Unsupported architectures are refused by name. */
export function parseModelConfig(raw: unknown): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UserError('model-config-invalid', 'config.json is not a JSON object.', 'Download config.json again.');
  }
  const obj = raw as Record<string, unknown>;
  const archs = Array.isArray(obj.architectures) ? obj.architectures.filter((a): a is string => typeof a === 'string') : [];
  const modelType = typeof obj.model_type === 'string' ? obj.model_type : undefined;
  const fam = archs.length > 0
    ? FAMILIES.find((f) => f.architectures.includes(archs[0]!))
    : FAMILIES.find((f) => modelType !== undefined && f.modelTypes.includes(modelType));
  if (!fam) {
    const name = archs[0] ?? modelType ?? 'unknown';
    throw new UserError(
      'model-unsupported',
      `Lathe cannot fine-tune "${name}" models${modelType && archs[0] ? ` (model_type "${modelType}")` : ''}.`,
      `Supported: ${SUPPORTED_TEXT}. Choose a model of one of these architectures (config.json "architectures").`,
    );
  }
  return fam.parse(obj);
}

/** Expected tensors for a config; for GPT-2 `names` (the checkpoint's tensor names) picks the prefix. */
export function weightsLayout(cfg: ModelConfig, names?: Iterable<string>): WeightsLayout {
  if (cfg.family === 'gpt2') {
    let prefix = 'transformer.';
    if (names) {
      const set = new Set(names);
      if (!set.has('transformer.wte.weight') && set.has('wte.weight')) prefix = '';
    }
    return gpt2Layout(cfg, prefix);
  }
  return decoderLayout(cfg);
}
