/**
 * Initializers that point into existing weight files (safetensors) instead of copying bytes into the
 * .onnx. ORT resolves `location` relative to the model's folder (or the session's external-data folder),
 * so the weight file must sit inside that folder.
 */
import { relative, resolve, sep } from 'node:path';
import type { OnnxDataType, OnnxTensor } from './spec';
import { tensorByteLength } from './encode';

/** Safetensors dtype names -> ONNX element types (the ones ORT can hold as initializers). */
const SAFETENSORS_TO_ONNX: Record<string, OnnxDataType> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', I64: 'int64', I32: 'int32', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};

/** What a safetensors reader knows about one tensor (structural: SafetensorsReader's TensorEntry fits). */
export interface FileTensorRef {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset of the tensor's data in `file`. */
  fileOffset: number;
  byteLength: number;
  file: string;
}

/**
 * An external-data initializer referencing `ref` in place. `modelDir` is the folder the .onnx is loaded
 * from (or EngineSessionOptions.externalDataDir). `name` defaults to the tensor's own name.
 */
export function externalInitializer(ref: FileTensorRef, modelDir: string, name = ref.name): OnnxTensor {
  const type = SAFETENSORS_TO_ONNX[ref.dtype];
  if (!type) throw new Error(`externalInitializer: ${ref.name} has dtype ${ref.dtype}, which has no ONNX initializer type here.`);
  const want = tensorByteLength(type, ref.shape);
  if (want !== ref.byteLength) {
    throw new Error(`externalInitializer: ${ref.name} (${ref.dtype} [${ref.shape.join(', ')}]) needs ${want} bytes, the file holds ${ref.byteLength}.`);
  }
  const rel = relative(resolve(modelDir), resolve(ref.file));
  if (rel.startsWith('..') || resolve(rel) === rel) {
    throw new Error(`externalInitializer: ${ref.file} is outside ${modelDir}; ORT only reads external data inside the model folder. ` +
      'Load the model with externalDataDir set to the weights folder.');
  }
  return { name, type, dims: [...ref.shape], data: { kind: 'external', location: rel.split(sep).join('/'), offset: ref.fileOffset, length: ref.byteLength } };
}
