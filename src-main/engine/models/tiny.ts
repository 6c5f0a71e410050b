/**
 * Tiny deterministic random models in Hugging Face format, one per supported architecture, for tests,
 * oracles and the bundled demo model. Same (arch, seed, dtype) -> byte-identical files.
 */
import { mkdirSync, existsSync, readdirSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { UserError, type WorkOptions } from '../../util/progress';
import { floatDtypeFromName, type FloatDtypeName } from '../safetensors/dtype';
import { writeModelWeights } from '../safetensors/sharded';
import { tempPathFor } from '../safetensors/writer';
import { parameterCount, type ModelConfig } from './config';
import { parseModelConfig, weightsLayout } from './registry';
import { Rng } from './rng';
import { buildTinyTokenizer } from './tiny-tokenizer';

import { TINY_ARCHS, type TinyArch } from './tiny-archs';

export { TINY_ARCHS, type TinyArch };

export interface TinyModelOptions extends WorkOptions {
  seed?: number; // default 0
  dtype?: FloatDtypeName; // default f32
  /** Shard model.safetensors above this many bytes (to test sharded loading). */
  maxShardBytes?: number;
  /** Overrides of HF config fields (e.g. { hidden_size: 128 }). */
  overrides?: Record<string, unknown>;
}

const ARCH_HELP = TINY_ARCHS.join(', ');

/** HF config.json for each tiny architecture, with that architecture's real field names. */
export function tinyHfConfig(arch: TinyArch, vocab: number, ids: { bos: number; eos: number; pad: number }): Record<string, unknown> {
  const common = {
    bos_token_id: ids.bos, eos_token_id: ids.eos, torch_dtype: 'float32', transformers_version: '4.46.0', use_cache: true,
  };
  const llamaLike = {
    hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    max_position_embeddings: 256, rms_norm_eps: 1e-5, hidden_act: 'silu', initializer_range: 0.02, attention_dropout: 0.0,
    vocab_size: vocab,
  };
  switch (arch) {
    case 'llama': // Llama 2 style: untied, theta 1e4
      return { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...llamaLike, rope_theta: 10000, rope_scaling: null,
        attention_bias: false, mlp_bias: false, tie_word_embeddings: false, pretraining_tp: 1, ...common };
    case 'llama3': // Llama 3.2 style: tied, theta 5e5, llama3 rope scaling, eos list
      return { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...llamaLike, head_dim: 16, rope_theta: 500000,
        rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64, rope_type: 'llama3' },
        attention_bias: false, mlp_bias: false, tie_word_embeddings: true, pretraining_tp: 1, ...common, eos_token_id: [ids.eos, ids.bos] };
    case 'tinyllama': // TinyLlama: llama, untied, few kv heads (here 1: multi-query)
      return { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...llamaLike, num_key_value_heads: 1, rope_theta: 10000,
        rope_scaling: null, attention_bias: false, tie_word_embeddings: false, ...common };
    case 'smollm2': // SmolLM2: llama, tied, theta 1e5
      return { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...llamaLike, rope_theta: 100000, rope_scaling: null,
        attention_bias: false, mlp_bias: false, tie_word_embeddings: true, pad_token_id: ids.pad, ...common };
    case 'mistral':
      return { architectures: ['MistralForCausalLM'], model_type: 'mistral', ...llamaLike, rope_theta: 10000, sliding_window: 4096,
        tie_word_embeddings: false, ...common };
    case 'qwen2': // Qwen2.5-0.5B style: q/k/v biases, tied, vocab padded beyond the tokenizer
      return { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', ...llamaLike, vocab_size: roundUp(vocab, 64),
        rope_theta: 1000000, use_sliding_window: false, sliding_window: 32768, max_window_layers: 2, tie_word_embeddings: true, ...common };
    case 'qwen3': // head_dim set independently of hidden_size / heads; q/k norms
      return { architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', ...llamaLike, vocab_size: roundUp(vocab, 64), head_dim: 32,
        rope_theta: 1000000, rope_scaling: null, attention_bias: false, use_sliding_window: false, sliding_window: null,
        max_window_layers: 2, tie_word_embeddings: false, ...common };
    case 'smollm3': // layer 1 is NoPE (explicit list wins over the interval)
      return { architectures: ['SmolLM3ForCausalLM'], model_type: 'smollm3', ...llamaLike, rope_theta: 2000000, rope_scaling: null,
        no_rope_layers: [1, 0], no_rope_layer_interval: 4, attention_bias: false, mlp_bias: false, use_sliding_window: false,
        sliding_window: null, tie_word_embeddings: true, pad_token_id: ids.pad, ...common };
    case 'granite': // Granite 3: the four multipliers (attention's differs from 1/√D = 0.25), tied
      return { architectures: ['GraniteForCausalLM'], model_type: 'granite', ...llamaLike, rope_theta: 10000, rope_scaling: null,
        attention_bias: false, mlp_bias: false, embedding_multiplier: 12.0, residual_multiplier: 0.22, attention_multiplier: 0.15,
        logits_scaling: 8.0, tie_word_embeddings: true, pad_token_id: ids.pad, ...common };
    case 'mistral-nemo': // head_dim 32 with hidden 64 and 4 heads (Nemo: 128 with 5120 and 32)
      return { architectures: ['MistralForCausalLM'], model_type: 'mistral', ...llamaLike, head_dim: 32, rope_theta: 1000000,
        sliding_window: null, tie_word_embeddings: false, ...common };
    case 'olmo2': // post-norms, q/k norms over the whole projection
      return { architectures: ['Olmo2ForCausalLM'], model_type: 'olmo2', ...llamaLike, rms_norm_eps: 1e-6, rope_theta: 500000,
        rope_scaling: null, attention_bias: false, tie_word_embeddings: false, pad_token_id: ids.pad, ...common };
    case 'gemma2': // window 4 < T on layer 0 (layer 1 global); caps small enough that tanh bends; query scalar ≠ head_dim
      return { architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', ...llamaLike, hidden_act: 'gelu_pytorch_tanh',
        hidden_activation: 'gelu_pytorch_tanh', rms_norm_eps: 1e-6, head_dim: 32, query_pre_attn_scalar: 24, rope_theta: 10000,
        attention_bias: false, sliding_window: 4, attn_logit_softcapping: 2.0, final_logit_softcapping: 3.0,
        cache_implementation: 'hybrid', tie_word_embeddings: true, pad_token_id: ids.pad, ...common };
    case 'gemma3': // layer 0 sliding (local RoPE 1e4, window 4), layer 1 global (RoPE 1e6, linear scaling 8); q/k norms
      return { architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', ...llamaLike, hidden_act: 'gelu_pytorch_tanh',
        hidden_activation: 'gelu_pytorch_tanh', rms_norm_eps: 1e-6, head_dim: 32, query_pre_attn_scalar: 32, rope_theta: 1000000,
        rope_local_base_freq: 10000, rope_scaling: { rope_type: 'linear', factor: 8.0 }, sliding_window: 4, sliding_window_pattern: 2,
        attn_logit_softcapping: null, final_logit_softcapping: null, attention_bias: false, tie_word_embeddings: true,
        pad_token_id: ids.pad, ...common };
    case 'phi3': // Phi-3.5 style: fused qkv/gate_up, longrope past the original context 4 (T = 8 uses the long factors), window 6
      return { architectures: ['Phi3ForCausalLM'], model_type: 'phi3', ...llamaLike, rope_theta: 10000, max_position_embeddings: 256,
        original_max_position_embeddings: 4, sliding_window: 6, rope_scaling: { type: 'longrope',
          short_factor: [1.0, 1.02, 1.05, 1.1, 1.2, 1.3, 1.5, 2.0], long_factor: [1.0, 1.5, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0] },
        attention_bias: false, tie_word_embeddings: false, pad_token_id: ids.pad, ...common };
    case 'phi4mini': // Phi-4-mini style: 3/4 of each head rotates, longrope within the original context (short factors), tied
      return { architectures: ['Phi3ForCausalLM'], model_type: 'phi3', ...llamaLike, rope_theta: 10000, max_position_embeddings: 1024,
        original_max_position_embeddings: 256, partial_rotary_factor: 0.75, sliding_window: 262144, rope_scaling: { type: 'longrope',
          short_factor: [1.0, 1.1, 1.3, 1.7, 2.5, 4.0], long_factor: [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] },
        attention_bias: false, tie_word_embeddings: true, pad_token_id: ids.pad, ...common };
    case 'gpt2':
      return { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: vocab, n_embd: 64, n_layer: 2, n_head: 4,
        n_inner: null, n_positions: 128, n_ctx: 128, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5,
        resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1, initializer_range: 0.02, scale_attn_weights: true,
        scale_attn_by_inverse_layer_idx: false, reorder_and_upcast_attn: false, summary_type: 'cls_index', ...common };
  }
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * Deterministic weights: norms 1 + N(0, 0.1) (not exactly 1, so tests see them), biases N(0, 0.05),
 * embeddings N(0, 0.2), linears N(0, 0.5/sqrt(fan_in)) so attention and logits are far from uniform.
 */
function tinyWeight(name: string, shape: number[], cfg: ModelConfig, rng: Rng): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (/norm|ln_/.test(name)) return name.endsWith('.bias') ? rng.normalArray(n, 0.05) : rng.normalArray(n, 0.1, 1);
  if (name.endsWith('.bias')) return rng.normalArray(n, 0.05);
  if (/wte|embed_tokens/.test(name)) return rng.normalArray(n, 0.2);
  if (/wpe/.test(name)) return rng.normalArray(n, 0.1);
  // nn.Linear [out, in]; GPT-2 Conv1D [in, out].
  const fanIn = cfg.family === 'gpt2' ? shape[0]! : shape[shape.length - 1]!;
  return rng.normalArray(n, 0.5 / Math.sqrt(fanIn));
}

export interface TinyModelResult {
  dir: string;
  config: ModelConfig;
  files: string[];
  parameters: number;
}

export async function createTinyModel(arch: string, outDir: string, opts: TinyModelOptions = {}): Promise<TinyModelResult> {
  if (!(TINY_ARCHS as readonly string[]).includes(arch)) {
    throw new UserError('tiny-arch-unknown', `There is no tiny "${arch}" model.`, `Choose one of: ${ARCH_HELP}.`);
  }
  const a = arch as TinyArch;
  const seed = opts.seed ?? 0;
  const dtypeName = opts.dtype ?? 'f32';
  const dtype = floatDtypeFromName(dtypeName);
  if (existsSync(outDir) && readdirSync(outDir).some((f) => f.endsWith('.safetensors') || f === 'config.json')) {
    throw new UserError('tiny-out-exists', `${outDir} already holds a model.`, 'Choose an empty folder, or delete the old model first.');
  }
  mkdirSync(outDir, { recursive: true });
  const tok = buildTinyTokenizer();
  const hf = { ...tinyHfConfig(a, tok.vocabSize, { bos: tok.ids.endoftext, eos: tok.ids.imEnd, pad: tok.ids.endoftext }), ...opts.overrides };
  hf.torch_dtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype];
  const config = parseModelConfig(hf);
  const layout = weightsLayout(config);
  // One RNG stream per tensor, seeded from (seed, tensor name), so adding a tensor never changes others.
  const specs = [...layout.shapes].map(([name, shape]) => ({ name, dtype, shape }));
  const { files } = await writeModelWeights(outDir, specs, (s) => tinyWeight(s.name, s.shape, config, new Rng(hashSeed(seed, s.name))), {
    maxShardBytes: opts.maxShardBytes, onProgress: opts.onProgress, signal: opts.signal,
  });
  const gen: Record<string, unknown> = { _from_model_config: true, bos_token_id: hf.bos_token_id, eos_token_id: hf.eos_token_id, transformers_version: '4.46.0' };
  if (hf.pad_token_id !== undefined) gen.pad_token_id = hf.pad_token_id;
  await writeJson(path.join(outDir, 'config.json'), hf);
  await writeJson(path.join(outDir, 'generation_config.json'), gen);
  await writeJson(path.join(outDir, 'tokenizer.json'), tok.tokenizerJson);
  await writeJson(path.join(outDir, 'tokenizer_config.json'), tok.tokenizerConfig);
  await writeJson(path.join(outDir, 'special_tokens_map.json'), {
    bos_token: tok.tokenizerConfig.bos_token, eos_token: tok.tokenizerConfig.eos_token,
    pad_token: tok.tokenizerConfig.pad_token, unk_token: tok.tokenizerConfig.unk_token,
    additional_special_tokens: tok.tokenizerConfig.additional_special_tokens,
  });
  return { dir: path.resolve(outDir), config, files, parameters: parameterCount(config) };
}

function hashSeed(seed: number, name: string): number {
  // FNV-1a over the name, mixed with the seed.
  let h = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  const tmp = tempPathFor(file);
  await fsp.writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await fsp.rename(tmp, file);
}
