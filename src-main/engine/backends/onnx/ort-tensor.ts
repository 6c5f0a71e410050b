/** onnxruntime tensors <-> the engine's host tensors (runtime/tensor.ts). */
import * as ort from 'onnxruntime-node';
import type { OnnxDataType } from '../../onnx/spec';
import { IO_TYPES, type HostData, type HostTensor } from '../../runtime/tensor';

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
