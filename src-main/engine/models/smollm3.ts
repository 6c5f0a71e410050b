/**
 * SmolLM3: Llama's layers where some layers skip RoPE ("NoPE"). `no_rope_layers[i]` is 1 when layer i
 * USES RoPE and 0 when it does not; when absent HF builds it as ((i + 1) % no_rope_layer_interval != 0),
 * i.e. every 4th layer (i = 3, 7, ...) is NoPE by default.
 */
import { ConfigReader, type ModelConfig } from './config';
import { archName, parseLlamaLike } from './llama';

export const smollm3 = {
  family: 'smollm3' as const,
  architectures: ['SmolLM3ForCausalLM'],
  modelTypes: ['smollm3'],
  parse(raw: Record<string, unknown>): ModelConfig {
    const r = new ConfigReader(raw);
    const cfg = parseLlamaLike(raw, 'smollm3', { theta: 2_000_000, eps: 1e-6 });
    cfg.architecture = archName(raw, 'SmolLM3ForCausalLM');
    cfg.tieWordEmbeddings = r.bool('tie_word_embeddings', true); // SmolLM3Config defaults to tied
    const list = raw.no_rope_layers;
    if (list !== undefined && list !== null) {
      if (!Array.isArray(list) || list.length < cfg.numLayers || !list.every((x) => x === 0 || x === 1)) {
        throw r.invalid('no_rope_layers', `a list of ${cfg.numLayers} zeros and ones`, list);
      }
      cfg.ropeLayers = (list as number[]).slice(0, cfg.numLayers).map((x) => x === 1);
    } else {
      const interval = r.int('no_rope_layer_interval', 4);
      cfg.ropeLayers = Array.from({ length: cfg.numLayers }, (_, i) => (i + 1) % interval !== 0);
    }
    cfg.slidingWindow = r.bool('use_sliding_window', false) ? r.optInt('sliding_window') : null;
    return cfg;
  },
};
