/**
 * Host-side tensors: plain typed arrays with a type and dims, independent of onnxruntime so they can
 * cross a worker boundary (structured clone) and be built by code that never loads ORT.
 * float16 data travels as Uint16Array bit patterns (Node 20 has no Float16Array).
 */
import * as ort from 'onnxruntime-node';
import type { OnnxDataType } from '../onnx/spec';
import { float16BitsToFloat32 } from '../onnx/pack';

export type HostData =
  | Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Int8Array | Uint8Array;

export interface HostTensor {
  type: OnnxDataType;
  dims: number[];
  data: HostData;
}

/** Types the Node binding accepts as graph inputs/outputs (bf16 and int4 are initializer-only there). */
const IO_TYPES: Partial<Record<OnnxDataType, { ort: ort.Tensor.Type; ctor: new (n: number) => HostData }>> = {
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

export function toOrt(t: HostTensor): ort.Tensor {
  const io = IO_TYPES[t.type];
  if (!io) throw new Error(`toOrt: ${t.type} cannot be a graph input in onnxruntime-node.`);
  if (!(t.data instanceof io.ctor)) {
    throw new Error(`toOrt: a ${t.type} tensor needs ${io.ctor.name} data, got ${t.data.constructor.name}.`);
  }
  if (t.type === 'bool') return new ort.Tensor('bool', t.data as Uint8Array, t.dims);
  return new ort.Tensor(io.ort as 'float32', t.data as Float32Array, t.dims);
}

/** CPU tensor -> HostTensor. Never call this on a gpu-buffer tensor (getData aborts the process in 1.30). */
export function fromOrt(t: ort.Tensor): HostTensor {
  if (t.location !== 'cpu') throw new Error(`fromOrt: tensor lives in ${t.location}; read it back through a copy-out session.`);
  const type = t.type === 'float16' ? 'float16' : (t.type as OnnxDataType);
  if (!IO_TYPES[type]) throw new Error(`fromOrt: unsupported output type ${t.type}`);
  let data = t.data as HostData;
  // ORT hands float16 out as Uint16Array already; anything else keeps its typed array.
  if (type === 'float16' && !(data instanceof Uint16Array)) {
    const v = data as unknown as ArrayBufferView;
    data = new Uint16Array(v.buffer, v.byteOffset, v.byteLength / 2);
  }
  return { type, dims: [...t.dims], data };
}

/** Elementwise values as plain numbers (float16 decoded), for comparisons in tests and reports. */
export function toNumbers(t: HostTensor): number[] {
  if (t.type === 'float16') {
    return Array.from(t.data as Uint16Array, float16BitsToFloat32);
  }
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}
