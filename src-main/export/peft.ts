/**
 * LoRA adapters in PEFT's format (huggingface/peft `save_pretrained` of a LoraModel):
 *
 *   adapter_config.json         { peft_type: "LORA", task_type: "CAUSAL_LM", r, lora_alpha, target_modules, ... }
 *   adapter_model.safetensors   base_model.model.<module>.lora_A.weight  [r, in]
 *                               base_model.model.<module>.lora_B.weight  [out, r]
 *
 * <module> is the module path inside the transformers model (GPT-2: always "transformer.h.N...", even
 * when the base checkpoint stores "h.N..." keys). PEFT matches target_modules by suffix (a name equals the
 * module path or ends with "." + name), so the short names are written when they select exactly the
 * adapted layers; otherwise (GPT-2's two "c_proj"s with attention-only targets) a longer suffix is used.
 * Resized embeddings go in as full matrices under the base model's own names
 * (base_model.model.model.embed_tokens.weight, ...), as PEFT's save_embedding_layers does.
 */
import type { ModelConfig } from '../engine/models/config';
import type { WeightsLayout } from '../engine/models/layout';
import { buildLoraLayout, type LoraLayout } from '../engine/llm/lora';
import { peftModulePath } from '../engine/llm/peft-adapter';

export { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, peftModulePath, peftToLora, readPeftAdapter, type PeftAdapter } from '../engine/llm/peft-adapter';
const PREFIX = 'base_model.model.';

export function peftKeys(cfg: ModelConfig, module: string): { a: string; b: string } {
  const p = PREFIX + peftModulePath(cfg, module);
  return { a: `${p}.lora_A.weight`, b: `${p}.lora_B.weight` };
}

/** Shortest suffixes (by dot-separated parts) that select exactly the adapted modules of the model. */
export function targetModuleNames(cfg: ModelConfig, layout: WeightsLayout, lora: LoraLayout): string[] {
  const all = buildLoraLayout(cfg, layout, { rank: 1, alpha: 1, dropout: 0, rslora: false, targets: 'all-linear', seed: 0 })
    .modules.map((m) => peftModulePath(cfg, m.module));
  const chosen = new Set(lora.modules.map((m) => peftModulePath(cfg, m.module)));
  const matches = (name: string, suffix: string) => name === suffix || name.endsWith(`.${suffix}`);
  const names = new Set<string>();
  for (const mod of chosen) {
    const parts = mod.split('.');
    // Take the shortest suffix of this module's path that matches no module outside the chosen set.
    for (let k = 1; k <= parts.length; k++) {
      const suffix = parts.slice(-k).join('.');
      if (all.every((m) => chosen.has(m) || !matches(m, suffix))) { names.add(suffix); break; }
    }
  }
  return [...names].sort();
}

export function peftAdapterConfig(cfg: ModelConfig, layout: WeightsLayout, lora: LoraLayout,
  opts: { alpha: number; rslora: boolean; dropout: number; baseModel: string }): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModel,
    r: lora.rank,
    lora_alpha: opts.alpha,
    lora_dropout: opts.dropout,
    target_modules: targetModuleNames(cfg, layout, lora),
    use_rslora: opts.rslora,
    // GPT-2's Conv1D stores weights [in, out]; PEFT transposes the delta when merging.
    fan_in_fan_out: cfg.family === 'gpt2',
    bias: 'none',
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_dora: false,
    revision: null,
    auto_mapping: null,
  };
}
