/**
 * OnnxModel -> ONNX protobuf bytes (ModelProto), written by hand from onnx.proto's field numbers.
 * Output is deterministic: fields in a fixed order, attributes sorted by name, no timestamps.
 * Large weights should be `external` tensors: the .onnx then holds only a (location, offset, length)
 * reference, e.g. straight into a safetensors file, and stays far below protobuf's 2 GB limit.
 */
import type {
  OnnxAttribute, OnnxDataType, OnnxDim, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor, OnnxValueInfo,
} from './spec';
import { ProtoWriter } from './protobuf';

/** TensorProto.DataType enum values. */
export const ONNX_DATA_TYPE: Record<OnnxDataType, number> = {
  float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11,
  bfloat16: 16, uint4: 21, int4: 22,
};

/** Bytes per element; int4/uint4 are 0.5 (two per byte, low nibble first). */
export const BYTES_PER_ELEMENT: Record<OnnxDataType, number> = {
  float32: 4, uint8: 1, int8: 1, int32: 4, int64: 8, bool: 1, float16: 2, float64: 8,
  bfloat16: 2, uint4: 0.5, int4: 0.5,
};

/** Byte length of a tensor of this type and element count (int4 rounds up to whole bytes). */
export function tensorByteLength(type: OnnxDataType, dims: readonly number[]): number {
  const n = dims.reduce((a, b) => a * b, 1);
  return Math.ceil(n * BYTES_PER_ELEMENT[type]);
}

/** IR version 10 is the first that allows opset 21 and the int4/uint4 types. */
export const DEFAULT_IR_VERSION = 10;

// AttributeProto.AttributeType
const ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_TENSOR = 4, ATTR_GRAPH = 5;
const ATTR_FLOATS = 6, ATTR_INTS = 7, ATTR_STRINGS = 8;

export function encodeModel(model: OnnxModel): Uint8Array {
  validateModel(model);
  return writeModel(model).finish();
}

function writeModel(model: OnnxModel): ProtoWriter {
  const w = new ProtoWriter();
  w.varint(1, model.irVersion ?? DEFAULT_IR_VERSION); // ir_version
  w.string(2, model.producer ?? 'lathe'); // producer_name
  w.message(7, writeGraph(model.graph)); // graph
  for (const o of model.opsets) {
    const op = new ProtoWriter();
    if (o.domain !== '') op.string(1, o.domain);
    op.varint(2, o.version);
    w.message(8, op); // opset_import
  }
  return w;
}

function writeGraph(g: OnnxGraph): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, writeNode(n)); // node
  w.string(2, g.name); // name
  for (const t of g.initializers) w.message(5, writeTensor(t)); // initializer
  for (const v of g.inputs) w.message(11, writeValueInfo(v)); // input
  for (const v of g.outputs) w.message(12, writeValueInfo(v)); // output
  return w;
}

function writeNode(n: OnnxNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.op);
  const attrs = n.attributes ?? {};
  for (const key of Object.keys(attrs).sort()) w.message(5, writeAttribute(key, attrs[key]!));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function writeAttribute(name: string, a: OnnxAttribute): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, name);
  switch (a.type) {
    case 'float': w.float(2, a.value); w.varint(20, ATTR_FLOAT); break;
    case 'int': w.varint(3, a.value); w.varint(20, ATTR_INT); break;
    case 'string': w.string(4, a.value); w.varint(20, ATTR_STRING); break;
    case 'tensor': w.message(5, writeTensor(a.value)); w.varint(20, ATTR_TENSOR); break;
    case 'graph': w.message(6, writeGraph(a.value)); w.varint(20, ATTR_GRAPH); break;
    case 'floats': w.packedFloats(7, a.value); w.varint(20, ATTR_FLOATS); break;
    case 'ints': w.packedVarints(8, a.value); w.varint(20, ATTR_INTS); break;
    case 'strings': for (const s of a.value) w.string(9, s); w.varint(20, ATTR_STRINGS); break;
    default: throw new Error(`encodeModel: attribute "${name}" has unknown type ${(a as { type: string }).type}`);
  }
  return w;
}

function writeTensor(t: OnnxTensor): ProtoWriter {
  const w = new ProtoWriter();
  w.packedVarints(1, t.dims); // dims
  w.varint(2, ONNX_DATA_TYPE[t.type]); // data_type
  w.string(8, t.name); // name
  if (t.data.kind === 'raw') {
    w.bytes(9, t.data.bytes); // raw_data
  } else {
    const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
    w.message(13, entry('location', t.data.location)); // external_data
    w.message(13, entry('offset', String(t.data.offset)));
    w.message(13, entry('length', String(t.data.length)));
    w.varint(14, 1); // data_location = EXTERNAL
  }
  return w;
}

function writeValueInfo(v: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) shape.message(1, writeDim(d)); // TensorShapeProto.dim
  const tensorType = new ProtoWriter().varint(1, ONNX_DATA_TYPE[v.type]).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType); // TypeProto.tensor_type
  return new ProtoWriter().string(1, v.name).message(2, type);
}

function writeDim(d: OnnxDim): ProtoWriter {
  const w = new ProtoWriter();
  if (typeof d === 'number') w.varint(1, d); // dim_value
  else w.string(2, d); // dim_param
  return w;
}

/** Catches the mistakes ORT would otherwise report far from their cause. */
function validateModel(model: OnnxModel): void {
  if (model.opsets.length === 0) throw new Error('encodeModel: model has no opsets; add e.g. { domain: "", version: 21 }.');
  validateGraph(model.graph);
}

function validateGraph(g: OnnxGraph): void {
  for (const t of g.initializers) validateTensor(t);
  for (const n of g.nodes) {
    for (const [k, a] of Object.entries(n.attributes ?? {})) {
      if (a.type === 'tensor') validateTensor(a.value);
      if (a.type === 'graph') validateGraph(a.value);
      if ((a.type === 'int' || a.type === 'ints') && [a.value].flat().some((x) => !Number.isInteger(x))) {
        throw new Error(`encodeModel: node ${n.name ?? n.op} attribute ${k} must be integers, got ${JSON.stringify(a.value)}`);
      }
    }
  }
}

function validateTensor(t: OnnxTensor): void {
  if (!(t.type in ONNX_DATA_TYPE)) throw new Error(`encodeModel: tensor ${t.name} has unknown type ${t.type}`);
  const want = tensorByteLength(t.type, t.dims);
  const got = t.data.kind === 'raw' ? t.data.bytes.byteLength : t.data.length;
  if (got !== want) {
    throw new Error(`encodeModel: tensor ${t.name} (${t.type} [${t.dims.join(', ')}]) needs ${want} bytes, ` +
      `its ${t.data.kind} data has ${got}.`);
  }
  if (t.data.kind === 'external') {
    const loc = t.data.location;
    // ORT refuses absolute paths and paths leaving the model's folder.
    if (loc.startsWith('/') || /^[a-zA-Z]:/.test(loc) || loc.split(/[\\/]/).includes('..')) {
      throw new Error(`encodeModel: tensor ${t.name} external location "${loc}" must be a relative path ` +
        'inside the model folder (put the .onnx next to the weights file).');
    }
  }
}
