/**
 * Host-side tensors: plain typed arrays with a type and dims, shared by both backends (onnxruntime's in
 * backends/onnx, whose ort.Tensor conversions are in backends/onnx/ort-tensor.ts, and Lathe's own in
 * backends/webgpu); independent of onnxruntime so they can cross a worker boundary (structured clone)
 * and be built by code that never loads ORT.
 * float16 data travels as Uint16Array bit patterns (Node 20 has no Float16Array).
 */
import type { OnnxDataType } from '../onnx/spec';
import { float16BitsToFloat32 } from '../onnx/pack';

export type HostData =
  | Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Int8Array | Uint8Array;

export interface HostTensor {
  type: OnnxDataType;
  dims: number[];
  data: HostData;
}

/**
 * Types a host tensor can hold: those onnxruntime's Node binding accepts as graph inputs/outputs (bf16 and
 * int4 are initializer-only there), with the ort type name and the typed array that carries them.
 */
export const IO_TYPES: Partial<Record<OnnxDataType, { ort: 'float32' | 'float64' | 'float16' | 'int32' | 'int64' | 'int8' | 'uint8' | 'bool'; ctor: new (n: number) => HostData }>> = {
  float32: { ort: 'float32', ctor: Float32Array },
  float64: { ort: 'float64', ctor: Float64Array },
  float16: { ort: 'float16', ctor: Uint16Array },
  int32: { ort: 'int32', ctor: Int32Array },
  int64: { ort: 'int64', ctor: BigInt64Array },
  int8: { ort: 'int8', ctor: Int8Array },
  uint8: { ort: 'uint8', ctor: Uint8Array },
  bool: { ort: 'bool', ctor: Uint8Array },
};

export function hostTensor(type: OnnxDataType, dims: number[], data: HostData | ArrayLike<number>): HostTensor {
  const io = IO_TYPES[type];
  if (!io) throw new Error(`hostTensor: ${type} cannot be a graph input or output in onnxruntime-node; convert it (e.g. to float32) first.`);
  const n = dims.reduce((a, b) => a * b, 1);
  let arr: HostData;
  if (data instanceof io.ctor) arr = data;
  else if (type === 'int64') arr = BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(v)));
  else {
    arr = new io.ctor(n);
    (arr as Float32Array).set(data as ArrayLike<number>);
  }
  if (arr.length !== n) throw new Error(`hostTensor: dims [${dims.join(', ')}] need ${n} elements, got ${arr.length}.`);
  return { type, dims: [...dims], data: arr };
}

/** Elementwise values as plain numbers (float16 decoded), for comparisons in tests and reports. */
export function toNumbers(t: HostTensor): number[] {
  if (t.type === 'float16') {
    return Array.from(t.data as Uint16Array, float16BitsToFloat32);
  }
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/**
 * A resident state value of a program (either backend's): read from graph input `input` before a step,
 * taken from graph output `output` after it, kept on the device between steps.
 */
export interface StateSlot {
  /** Slot name used by init/read. */
  name: string;
  /** Graph input holding the value before the step. */
  input: string;
  /** Graph output holding the value after the step. */
  output: string;
}
