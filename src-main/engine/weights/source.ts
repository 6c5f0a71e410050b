/**
 * The one way production code makes a WeightSource: models that need conversion (BF16 weights) or
 * quantization (QLoRA) read their weights from the weight cache (cache.ts), whose entry folder then is
 * the folder every external-data location is relative to (`src.dir`, the sessions' externalDataDir).
 */
import type { ModelWeights } from '../safetensors';
import type { WeightSource } from '../llm/forward';
import { WeightCache, needsWeightCache } from './cache';

export interface WeightSourceOptions {
  quantize?: 'none' | 'nf4';
  compute?: 'float32' | 'float16';
  /** Cache root (defaultCacheRoot() unless told). */
  cacheRoot?: string;
}

export function openWeightSource(weights: ModelWeights, opts: WeightSourceOptions = {}): WeightSource {
  const cache = needsWeightCache(weights, opts.quantize) ? WeightCache.open(weights, opts.cacheRoot) : undefined;
  const src: WeightSource = { weights, dir: cache?.dir ?? weights.dir };
  if (cache) src.cache = cache;
  if (opts.quantize) src.quantize = opts.quantize;
  if (opts.compute) src.compute = opts.compute;
  return src;
}
