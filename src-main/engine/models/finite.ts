/**
 * Non-finite (NaN / ±Inf) weights: a broken download or a bad conversion that makes every logit NaN.
 * Found from the stored bits (exponent all ones), one tensor at a time, without converting: cheap
 * enough to run when a forward pass or the first training step came out non-finite, which is when
 * Lathe looks (a model whose outputs are finite needs no scan).
 */
import path from 'node:path';
import { UserError } from '../../util/progress';
import type { ModelWeights } from '../safetensors/sharded';

export interface NonFiniteTensor {
  name: string;
  /** The file that holds it (base name). */
  file: string;
  /** Element index of the first non-finite value. */
  index: number;
  value: 'NaN' | 'Infinity' | '-Infinity';
  /** How many of the tensor's values are non-finite. */
  count: number;
}

/** First non-finite element of raw little-endian float data, and how many there are; null when all are finite. */
export function scanNonFinite(dtype: string, raw: Uint8Array): { index: number; value: NonFiniteTensor['value']; count: number } | null {
  let first = -1, count = 0, value: NonFiniteTensor['value'] = 'NaN';
  const classify = (mantissaZero: boolean, negative: boolean): NonFiniteTensor['value'] => (mantissaZero ? (negative ? '-Infinity' : 'Infinity') : 'NaN');
  if (dtype === 'F32') {
    const u = new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength >>> 2);
    for (let i = 0; i < u.length; i++) {
      const b = u[i]!;
      if ((b & 0x7f800000) !== 0x7f800000) continue;
      if (first < 0) { first = i; value = classify((b & 0x7fffff) === 0, (b >>> 31) === 1); }
      count++;
    }
  } else if (dtype === 'F16' || dtype === 'BF16') {
    const u = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength >>> 1);
    const [exp, man] = dtype === 'F16' ? [0x7c00, 0x03ff] : [0x7f80, 0x007f];
    for (let i = 0; i < u.length; i++) {
      const b = u[i]!;
      if ((b & exp) !== exp) continue;
      if (first < 0) { first = i; value = classify((b & man) === 0, (b >>> 15) === 1); }
      count++;
    }
  } else if (dtype === 'F64') {
    const v = new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength >>> 3);
    for (let i = 0; i < v.length; i++) {
      const x = v[i]!;
      if (Number.isFinite(x)) continue;
      if (first < 0) { first = i; value = Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity'; }
      count++;
    }
  }
  return first < 0 ? null : { index: first, value, count };
}

/** The first tensor (in the given order, default: all, sorted by name) with a non-finite value, or null. */
export async function findNonFiniteWeight(weights: ModelWeights, names: string[] = [...weights.names()].sort()): Promise<NonFiniteTensor | null> {
  for (const name of names) {
    const e = weights.tryEntry(name);
    if (!e || !['F32', 'F16', 'BF16', 'F64'].includes(e.dtype)) continue;
    const raw = await weights.readRaw(name);
    const hit = scanNonFinite(e.dtype, raw);
    if (hit) return { name, file: path.basename(e.file), ...hit };
  }
  return null;
}

/** The error for a model whose weights hold NaN/Inf. */
export function nonFiniteWeightError(t: NonFiniteTensor): UserError {
  return new UserError(
    'model-weights-nonfinite',
    `The model's weights are broken: tensor "${t.name}" in ${t.file} holds ${t.count.toLocaleString('en-US')} non-finite value${t.count === 1 ? '' : 's'} (${t.value} at element ${t.index}), so the model computes NaN (not-a-number) outputs.`,
    `Download ${t.file} again, or use another copy of the model; the file is damaged or was converted wrongly.`,
  );
}

/**
 * Called when a forward pass gave non-finite outputs: names the broken tensor when the weights hold one,
 * otherwise says the computation itself overflowed.
 */
export async function nonFiniteOutputError(weights: ModelWeights, what: string, adapter?: Float32Array): Promise<UserError> {
  const t = await findNonFiniteWeight(weights);
  if (t) return nonFiniteWeightError(t);
  if (adapter) {
    const hit = scanNonFinite('F32', new Uint8Array(adapter.buffer, adapter.byteOffset, adapter.byteLength));
    if (hit) {
      return new UserError('adapter-nonfinite', `The adapter holds ${hit.count} non-finite value${hit.count === 1 ? '' : 's'} (${hit.value} at element ${hit.index}), so ${what} is NaN.`,
        'Use an earlier checkpoint of the run (training diverged before this one was written).');
    }
  }
  return new UserError('model-output-nonfinite', `The model's weights are finite but ${what} came out as NaN or infinite (the computation overflowed).`,
    'Try the CPU device, or f32 compute; if it persists, the model may need a different precision than it is stored in.');
}
