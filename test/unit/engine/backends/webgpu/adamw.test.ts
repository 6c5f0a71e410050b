/**
 * The optimizer end of the train step as one op (AdamWStep: mean, global-norm clip, AdamW, non-finite
 * guard, accumulator reset) against the elementwise chain the train graph used before (written out here
 * with nn/layers.ts's adamw): on the CPU EP the two give the same numbers, and the GPU backend's single
 * fused dispatch gives them within 1e-6 (relative to the largest value), with the update applied,
 * skipped (apply false), clipped or not, and skipped for a non-finite gradient.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { lowerGraph } from '../../../../../src-main/engine/backends/onnx/lower';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers, type HostTensor } from '../../../../../src-main/engine/backends/onnx';
import { adamw, adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { optimizerStep, type OptimConfig } from '../../../../../src-main/engine/llm/train-graph';
import { Rng } from '../../../../../src-main/engine/models/rng';
import { GpuProgram, closeGpu, openGpu } from '../../../../../src-main/engine/backends/webgpu';

const P = 1000;
const OUTS = ['grad_norm', 'params_out', 'm_out', 'v_out', 'gacc_out'];

function inputs(g: GraphBuilder) {
  return {
    grad: g.input('grad', 'float32', [P]), params: g.input('params', 'float32', [P]), m: g.input('m', 'float32', [P]),
    v: g.input('v', 'float32', [P]), gacc: g.input('gacc', 'float32', [P]), apply: g.input('apply', 'bool', []),
    invCount: g.input('invCount', 'float32', []), adam: g.input('adam', 'float32', [3]),
  };
}

/** The train graph's optimizer end before AdamWStep existed (the reference chain). */
function chainGraph(optim: OptimConfig): GraphBuilder {
  const g = new GraphBuilder();
  const { grad, params, m, v, gacc, apply, invCount, adam } = inputs(g);
  const gsum = g.add(gacc, grad);
  const gmean = g.mul(gsum, invCount);
  const norm = g.sqrt(g.reduceSumSquare(gmean, [0], false));
  const gclip = optim.maxGradNorm > 0 ? g.mul(gmean, g.min(g.div(optim.maxGradNorm, g.add(norm, 1e-6)), 1)) : gmean;
  const upd = adamw(g, params, gclip, m, v, adam, optim);
  const finite = g.equal(g.sub(norm, norm), 0);
  const keepOr = (next: typeof norm, prev: typeof norm) => g.where(apply, g.where(finite, next, prev), prev);
  g.output('grad_norm', norm);
  g.output('params_out', keepOr(upd.p, params));
  g.output('m_out', keepOr(upd.m, m));
  g.output('v_out', keepOr(upd.v, v));
  g.output('gacc_out', g.where(apply, g.zerosLike(gsum), gsum));
  return g;
}

function fusedGraph(optim: OptimConfig): GraphBuilder {
  const g = new GraphBuilder();
  const { grad, params, m, v, gacc, apply, invCount, adam } = inputs(g);
  optimizerStep(g, grad, { params, m, v, gacc, apply, invCount, adam }, optim);
  return g;
}

function feeds(seed: number, apply: boolean, nonFinite: boolean, optim: OptimConfig): Record<string, HostTensor> {
  const r = new Rng(seed);
  const rnd = (s: number) => Float32Array.from({ length: P }, () => (r.next() * 2 - 1) * s);
  const grad = rnd(0.5);
  grad[7] = 0; // an exactly-zero gradient: Adam's step there is noise amplified by 1/√v
  if (nonFinite) grad[11] = NaN;
  const v = Float32Array.from(rnd(1e-3), Math.abs);
  return {
    grad: hostTensor('float32', [P], grad), params: hostTensor('float32', [P], rnd(1)), m: hostTensor('float32', [P], rnd(0.01)),
    v: hostTensor('float32', [P], v), gacc: hostTensor('float32', [P], rnd(0.5)), apply: hostTensor('bool', [], new Uint8Array([apply ? 1 : 0])),
    invCount: hostTensor('float32', [], new Float32Array([1 / 7])), adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, 3))),
  };
}

/** max |a − b| / max |b| over the finite entries (NaN must match NaN). */
function rel(a: number[], b: number[]): number {
  let d = 0, s = 1e-30;
  for (let i = 0; i < b.length; i++) {
    if (Number.isNaN(b[i]!)) { if (!Number.isNaN(a[i]!)) return Infinity; continue; }
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / s;
}

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('AdamWStep: one op (one GPU pass) vs the chain it replaces', () => {
  const cases = [
    { label: 'applied, clipped', apply: true, nonFinite: false, maxGradNorm: 0.5 },
    { label: 'applied, no clip', apply: true, nonFinite: false, maxGradNorm: 0 },
    { label: 'accumulate only (apply false)', apply: false, nonFinite: false, maxGradNorm: 1 },
    { label: 'non-finite gradient: update skipped', apply: true, nonFinite: true, maxGradNorm: 1 },
  ];
  cases.forEach((cs, n) => {
    it(cs.label, async () => {
      const optim: OptimConfig = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: cs.maxGradNorm };
      const f = feeds(100 + n, cs.apply, cs.nonFinite, optim);
      const want = await runModel(lowerGraph(chainGraph(optim)).model, f);
      const fused = fusedGraph(optim);
      const cpu = await runModel(lowerGraph(fused).model, f);
      const prog = await GpuProgram.create({ graph: fused, state: [], fetch: OUTS });
      let got: Record<string, HostTensor>;
      try {
        got = await prog.step(f);
      } finally {
        await prog.dispose();
      }
      expect(prog.info.byKernel.AdamWStep).toBe(1);
      // the whole optimizer end: gsum, its mean, the norm reduction and √ (before), the fused update
      expect(prog.info.dispatches).toBeLessThanOrEqual(5);
      const errs: string[] = [];
      for (const o of OUTS) {
        const w = toNumbers(want[o]!);
        expect(toNumbers(cpu[o]!), `CPU ${o}`).toEqual(w);
        const e = rel(toNumbers(got[o]!), w);
        errs.push(`${o} ${e.toExponential(1)}`);
        expect(e, o).toBeLessThan(1e-6);
      }
      if (cs.nonFinite) {
        expect(toNumbers(got.params_out!)).toEqual(toNumbers(f.params!));
        expect(toNumbers(got.v_out!)).toEqual(toNumbers(f.v!));
      }
      if (!cs.apply) expect(toNumbers(got.params_out!)).toEqual(toNumbers(f.params!));
      console.log(`AdamWStep ${cs.label}: ${prog.info.dispatches} dispatches; ${errs.join(', ')}`);
    }, 60_000);
  });
});

describe('AdamWStep in place: state advanced over its own buffers', () => {
  it('3 resident steps equal the CPU chain run 3 times; params/m/v outputs are their state buffers, no [4P] buffer', async () => {
    const optim: OptimConfig = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 0.5 };
    const chain = lowerGraph(chainGraph(optim)).model;
    const fused = fusedGraph(optim);
    const slots = ['params', 'm', 'v', 'gacc'].map((n) => ({ name: n, input: n, output: `${n}_out` }));
    const prog = await GpuProgram.create({ graph: fused, state: slots, fetch: ['grad_norm'] });
    try {
      // the three moments' outputs live in their state inputs' buffers; gacc' over the gradient sum (one [P])
      expect(prog.info.bytes.state).toBe(4 * 4 * P);
      expect(prog.info.bytes.output).toBeLessThan(4 * P + 64);
      const start = feeds(7, true, false, optim);
      await prog.init({ params: start.params!, m: start.m!, v: start.v!, gacc: start.gacc! });
      let want = { ...start };
      for (let s = 0; s < 3; s++) {
        const f = feeds(20 + s, s !== 1, false, optim); // step 1 accumulates only
        const cpu = await runModel(chain, { ...f, params: want.params!, m: want.m!, v: want.v!, gacc: want.gacc! });
        const got = await prog.step({ grad: f.grad!, apply: f.apply!, invCount: f.invCount!, adam: f.adam! });
        expect(rel(toNumbers(got.grad_norm!), toNumbers(cpu.grad_norm!)), `grad_norm step ${s}`).toBeLessThan(1e-6);
        want = { ...want, params: cpu.params_out!, m: cpu.m_out!, v: cpu.v_out!, gacc: cpu.gacc_out! };
      }
      const state = await prog.read();
      for (const n of ['params', 'm', 'v', 'gacc'] as const) {
        expect(rel(toNumbers(state[n]!), toNumbers(want[n]!)), n).toBeLessThan(1e-5);
      }
    } finally {
      await prog.dispose();
    }
  }, 60_000);
});
