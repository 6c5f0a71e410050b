/** Test helpers: run an IR graph on the CPU EP through the ONNX encoder. */
import * as ort from 'onnxruntime-node';
import type { GraphBuilder } from '../../../src-main/engine/graph/graph';
import type { DType } from '../../../src-main/engine/graph/types';
import { lowerGraph } from '../../../src-main/engine/backends/onnx/lower';
import { encodeModel } from '../../../src-main/engine/onnx/encode';
import { mulberry32 } from '../../../src-main/util/random';

export type Feed = { dtype: DType; shape: number[]; data: ArrayLike<number> };

function toTensor(f: Feed): ort.Tensor {
  switch (f.dtype) {
    case 'float64': return new ort.Tensor('float64', Float64Array.from(f.data), f.shape);
    case 'float32': return new ort.Tensor('float32', Float32Array.from(f.data), f.shape);
    case 'int32': return new ort.Tensor('int32', Int32Array.from(f.data), f.shape);
    case 'int64': return new ort.Tensor('int64', BigInt64Array.from(Array.from(f.data, (v) => BigInt(v))), f.shape);
    case 'bool': return new ort.Tensor('bool', Uint8Array.from(f.data), f.shape);
    default: throw new Error(`test feed type ${f.dtype} not supported`);
  }
}

/** Compiles the graph once; `run` evaluates it on the CPU EP and returns outputs as float64 arrays. */
export async function compile(g: GraphBuilder, opt: ort.InferenceSession.SessionOptions['graphOptimizationLevel'] = 'basic') {
  const { model, nodeCount, byOp } = lowerGraph(g);
  const bytes = encodeModel(model);
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'], graphOptimizationLevel: opt, intraOpNumThreads: 1,
  });
  return {
    nodeCount, byOp, bytes,
    async run(feeds: Record<string, Feed>): Promise<Record<string, Float64Array>> {
      const inFeeds: Record<string, ort.Tensor> = {};
      for (const [k, f] of Object.entries(feeds)) inFeeds[k] = toTensor(f);
      const out = await session.run(inFeeds);
      const res: Record<string, Float64Array> = {};
      for (const [k, t] of Object.entries(out)) res[k] = Float64Array.from(t.data as ArrayLike<number>, Number);
      return res;
    },
    release: () => session.release(),
  };
}

/** Deterministic PRNG (mulberry32) so failures can be replayed from the printed seed. */
export const rng = mulberry32;
