/**
 * A small MLP training step as ONE graph: forward + softmax cross-entropy + backward + AdamW, with
 * all parameters and Adam moments as flat vectors (one input and one output each), so a runtime can
 * keep them on the GPU between steps. Used by the CPU-vs-WebGPU loss-curve test and `npm run bench`.
 *
 *   x [B, D] -> linear(W1, b1) -> act -> rmsNorm(g1) -> linear(W2, b2) -> logits [B, K] -> xent(targets)
 *
 * Graph inputs:  params [P], m [P], v [P], opt [3] (adamwScalars), x [B, D], targets [B]
 * Graph outputs: loss [], params_out [P], m_out [P], v_out [P] (+ grad [P] with outputGrad)
 */
import { GraphBuilder, type Value } from '../graph/graph';
import type { DType } from '../graph/types';
import { gradients } from '../autodiff/grad';
import { lowerGraph } from '../backends/onnx/lower';
import type { OnnxModel } from '../onnx/spec';
import { type AdamWConfig, adamw, linear, softmaxCrossEntropy } from './layers';
import { mulberry32 } from '../../util/random';

export interface MlpConfig {
  batch: number; // B rows per step
  inDim: number; // D
  hidden: number; // H
  classes: number; // K
  activation?: 'relu' | 'silu' | 'gelu_tanh'; // silu
  dtype?: 'float32' | 'float16' | 'float64'; // float32 (everything, Adam state included)
  targetType?: 'int32' | 'int64'; // int64
  normEps?: number; // 1e-6
  adamw?: AdamWConfig; // lr 1e-2
  /** Also output the flat gradient (for checks). */
  outputGrad?: boolean;
}

export interface ParamSlot { name: string; shape: number[]; offset: number; size: number }

export interface MlpTrainStep {
  graph: GraphBuilder;
  model: OnnxModel;
  config: Required<Omit<MlpConfig, 'outputGrad'>> & { outputGrad: boolean };
  /** Layout of the flat parameter vector, in order. */
  layout: ParamSlot[];
  paramCount: number;
  nodes: { forward: number; backward: number; optimizer: number; total: number; onnx: number };
  /** State slots (input -> output, carried between steps) and per-step fetches, ready for a runtime Program. */
  state: { name: string; input: string; output: string }[];
  fetch: string[];
}

const KNOWN = new Set(['batch', 'inDim', 'hidden', 'classes', 'activation', 'dtype', 'targetType', 'normEps', 'adamw', 'outputGrad']);

export function mlpLayout(c: Pick<MlpConfig, 'inDim' | 'hidden' | 'classes'>): ParamSlot[] {
  const shapes: [string, number[]][] = [
    ['w1', [c.hidden, c.inDim]], ['b1', [c.hidden]], ['norm', [c.hidden]],
    ['w2', [c.classes, c.hidden]], ['b2', [c.classes]],
  ];
  let offset = 0;
  return shapes.map(([name, shape]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const s = { name, shape, offset, size };
    offset += size;
    return s;
  });
}

export function buildMlpTrainStep(cfg: MlpConfig): MlpTrainStep {
  for (const k of Object.keys(cfg)) if (!KNOWN.has(k)) throw new Error(`Unknown MLP config key '${k}'.`);
  const c = {
    activation: 'silu' as const, dtype: 'float32' as const, targetType: 'int64' as const, normEps: 1e-6,
    adamw: { lr: 1e-2 }, outputGrad: false, ...cfg,
  };
  const dt: DType = c.dtype;
  const layout = mlpLayout(c);
  const P = layout.reduce((a, s) => a + s.size, 0);
  const g = new GraphBuilder();
  const params = g.input('params', dt, [P]);
  const m = g.input('m', dt, [P]);
  const v = g.input('v', dt, [P]);
  const opt = g.input('opt', dt, [3]);
  const x = g.input('x', dt, [c.batch, c.inDim]);
  const targets = g.input('targets', c.targetType, [c.batch]);

  // unpack: one Split, Reshape for matrices
  const pieces = g.split(params, layout.map((s) => s.size), 0);
  const p: Record<string, Value> = {};
  layout.forEach((s, i) => (p[s.name] = s.shape.length > 1 ? g.reshape(pieces[i]!, s.shape) : pieces[i]!));

  let h = linear(g, x, p.w1!, p.b1!); // [B, H]
  h = c.activation === 'relu' ? g.relu(h) : c.activation === 'gelu_tanh' ? g.gelu(h, 'tanh') : g.silu(h);
  h = g.rmsNorm(h, p.norm!, c.normEps);
  const logits = linear(g, h, p.w2!, p.b2!); // [B, K]
  const loss = softmaxCrossEntropy(g, logits, targets);
  const forward = g.nodes.length;

  const { grads, backwardNodes } = gradients(g, [[loss, null]], [params]);
  const grad = grads[0]!;
  const before = g.nodes.length;
  const upd = adamw(g, params, grad, m, v, opt, c.adamw);
  const optimizer = g.nodes.length - before;

  g.output('loss', loss);
  g.output('params_out', upd.p);
  g.output('m_out', upd.m);
  g.output('v_out', upd.v);
  if (c.outputGrad) g.output('grad', grad);
  const { model, nodeCount } = lowerGraph(g, { name: 'mlp_train_step' });
  return {
    graph: g, model, config: c, layout, paramCount: P,
    nodes: { forward, backward: backwardNodes, optimizer, total: g.nodes.length, onnx: nodeCount },
    state: ['params', 'm', 'v'].map((n) => ({ name: n, input: n, output: `${n}_out` })),
    fetch: ['loss'],
  };
}

/**
 * Deterministic initial parameters (uniform ±1/sqrt(fan_in) like torch.nn.Linear, norm scale 1):
 * the same seed gives the same vector on every machine.
 */
export function initMlpParams(layout: ParamSlot[], seed: number): Float64Array {
  const rand = mulberry32(seed);
  const P = layout.reduce((s, l) => s + l.size, 0);
  const out = new Float64Array(P);
  const fanIn = layout[0]!.shape[1]!;
  for (const s of layout) {
    const bound = 1 / Math.sqrt(s.name === 'w2' || s.name === 'b2' ? layout[3]!.shape[1]! : fanIn);
    for (let i = 0; i < s.size; i++) out[s.offset + i] = s.name === 'norm' ? 1 : (rand() * 2 - 1) * bound;
  }
  return out;
}

/**
 * A fixed synthetic classification task: x ~ U(−1, 1), target = argmax of a fixed random projection,
 * so the loss really goes down. Same seed -> same batch everywhere.
 */
export function mlpSyntheticBatch(cfg: Pick<MlpConfig, 'batch' | 'inDim' | 'classes'>, seed: number): { x: Float64Array; targets: Int32Array } {
  const rand = mulberry32(seed * 2654435761);
  const { batch: B, inDim: D, classes: K } = cfg;
  const proj = new Float64Array(D * K);
  let b = 12345;
  for (let i = 0; i < proj.length; i++) {
    b = (Math.imul(b, 1103515245) + 12345) >>> 0;
    proj[i] = (b / 4294967296) * 2 - 1;
  }
  const x = new Float64Array(B * D);
  const targets = new Int32Array(B);
  for (let r = 0; r < B; r++) {
    for (let d = 0; d < D; d++) x[r * D + d] = rand() * 2 - 1;
    let best = 0, bestV = -Infinity;
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += x[r * D + d]! * proj[d * K + k]!;
      if (s > bestV) { bestV = s; best = k; }
    }
    targets[r] = best;
  }
  return { x, targets };
}
