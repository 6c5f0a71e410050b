/**
 * The plain description of an ONNX model that the IR lowers to and the protobuf encoder writes.
 * Agreed boundary between the graph/autodiff side (src-main/engine/graph, autodiff) and the
 * ONNX/runtime side (src-main/engine/onnx, runtime). Keep it data-only.
 */
export type OnnxDataType =
  | 'float32' | 'float16' | 'float64' | 'bfloat16'
  | 'int64' | 'int32' | 'int8' | 'uint8' | 'int4' | 'uint4' | 'bool';

/** A dimension is a fixed size or a symbolic name (dim_param). */
export type OnnxDim = number | string;

export interface OnnxValueInfo {
  name: string;
  type: OnnxDataType;
  shape: OnnxDim[];
}

/** Raw little-endian bytes embedded in the model, or a reference into an external file (no copy). */
export type OnnxTensorData =
  | { kind: 'raw'; bytes: Uint8Array }
  | { kind: 'external'; location: string; offset: number; length: number };

export interface OnnxTensor {
  name: string;
  type: OnnxDataType;
  dims: number[];
  data: OnnxTensorData;
}

export type OnnxAttribute =
  | { type: 'int'; value: number }
  | { type: 'ints'; value: number[] }
  | { type: 'float'; value: number }
  | { type: 'floats'; value: number[] }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: OnnxTensor }
  | { type: 'graph'; value: OnnxGraph };

export interface OnnxNode {
  op: string;
  /** '' (default ONNX domain) or e.g. 'com.microsoft'. */
  domain?: string;
  name?: string;
  inputs: string[]; // '' marks an omitted optional input
  outputs: string[];
  attributes?: Record<string, OnnxAttribute>;
}

export interface OnnxGraph {
  name: string;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
}

export interface OnnxModel {
  graph: OnnxGraph;
  /** e.g. [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }] */
  opsets: { domain: string; version: number }[];
  producer?: string;
  irVersion?: number;
}
