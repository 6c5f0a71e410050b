/**
 * Phi-3, Phi-3.5 and Phi-4-mini (Phi3ForCausalLM). HF: one fused qkv_proj [(H + 2K)·D, C] (q | k | v along
 * the output) and one gate_up_proj [2F, C] (gate the first half): down(silu(gate) · up); no biases;
 * rope_scaling "longrope" (older name "su"): per-dimension short/long factors and an attention factor on
 * cos/sin; partial_rotary_factor (Phi-4-mini: 0.75 of each head rotates); sliding_window applies to every
 * layer when set. LoRA targets are the fused modules, as PEFT names them (qkv_proj, gate_up_proj).
 */
import { ConfigReader, type ModelConfig } from './config';
import { archName, parseLlamaLike } from './llama';

export const phi3 = {
  family: 'phi3' as const,
  architectures: ['Phi3ForCausalLM'],
  modelTypes: ['phi3'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    const cfg = parseLlamaLike({ ...raw, attention_bias: false, mlp_bias: false }, 'phi3', { theta: 10000, eps: 1e-5 });
    cfg.architecture = archName(raw, 'Phi3ForCausalLM');
    const prf = r.num('partial_rotary_factor', 1);
    if (!(prf > 0 && prf <= 1)) throw r.invalid('partial_rotary_factor', 'a number in (0, 1]', prf);
    const rotaryDim = Math.floor(cfg.headDim * prf);
    if (rotaryDim % 2 !== 0) throw r.invalid('partial_rotary_factor', `a factor giving an even number of rotary dims (head_dim ${cfg.headDim})`, prf);
    cfg.rope = { ...cfg.rope!, rotaryDim };
    const sc = cfg.rope.scaling;
    if (sc?.type === 'longrope' && (sc.shortFactor.length !== rotaryDim / 2 || sc.longFactor.length !== rotaryDim / 2)) {
      throw r.invalid('rope_scaling', `short_factor and long_factor of ${rotaryDim / 2} numbers each (rotary dims / 2)`,
        { short_factor: sc.shortFactor.length, long_factor: sc.longFactor.length });
    }
    cfg.slidingWindow = r.optInt('sliding_window');
    return cfg;
  },
};
