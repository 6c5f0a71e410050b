/**
 * The quantized path of llm/forward.ts's linear layers: read a frozen linear weight (F32/F16/BF16 from
 * the safetensors file, one tensor at a time), quantize it to NF4 on load, place it, and apply it.
 * Only the linear layers' weights are quantized; biases, norms, embeddings and lm_head stay as they
 * are (QLoRA does the same: embeddings/head are a small share of a large model and sensitive).
 */
import type { GraphBuilder, Value } from '../graph/graph';
import type { WeightSource } from '../llm/forward';
import { quantizeNf4 } from './nf4';
import { nf4Gemm, placeNf4, type Nf4ByteStore, type Nf4Weight } from './graph';

const placed = new WeakMap<GraphBuilder, Map<string, Nf4Weight>>();
/** Code stores by weight source (useNf4Store): kept out of WeightSource so forward.ts stays as it is. */
const nf4Stores = new WeakMap<WeightSource, Nf4ByteStore>();

/** Graphs built from `src` write their NF4 codes to `store` (a file in src.dir) instead of the model. */
export function useNf4Store(src: WeightSource, store: Nf4ByteStore | null): void {
  if (store) nf4Stores.set(src, store);
  else nf4Stores.delete(src);
}

/** Reads, quantizes and places `name` (cached per graph). */
export async function nf4BaseWeight(g: GraphBuilder, src: WeightSource, name: string): Promise<Nf4Weight> {
  let cache = placed.get(g);
  if (!cache) placed.set(g, (cache = new Map()));
  const hit = cache.get(name);
  if (hit) return hit;
  const e = src.weights.entry(name);
  if (e.shape.length !== 2) throw new Error(`NF4: ${name} has shape [${e.shape.join(', ')}]; only 2-D linear weights are quantized.`);
  // f32 copy lives only until quantized: peak host memory is one tensor in f32 plus its codes
  const quantize = async () => quantizeNf4(await src.weights.readF32(name), e.shape);
  // with the weight cache (production): quantized once, codes referenced in the cache file, none kept here
  const w = src.cache ? placeNf4(g, name, await src.cache.nf4(name, quantize)) : placeNf4(g, name, await quantize(), nf4Stores.get(src));
  cache.set(name, w);
  return w;
}

/** y [N, out] = x [N, in] · W' (+ bias) with W stored as NF4; `inOut` is GPT-2's Conv1D [in, out] layout. */
export async function nf4Linear(g: GraphBuilder, src: WeightSource, x: Value, weight: string, bias: Value | null, inOut: boolean): Promise<Value> {
  return nf4Gemm(g, x, await nf4BaseWeight(g, src, weight), bias, !inOut);
}
