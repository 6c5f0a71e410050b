/**
 * Verification after export: the written files are loaded back through the engine and their logits on a
 * fixed prompt are compared with the in-training model (base weights + the checkpoint's adapter).
 * A mismatch beyond the dtype's tolerance is an error (the export is then not published).
 */
import { openModel } from '../engine/models';
import { EngineSession, hostTensor, type EpName } from '../engine/backends/onnx';
import type { LoraLayout } from '../engine/llm/lora';
import { buildEvalGraph } from '../engine/llm/train-graph';
import type { FloatDtypeName } from '../engine/safetensors/dtype';
import { UserError } from '../util/progress';

/**
 * Tolerances on the relative error max|Δ| / max|ref| over the compared logits. Measured on the tiny
 * models (docs/export.md): f32 ≤ 6e-7 (summation order only), f16 ≤ 8e-4, bf16 ≤ 7e-3 (8-bit mantissa);
 * the bounds leave headroom for deeper real models and still catch a wrong or missing merge (leaving
 * the adapter out changes the tiny models' logits by ~0.15 relative; a wrong transpose or scale by more).
 */
export const VERIFY_TOLERANCE: Record<FloatDtypeName, number> = { f32: 1e-4, f16: 1e-2, bf16: 5e-2 };

import type { Verification } from './options';
import { openWeightSource } from '../engine/weights/source';
export type { Verification };

/** A fixed, model-independent prompt: bos (if any) and ids spread over the vocabulary, 16 in all, avoiding `exclude`. */
export function defaultPromptIds(vocab: number, bos: number | null, exclude: ReadonlySet<number> = new Set()): number[] {
  const ids: number[] = bos !== null && bos < vocab && !exclude.has(bos) ? [bos] : [];
  for (let t = 0; ids.length < 16 && t < 16 * vocab; t++) {
    const id = (7 + 131 * t) % vocab;
    if (!exclude.has(id)) ids.push(id);
  }
  return ids;
}

/** Logits [T, V] (flat) of a model folder with an optional adapter given as layout + params. */
export async function engineLogits(modelDir: string, ids: number[], adapter: { lora: LoraLayout; params: Float32Array } | null,
  ep: EpName = 'cpu'): Promise<{ vocab: number; logits: Float32Array }> {
  const { config, layout, weights } = await openModel(modelDir);
  try {
    const T = ids.length;
    const src = openWeightSource(weights);
    const g = await buildEvalGraph(config, layout, src, adapter?.lora ?? null, { batch: 1, seqLen: T });
    const s = await EngineSession.create(g.model, { ep, externalDataDir: src.dir });
    try {
      const out = await s.run({
        ids: hostTensor('int64', [1, T], BigInt64Array.from(ids, BigInt)),
        targets: hostTensor('int64', [T, 1], new BigInt64Array(T)),
        mask: hostTensor('float32', [T, 1], new Float32Array(T)),
        ...(adapter ? { params: hostTensor('float32', [adapter.lora.size], adapter.params) } : {}),
      }, ['logits']);
      return { vocab: config.vocabSize, logits: Float32Array.from(out['logits']!.data as Float32Array) };
    } finally {
      await s.dispose();
    }
  } finally {
    await weights.close();
  }
}

/**
 * Compares the columns both [T, V] logit matrices have, except `skip` and columns where the reference is
 * -inf (ids between the base vocabulary and a new token that no token uses).
 */
export function compareLogits(ref: { vocab: number; logits: Float32Array }, got: { vocab: number; logits: Float32Array },
  ids: number[], dtype: FloatDtypeName, skip: ReadonlySet<number> = new Set()): Verification {
  const T = ids.length;
  const cols = Math.min(ref.vocab, got.vocab);
  let maxAbsDiff = 0, maxAbsRef = 0;
  let finite = true;
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < cols; v++) {
      const r = ref.logits[t * ref.vocab + v]!, g = got.logits[t * got.vocab + v]!;
      if (skip.has(v) || r === Number.NEGATIVE_INFINITY) continue;
      if (!Number.isFinite(g)) finite = false;
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(r - g));
      maxAbsRef = Math.max(maxAbsRef, Math.abs(r));
    }
  }
  const relError = finite ? maxAbsDiff / Math.max(maxAbsRef, 1e-12) : Infinity;
  const tolerance = VERIFY_TOLERANCE[dtype];
  return { ids, comparedVocab: cols, maxAbsDiff: finite ? maxAbsDiff : Infinity, maxAbsRef, relError, tolerance, passed: relError <= tolerance };
}

export function failedVerification(v: Verification, what: string): UserError {
  return new UserError(
    'export.verify-failed',
    `The exported ${what} does not reproduce the trained model: logits differ by up to ${v.maxAbsDiff.toPrecision(3)} ` +
      `(relative ${v.relError.toPrecision(3)}, allowed ${v.tolerance}). Nothing was written to the destination.`,
    'This is a bug in Lathe or a damaged base model. Try exporting in f32; if that fails too, report it with the model name.',
  );
}
