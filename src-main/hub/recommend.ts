/**
 * Starting models by the memory the user has, and "does it fit" in plain words for any model. The fit
 * comes from the memory estimator (engine/memory) with a modest first run: batch 1, 1024-token blocks,
 * LoRA rank 16 on every linear layer; tried as plain LoRA, then QLoRA, then QLoRA with recomputation.
 * The recommended models' configs are written out here (their public config.json numbers) so the list
 * needs no network; a search result is judged by its parameter count against the nearest of them.
 */
import { parseModelConfig, type ModelConfig } from '../engine/models';
import { estimateMemory, formatBytes, type MemoryEp, type MemoryPlan } from '../engine/memory/estimate';

export interface Fit {
  /** Fits at all (possibly with QLoRA or recomputation). */
  fits: boolean;
  /** "fits in your 24.0 GB: yes, with QLoRA". */
  words: string;
  /** What it needs: 'lora' | 'qlora' | 'qlora-recompute', or null when it does not fit. */
  method: 'lora' | 'qlora' | 'qlora-recompute' | null;
  /** Estimated bytes for the method chosen (or the smallest way, when nothing fits). */
  bytes: number;
}

export interface Recommended {
  repo: string;
  label: string;
  parameters: number;
  /** Approximate download (bf16 weights). */
  downloadBytes: number;
  gated: boolean;
  note: string;
}

const llama3Rope = { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };

/** Public config.json numbers of the recommended models, smallest first. */
const MODELS: { repo: string; label: string; gated: boolean; note: string; config: Record<string, unknown> }[] = [
  { repo: 'HuggingFaceTB/SmolLM2-135M-Instruct', label: 'SmolLM2 135M Instruct', gated: false, note: 'Tiny and quick: good for a first try on any computer.',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152, tie_word_embeddings: true, max_position_embeddings: 8192, rope_theta: 100000 } },
  { repo: 'HuggingFaceTB/SmolLM2-360M-Instruct', label: 'SmolLM2 360M Instruct', gated: false, note: 'Small, still quick on a laptop processor.',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 960, intermediate_size: 2560, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5, vocab_size: 49152, tie_word_embeddings: true, max_position_embeddings: 8192, rope_theta: 100000 } },
  { repo: 'Qwen/Qwen2.5-0.5B-Instruct', label: 'Qwen2.5 0.5B Instruct', gated: false, note: 'Small, many languages.',
    config: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, tie_word_embeddings: true, max_position_embeddings: 32768, rope_theta: 1000000 } },
  { repo: 'meta-llama/Llama-3.2-1B-Instruct', label: 'Llama 3.2 1B Instruct', gated: true, note: 'Needs a license acceptance and a token.',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, tie_word_embeddings: true, max_position_embeddings: 131072, rope_theta: 500000, rope_scaling: llama3Rope } },
  { repo: 'Qwen/Qwen2.5-1.5B-Instruct', label: 'Qwen2.5 1.5B Instruct', gated: false, note: 'A good balance of quality and speed with a graphics card.',
    config: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2, vocab_size: 151936, tie_word_embeddings: true, max_position_embeddings: 32768, rope_theta: 1000000 } },
  { repo: 'meta-llama/Llama-3.2-3B-Instruct', label: 'Llama 3.2 3B Instruct', gated: true, note: 'Needs a license acceptance and a token.',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, tie_word_embeddings: true, max_position_embeddings: 131072, rope_theta: 500000, rope_scaling: llama3Rope } },
  { repo: 'Qwen/Qwen2.5-7B-Instruct', label: 'Qwen2.5 7B Instruct', gated: false, note: 'Large: a graphics card with QLoRA.',
    config: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, vocab_size: 152064, tie_word_embeddings: false, max_position_embeddings: 32768, rope_theta: 1000000 } },
  { repo: 'meta-llama/Llama-3.1-8B-Instruct', label: 'Llama 3.1 8B Instruct', gated: true, note: 'Large: a graphics card with QLoRA; needs a license acceptance and a token.',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, tie_word_embeddings: false, max_position_embeddings: 131072, rope_theta: 500000, rope_scaling: llama3Rope } },
];

let parsed: { repo: string; cfg: ModelConfig; params: number }[] | null = null;
function configs(): { repo: string; cfg: ModelConfig; params: number }[] {
  parsed ??= MODELS.map((m) => {
    const cfg = parseModelConfig(m.config);
    return { repo: m.repo, cfg, params: estimateMemory(cfg, FIRST_RUN, 'cpu').params.linear + estimateMemory(cfg, FIRST_RUN, 'cpu').params.other };
  });
  return parsed;
}

const FIRST_RUN: MemoryPlan = { batchSize: 1, seqLen: 1024, lora: { rank: 16, targets: 'all-linear' } };
const WAYS: { method: Exclude<Fit['method'], null>; plan: MemoryPlan; words: string }[] = [
  { method: 'lora', plan: FIRST_RUN, words: 'yes' },
  { method: 'qlora', plan: { ...FIRST_RUN, quantization: 'nf4' }, words: 'yes, with QLoRA' },
  { method: 'qlora-recompute', plan: { ...FIRST_RUN, quantization: 'nf4', recompute: true }, words: 'yes, with QLoRA and recomputation (slower steps)' },
];

function judge(bytesFor: (plan: MemoryPlan) => number, budgetBytes: number, approx: boolean): Fit {
  const budget = formatBytes(budgetBytes);
  let smallest = Infinity;
  for (const w of WAYS) {
    const b = bytesFor(w.plan);
    smallest = Math.min(smallest, b);
    if (b <= budgetBytes) {
      return { fits: true, method: w.method, bytes: b, words: `fits in your ${budget}: ${w.words}${approx ? ' (estimated from its size)' : ''}` };
    }
  }
  return { fits: false, method: null, bytes: smallest, words: `fits in your ${budget}: no — it needs about ${formatBytes(smallest)} even with QLoRA` };
}

export function fitOfConfig(cfg: ModelConfig, budgetBytes: number, ep: MemoryEp): Fit {
  return judge((plan) => estimateMemory(cfg, plan, ep).deviceTotal, budgetBytes, false);
}

/** A model known only by its parameter count: scaled from the recommended model nearest in size. */
export function fitOfParams(params: number, budgetBytes: number, ep: MemoryEp): Fit {
  const all = configs();
  let best = all[0]!;
  for (const c of all) if (Math.abs(Math.log(c.params / params)) < Math.abs(Math.log(best.params / params))) best = c;
  return judge((plan) => estimateMemory(best.cfg, plan, ep).deviceTotal * (params / best.params), budgetBytes, true);
}

export function recommendedModels(budgetBytes: number, ep: MemoryEp): (Recommended & { fit: Fit })[] {
  return MODELS.map((m, i) => {
    const { cfg, params } = configs()[i]!;
    return { repo: m.repo, label: m.label, parameters: params, downloadBytes: params * 2, gated: m.gated, note: m.note, fit: fitOfConfig(cfg, budgetBytes, ep) };
  });
}
