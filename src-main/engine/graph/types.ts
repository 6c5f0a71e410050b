/**
 * Element types and symbolic shapes of the tensor-graph IR.
 * A dimension is a fixed size or a named symbol ('B', 'T'); symbols lower to ONNX dim_params.
 */
export type DType = 'float32' | 'float16' | 'float64' | 'int32' | 'int64' | 'bool';
export type Dim = number | string;
export type Shape = readonly Dim[];

export const FLOAT_TYPES: readonly DType[] = ['float32', 'float16', 'float64'];
export const isFloat = (t: DType): boolean => t === 'float32' || t === 'float16' || t === 'float64';
export const isInt = (t: DType): boolean => t === 'int32' || t === 'int64';

export const BYTES: Record<DType, number> = {
  float32: 4, float16: 2, float64: 8, int32: 4, int64: 8, bool: 1,
};

export function shapeStr(s: Shape): string {
  return `[${s.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Element count, or null when a dimension is symbolic. */
export function numel(s: Shape): number | null {
  let n = 1;
  for (const d of s) {
    if (typeof d !== 'number') return null;
    n *= d;
  }
  return n;
}

/** Static shape or an error naming what needed it. */
export function staticShape(s: Shape, what: string): number[] {
  if (!s.every((d): d is number => typeof d === 'number')) {
    throw new Error(`${what} needs a fixed shape, got ${shapeStr(s)}. Use fixed sizes for these dimensions.`);
  }
  return [...s];
}

/** Normalises a possibly negative axis against a rank. */
export function normAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new Error(`${what}: axis ${axis} is out of range for a rank-${rank} tensor.`);
  }
  return a;
}

/** Numpy-style (multidirectional) broadcast of two shapes. */
export function broadcastShapes(a: Shape, b: Shape, what: string): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i - (n - a.length) >= 0 ? a[i - (n - a.length)]! : 1;
    const db = i - (n - b.length) >= 0 ? b[i - (n - b.length)]! : 1;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else {
      throw new Error(`${what}: shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast (dim ${i}: ${da} vs ${db}).`);
    }
  }
  return out;
}
