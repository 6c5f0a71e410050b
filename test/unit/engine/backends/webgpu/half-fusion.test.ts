/**
 * The planner fusions on 16-bit results (f16 and bf16 compute): a GEMM's 16-bit value is rounded to the compute
 * type where its store would have rounded it (a chained pair's first result before the second adds it, a LoRA side
 * product x·A where it is kept in workgroup memory and stored, a GEMM result before its epilogue chain reads it), so
 * the fused plan computes exactly what the unfused plan computes: compared bit for bit on the device, in both
 * storages of each compute type (array<f16> with shader-f16, and f32 words holding 16-bit values), grouped and not;
 * and the tiny llama's whole fused train step against its unfused plan (bf16 bit for bit, f16 within 1e-6).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostTensor, type HostTensor } from '../../../../../src-main/engine/backends/onnx';
import { GraphBuilder, type Value } from '../../../../../src-main/engine/graph/graph';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { rel, uniform } from '../../../../helpers/numeric';
import { expectSameOutputsAcrossPlans, expectSameRun, loraStart, loraStepFixture, runSteps, stepFeeds, stepState } from '../../../../helpers/lora-step';

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

// odd sizes, off the 16×16 tiles: M rows, K in, N out, R the LoRA rank, F the MLP width
const M = 37, K = 29, N = 23, R = 5, F = 19;

/**
 * A LoRA projection forward and backward in the compute type (f32 feeds cast to float16, the IR's 16-bit type;
 * outputs widened back: views): y = res + (0.7·(x·Aᵀ)·Bᵀ + 0.9·(x·Wᵀ + bias)) with x·Aᵀ also fetched (a stored
 * side product), dx = dy·W + 1.3·(dy·B)·A (a side product nothing else reads), s = σ(0.5·x·Wᵀ)·(res + bias) (an
 * epilogue with 16-bit intermediates), and dgate, dup = SwiGLUGrad(gate, up, dz·Wd + (dz·Bd)·Ad) (in the chained
 * GEMM's store at 16 bindings).
 */
function graph(): { g: GraphBuilder; feeds: Record<string, HostTensor>; fetch: string[] } {
  const g = new GraphBuilder();
  const shapes: Record<string, number[]> = {
    x: [M, K], w: [N, K], la: [R, K], lb: [N, R], bias: [N], res: [M, N], dy: [M, N],
    gate: [M, F], up: [M, F], dz: [M, N], wd: [N, F], ad: [R, F], bd: [N, R],
  };
  const feeds: Record<string, HostTensor> = {};
  const h: Record<string, Value> = {};
  Object.entries(shapes).forEach(([name, shape], j) => {
    const n = shape.reduce((a, b) => a * b, 1);
    feeds[name] = hostTensor('float32', shape, uniform(n, 101 + j, name === 'gate' ? 4 : 1.7));
    h[name] = g.cast(g.input(name, 'float32', shape), 'float16');
  });
  const out = (name: string, v: Value) => g.output(name, g.cast(v, 'float32'));
  const xa = g.gemm(h.x!, h.la!, null, { transB: true });
  const base = g.gemm(h.x!, h.w!, h.bias!, { transB: true });
  out('y', g.add(h.res!, g.gemm(xa, h.lb!, base, { transB: true, alpha: 0.7, beta: 0.9 })));
  out('xa', xa);
  const dyb = g.gemm(h.dy!, h.lb!);
  out('dx', g.gemm(h.dy!, h.w!, g.gemm(dyb, h.la!, null, { alpha: 1.3 })));
  out('s', g.mul(g.sigmoid(g.gemm(h.x!, h.w!, null, { transB: true, alpha: 0.5 })), g.add(h.res!, h.bias!)));
  const dh = g.gemm(h.dz!, h.wd!, g.gemm(g.gemm(h.dz!, h.bd!), h.ad!));
  const [dg, du] = g.apply('SwiGLUGrad', [h.gate!, h.up!, dh]);
  out('dgate', dg!);
  out('dup', du!);
  return { g, feeds, fetch: ['y', 'xa', 'dx', 's', 'dgate', 'dup'] };
}

describe('16-bit compute: GEMM epilogues, chained pairs and LoRA side products = the unfused plan, bit for bit', () => {
  for (const halfType of ['float16', 'bfloat16'] as const) {
    it(`${halfType === 'float16' ? 'f16' : 'bf16'} compute: the fused kernels are taken, and give the unfused numbers in both storages, grouped and not (device)`, async () => {
      const { g, feeds, fetch } = graph();
      const plan = planGraph(g, { noGrouping: true, maxStorageBuffers: 16, shaderF16: true, halfType });
      expect(plan.byKernel['LoraGemm+Fused(Add)']).toBe(1); // y: chain + x·A side product (stored) + residual epilogue
      expect(plan.byKernel.LoraGemm).toBe(1); // dx: chain + dy·B side product (not stored)
      expect(plan.byKernel['Gemm+Fused(Mul)']).toBe(1); // s
      expect(plan.byKernel['LoraGemm+SwiGLUGrad']).toBe(1); // dgate, dup
      expect(plan.byKernel.Gemm ?? 0).toBe(0);
      expect(plan.byKernel.SwiGLUGrad ?? 0).toBe(0);
      const unfused = planGraph(g, { noFusion: true, noGrouping: true, shaderF16: true, halfType });
      expect(unfused.byKernel.Gemm).toBe(10);
      await expectSameOutputsAcrossPlans(g, fetch, feeds,
        [['unfused', { noFusion: true, noGrouping: true }], ['fused', { noGrouping: true }], ['fused, grouped', {}], ['fused, grouped at 8 bindings', { maxStorageBuffers: 8 }]],
        { halfType, maxStorageBuffers: 16 }, (p, label) => {
          const slots = label.endsWith('array<f16>'); // (the storage's half of the label)
          const stored = new Set(p.plan.dispatches.flatMap((d) => d.bindings.filter((b) => b.write).map((b) => b.ref.storage)));
          expect(stored.has(halfType === 'float16' ? (slots ? 'h16' : 'f16r') : (slots ? 'hb16' : 'b16r'))).toBe(true);
        });
    }, 600_000);
  }
});

describe('16-bit compute: the whole fused LoRA train step = the unfused plan', () => {
  it('tiny llama: bf16 compute bit for bit (loss, gradient, 3 AdamW steps, update); f16 compute within 1e-6 (device)', async () => {
    const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
    const B = 2, T = 8;
    for (const halfType of ['bfloat16', 'float16'] as const) {
      const { dir, config, layout, weights, lora } = await loraStepFixture('llama', { prefix: 'lathe-gpu-half-fusion-', dtype: halfType === 'float16' ? 'f16' : 'bf16' });
      const src = halfType === 'float16' ? openWeightSource(weights, { compute: 'float16' }) : { weights, dir, bf16InPlace: true, bf16Compute: true, compute: 'float16' as const };
      const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true }, optim);
      const init = stepState(loraStart(lora));
      const feeds = stepFeeds(B, T, optim, { masked: [3] });
      const spec = { graph: tg.graph, state: tg.state, fetch: tg.fetch };
      const opts = { externalDataDir: dir, ...(halfType === 'bfloat16' ? { halfType } : {}) };
      const fusedProgram = await GpuProgram.create(spec, opts); // (grouped, the adapter's bindings: lavapipe's 16)
      const unfusedProgram = await GpuProgram.create(spec, { ...opts, noFusion: true, noGrouping: true });
      console.log(`tiny llama ${halfType} step: ${fusedProgram.info.dispatches} dispatches fused, ${unfusedProgram.info.dispatches} unfused`);
      // every planner fusion taken: no separate x·A / dy·B GEMM, GEMM pair or epilogue Add
      expect(fusedProgram.info.dispatches).toBeLessThan(unfusedProgram.info.dispatches / 3);
      const fused = await runSteps(fusedProgram, init, feeds);
      const unfused = await runSteps(unfusedProgram, init, feeds);
      await weights.close();
      if (halfType === 'bfloat16') {
        expectSameRun(fused, unfused);
      } else {
        // measured: the same loss; 6 of 8192 gradient elements differ (max-relative 1.9e-8), the losses of 3 AdamW steps 6.1e-6
        // (IEEE f16 keeps 3 more bits than bf16, so an f32 ulp apart before rounding shows more often)
        expect(fused.first).toBe(unfused.first);
        expect(rel(fused.grad, unfused.grad)).toBeLessThan(1e-6);
        expect(rel(fused.losses, unfused.losses)).toBeLessThan(1e-4);
      }
    }
  }, 900_000);
});
