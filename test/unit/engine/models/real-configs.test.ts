/**
 * config.json files shaped like the published ones of real models (the fields that matter), parsed
 * and counted: the parameter count from our config + layout reading must equal the published count.
 */
import { it, expect } from 'vitest';
import { parameterCount, parseModelConfig, weightsLayout } from '../../../../src-main/engine/models';

const REAL: Array<{ name: string; params: number; config: Record<string, unknown> }> = [
  { name: 'gpt2', params: 124_439_808, config: {
    architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', activation_function: 'gelu_new', n_ctx: 1024, n_embd: 768, n_head: 12,
    n_layer: 12, n_positions: 1024, layer_norm_epsilon: 1e-5, vocab_size: 50257, bos_token_id: 50256, eos_token_id: 50256 } },
  { name: 'SmolLM2-135M', params: 134_515_008, config: {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
    num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152, max_position_embeddings: 8192, rms_norm_eps: 1e-5,
    rope_theta: 100000, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'bfloat16' } },
  { name: 'TinyLlama-1.1B', params: 1_100_048_384, config: {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22,
    num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
    tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'bfloat16' } },
  { name: 'Llama-3.2-1B', params: 1_235_814_400, config: {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
    num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072,
    rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    bos_token_id: 128000, eos_token_id: 128001, torch_dtype: 'bfloat16' } },
  { name: 'Mistral-7B-v0.1', params: 7_241_732_096, config: {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 32768, rms_norm_eps: 1e-5,
    rope_theta: 10000.0, sliding_window: 4096, tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'bfloat16' } },
  { name: 'Qwen2.5-0.5B', params: 494_032_768, config: {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
    num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
    rope_theta: 1000000.0, sliding_window: 32768, use_sliding_window: false, max_window_layers: 21, tie_word_embeddings: true,
    hidden_act: 'silu', torch_dtype: 'bfloat16' } },
  { name: 'Qwen3-0.6B', params: 596_049_920, config: {
    architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28,
    num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, vocab_size: 151936, max_position_embeddings: 40960,
    rms_norm_eps: 1e-6, rope_theta: 1000000, rope_scaling: null, attention_bias: false, use_sliding_window: false, sliding_window: null,
    tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'bfloat16' } },
  { name: 'SmolLM3-3B', params: 3_075_098_624, config: {
    architectures: ['SmolLM3ForCausalLM'], model_type: 'smollm3', hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36,
    num_attention_heads: 16, num_key_value_heads: 4, vocab_size: 128256, max_position_embeddings: 65536, rms_norm_eps: 1e-6,
    rope_theta: 5000000.0, no_rope_layer_interval: 4, attention_bias: false, mlp_bias: false, use_sliding_window: false,
    tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'bfloat16',
    no_rope_layers: Array.from({ length: 36 }, (_, i) => ((i + 1) % 4 !== 0 ? 1 : 0)) } },
  // issue 17's families (counts from the published model pages, reproduced from the shapes)
  { name: 'gemma-2-2b', params: 2_614_341_888, config: {
    architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26,
    num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, vocab_size: 256000, max_position_embeddings: 8192, rms_norm_eps: 1e-6,
    rope_theta: 10000.0, hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: 256,
    sliding_window: 4096, attn_logit_softcapping: 50.0, final_logit_softcapping: 30.0, attention_bias: false, torch_dtype: 'float32' } },
  { name: 'gemma-3-1b-it', params: 999_885_952, config: {
    architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', hidden_size: 1152, intermediate_size: 6912, num_hidden_layers: 26,
    num_attention_heads: 4, num_key_value_heads: 1, head_dim: 256, vocab_size: 262144, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
    rope_theta: 1000000, rope_local_base_freq: 10000, rope_scaling: null, sliding_window: 512, sliding_window_pattern: 6,
    query_pre_attn_scalar: 256, attn_logit_softcapping: null, final_logit_softcapping: null, hidden_activation: 'gelu_pytorch_tanh',
    torch_dtype: 'bfloat16' } },
  { name: 'Phi-3.5-mini-instruct', params: 3_821_079_552, config: {
    architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32064, max_position_embeddings: 131072, original_max_position_embeddings: 4096,
    rms_norm_eps: 1e-5, rope_theta: 10000.0, sliding_window: 262144, tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'bfloat16',
    rope_scaling: { type: 'longrope', short_factor: Array.from({ length: 48 }, (_, i) => 1 + i / 48), long_factor: Array.from({ length: 48 }, (_, i) => 1 + i) } } },
  { name: 'Phi-4-mini-instruct', params: 3_836_021_760, config: {
    architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 32,
    num_attention_heads: 24, num_key_value_heads: 8, vocab_size: 200064, max_position_embeddings: 131072, original_max_position_embeddings: 4096,
    partial_rotary_factor: 0.75, rms_norm_eps: 1e-5, rope_theta: 10000.0, sliding_window: 262144, tie_word_embeddings: true, hidden_act: 'silu',
    torch_dtype: 'bfloat16',
    rope_scaling: { type: 'longrope', short_factor: Array.from({ length: 48 }, () => 1), long_factor: Array.from({ length: 48 }, (_, i) => 1 + i) } } },
  { name: 'OLMo-2-0425-1B', params: 1_484_916_736, config: {
    architectures: ['Olmo2ForCausalLM'], model_type: 'olmo2', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
    num_attention_heads: 16, num_key_value_heads: 16, vocab_size: 100352, max_position_embeddings: 4096, rms_norm_eps: 1e-6,
    rope_theta: 500000, attention_bias: false, tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'float32' } },
  { name: 'granite-3.0-2b-base', params: 2_533_531_648, config: {
    architectures: ['GraniteForCausalLM'], model_type: 'granite', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 40,
    num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 49155, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
    rope_theta: 10000.0, embedding_multiplier: 12.0, residual_multiplier: 0.22, attention_multiplier: 0.015625, logits_scaling: 8.0,
    attention_bias: false, mlp_bias: false, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'bfloat16' } },
  { name: 'Mistral-Nemo-Base-2407', params: 12_247_782_400, config: {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 5120, intermediate_size: 14336, num_hidden_layers: 40,
    num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, vocab_size: 131072, max_position_embeddings: 1024000,
    rms_norm_eps: 1e-5, rope_theta: 1000000.0, sliding_window: null, tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'bfloat16' } },
];

it.each(REAL.map((r) => [r.name, r]))('%s parses and its parameter count matches the published one', (_name, r) => {
  const cfg = parseModelConfig(r.config);
  expect(parameterCount(cfg)).toBe(r.params);
  // The layout's expected tensors add up to the same number.
  let n = 0;
  for (const shape of weightsLayout(cfg).shapes.values()) n += shape.reduce((a, b) => a * b, 1);
  expect(n).toBe(r.params);
});

it('reads the architecture-specific details of real configs', () => {
  const byName = Object.fromEntries(REAL.map((r) => [r.name, parseModelConfig(r.config)]));
  expect(byName['Llama-3.2-1B']!.rope?.scaling).toMatchObject({ type: 'llama3', factor: 32 });
  expect(byName['SmolLM3-3B']!.ropeLayers.filter((x) => !x).length).toBe(9);
  expect(byName['Qwen2.5-0.5B']!.slidingWindow).toBeNull();
  expect(byName['Mistral-7B-v0.1']!.slidingWindow).toBe(4096);
  expect(byName['Qwen3-0.6B']!.headDim).toBe(128);
  expect(byName['gpt2']!.eosTokenIds).toEqual([50256]);
  expect(byName['gemma-3-1b-it']!.windowLayers.filter((w) => !w).length).toBe(4); // layers 5, 11, 17, 23
  expect(byName['Phi-4-mini-instruct']!.rope?.rotaryDim).toBe(96);
  expect(byName['Mistral-Nemo-Base-2407']!.headDim).toBe(128);
  expect(weightsLayout(byName['Phi-3.5-mini-instruct']!).shapes.get('model.layers.0.self_attn.qkv_proj.weight')).toEqual([9216, 3072]);
  expect(weightsLayout(byName['OLMo-2-0425-1B']!).shapes.get('model.layers.0.self_attn.q_norm.weight')).toEqual([2048]);
});
