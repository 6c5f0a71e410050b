/**
 * Gemma 2 (Gemma2ForCausalLM) and Gemma 3 text (Gemma3ForCausalLM, model_type gemma3_text). HF semantics:
 * - embeddings × √hidden_size; every RMSNorm scales by (1 + w); four norms per layer ("sandwich"):
 *   h = x + post_attention_layernorm(attn(input_layernorm(x))), then the same with pre_/post_feedforward_layernorm;
 * - GeGLU MLP: down(gelu_tanh(gate(h)) · up(h)); attention scores × query_pre_attn_scalar^-½;
 * - sliding-window layers: Gemma 2 every other layer (0, 2, ...), Gemma 3 all but every 6th
 *   (sliding_window_pattern), or as listed in `layer_types`;
 * - Gemma 2: scores soft-capped by attn_logit_softcapping (50) before the mask, logits by
 *   final_logit_softcapping (30): cap · tanh(x / cap);
 * - Gemma 3: q_norm / k_norm over the head dim ((1 + w) too); sliding layers use RoPE base
 *   rope_local_base_freq (10000, unscaled), global layers rope_theta (1e6) with rope_scaling.
 */
import { UserError } from '../../util/progress';
import { ConfigReader, parseRopeScaling, type Family, type ModelConfig, type RopeParams } from './config';
import { archName, parseLlamaLike } from './llama';

function parseGemmaLike(raw: Record<string, unknown>, family: Family, fallbackArch: string, defaults: { theta: number; softcap: [number | null, number | null] }): ModelConfig {
  const r = new ConfigReader(raw);
  const act = r.str('hidden_activation', r.str('hidden_act', 'gelu_pytorch_tanh'));
  if (act !== 'gelu_pytorch_tanh') throw r.invalid('hidden_activation', '"gelu_pytorch_tanh" for this architecture', act);
  const cfg = parseLlamaLike({ ...raw, hidden_act: 'silu', mlp_bias: false, head_dim: raw.head_dim ?? 256, tie_word_embeddings: raw.tie_word_embeddings ?? true },
    family, { theta: defaults.theta, eps: 1e-6 });
  cfg.architecture = archName(raw, fallbackArch);
  cfg.activation = 'gelu_pytorch_tanh';
  cfg.normPlacement = 'sandwich';
  cfg.normUnitOffset = true;
  cfg.embedScale = Math.sqrt(cfg.hiddenSize);
  const qpas = r.num('query_pre_attn_scalar', 256);
  if (qpas <= 0) throw r.invalid('query_pre_attn_scalar', 'a positive number', qpas);
  cfg.attnScale = qpas ** -0.5;
  const cap = (key: string, fallback: number | null): number | null => {
    if (!(key in raw)) return fallback;
    if (raw[key] === null) return null;
    const v = r.num(key);
    if (v <= 0) throw r.invalid(key, 'a positive number or null', v);
    return v;
  };
  cfg.attnSoftcap = cap('attn_logit_softcapping', defaults.softcap[0]);
  cfg.finalSoftcap = cap('final_logit_softcapping', defaults.softcap[1]);
  cfg.slidingWindow = r.optInt('sliding_window');
  return cfg;
}

/** `layer_types` ("sliding_attention" / "full_attention") when the config lists them, else `fallback(i)`. */
function windowLayers(r: ConfigReader, L: number, fallback: (i: number) => boolean): boolean[] {
  const lt = r.raw.layer_types;
  if (lt === undefined || lt === null) return Array.from({ length: L }, (_, i) => fallback(i));
  if (!Array.isArray(lt) || lt.length < L || !lt.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
    throw r.invalid('layer_types', `a list of ${L} "sliding_attention" / "full_attention"`, lt);
  }
  return (lt as string[]).slice(0, L).map((t) => t === 'sliding_attention');
}

export const gemma2 = {
  family: 'gemma2' as const,
  architectures: ['Gemma2ForCausalLM'],
  modelTypes: ['gemma2'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    const cfg = parseGemmaLike(raw, 'gemma2', 'Gemma2ForCausalLM', { theta: 10000, softcap: [50, 30] });
    cfg.windowLayers = windowLayers(r, cfg.numLayers, (i) => i % 2 === 0);
    return cfg;
  },
};

export const gemma3 = {
  family: 'gemma3' as const,
  architectures: ['Gemma3ForCausalLM'],
  modelTypes: ['gemma3_text'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    // transformers >= 4.57 may write rope_parameters per layer type: { full_attention: {...}, sliding_attention: {...} }
    const rp = raw.rope_parameters;
    const perType = rp && typeof rp === 'object' && !Array.isArray(rp) && 'full_attention' in rp ? rp as Record<string, unknown> : null;
    const params = (v: unknown, what: string, theta: number): RopeParams => {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw r.invalid(`rope_parameters.${what}`, 'an object', v);
      const sub = new ConfigReader({ rope_scaling: v }, `config.json rope_parameters.${what}`);
      return { theta: new ConfigReader(v as Record<string, unknown>, `config.json rope_parameters.${what}`).num('rope_theta', theta), scaling: parseRopeScaling(sub) };
    };
    const base = perType ? { ...raw, rope_parameters: undefined, rope_scaling: null } : raw;
    const cfg = parseGemmaLike(base, 'gemma3', 'Gemma3ForCausalLM', { theta: 1_000_000, softcap: [null, null] });
    cfg.qkNorm = true;
    cfg.qkNormScope = 'head';
    if (perType) {
      cfg.rope = params(perType.full_attention, 'full_attention', 1_000_000);
      cfg.localRope = params(perType.sliding_attention ?? { rope_type: 'default' }, 'sliding_attention', 10_000);
    } else {
      cfg.localRope = { theta: r.num('rope_local_base_freq', 10_000), scaling: null };
    }
    const pattern = r.int('sliding_window_pattern', r.int('_sliding_window_pattern', 6));
    cfg.windowLayers = windowLayers(r, cfg.numLayers, (i) => (i + 1) % pattern !== 0);
    if (cfg.slidingWindow === null) {
      throw new UserError('model-config-invalid', 'config.json has no "sliding_window", which Gemma 3 needs for its local layers.', 'Download config.json again.');
    }
    return cfg;
  },
};
