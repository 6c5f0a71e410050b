/**
 * bf16 compute on Lathe's GPU backend: the f16-compute graph planned with `halfType: 'bfloat16'`, so its float16
 * values are bfloat16 there: stored in 16 bits (bf16 bits in array<f16> slots with shader-f16, else f32 words
 * rounded to bf16), rounded to nearest-even with integer bit arithmetic, f32 math inside every kernel, f32 LoRA
 * masters and AdamW; bf16 weights read in place (their Cast to the compute type a view). Exact rounding against a
 * host reference, and the tiny llama LoRA step against the CPU EP's f32 graph within bf16 precision (onnxruntime's
 * CPU EP has no bf16 compute to compare with).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { openModel } from '../../../../../src-main/engine/models';
import { buildLoraLayout } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor } from '../../../../../src-main/engine/backends/onnx';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { createTinyModel } from '../../../../../src-main/engine/models/tiny';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { tempDir } from '../../../../helpers/services';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';
import { train } from '../../../../../src-main/engine/train/trainer';
import { rel, rel2 } from '../../../../helpers/numeric';
import { expectSameRun, formatErrors, gpuHalfAndEmulation, loraStart, loraStepFixture, runSteps, stepFeeds, stepState } from '../../../../helpers/lora-step';

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

/** Host reference: f32 -> nearest bfloat16 (ties to even), NaN kept. */
const rb = (v: number): number => {
  if (Number.isNaN(v)) return NaN;
  const u = new Uint32Array(Float32Array.of(v).buffer);
  u[0] = (u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000;
  return new Float32Array(u.buffer)[0]!;
};

describe('bf16 compute: storage and rounding', () => {
  for (const shaderF16 of [true, false]) {
    it(`bf16 rounding is exact (${shaderF16 ? 'bf16 bits in array<f16>' : 'b16r emulation'}): stores and fused-chain intermediates, ties to even, range past f16's, ±inf and NaN`, async () => {
      const n = 16;
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [n]);
      const c = g.input('c', 'float32', [n]);
      const h = g.cast(x, 'float16'), hc = g.cast(c, 'float16');
      const m = g.mul(h, h); // stored (two readers)
      const z = g.add(g.mul(m, hc), h); // one fused kernel: m·c is an intermediate of the compute type
      g.output('m', g.cast(m, 'float32'));
      g.output('z', g.cast(z, 'float32'));
      g.output('h', g.cast(g.neg(h), 'float32')); // a stored bf16 tensor read back as it is (a widening view)
      const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['m', 'z', 'h'] }, { shaderF16, halfType: 'bfloat16' });
      try {
        expect(prog.plan.byKernel['Fused(Add)']).toBe(1);
        const stored = new Set(prog.plan.dispatches.flatMap((d) => d.bindings.filter((b) => b.write).map((b) => b.ref.storage)));
        expect(stored.has(shaderF16 ? 'hb16' : 'b16r')).toBe(true);
        expect(stored.has('h16') || stored.has('f16r')).toBe(false);
        // 1 + 2⁻⁸ and 1 + 3·2⁻⁸ are ties (to 1 and 1 + 2⁻⁶: even); 1e5 and 3e30 are far past f16's range; 1.8e19² overflows bf16
        const xs = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, 0.33333, -200.7, 1e5, 3e30, 1.8e19, 1e-20, 1e-39, -2.5, Infinity, -Infinity, NaN, 7e-3, 0.1, 3.4e38]);
        const cs = Float32Array.from([1.3, 0.77, 1 + 2 ** -8, -3.1, 0.5, 1e-2, 3, -0.1, 2, 1, 1, 1, 1, 1e-2, 3, 1]);
        const got = await prog.step({ x: hostTensor('float32', [n], xs), c: hostTensor('float32', [n], cs) });
        const f = Math.fround;
        const mw = Array.from(xs, (v) => rb(f(rb(v) * rb(v))));
        const zw = mw.map((mv, i) => rb(f(rb(f(mv * rb(cs[i]!))) + rb(xs[i]!))));
        expect(mw.slice(0, 2)).toEqual([1, rb(f((1 + 2 ** -6) ** 2))]);
        expect(rb(1 + 2 ** -8)).toBe(1);
        expect(rb(3.4e38)).toBe(Infinity); // (past bf16's largest finite 3.3895e38 rounds to inf)
        expect(Array.from(got.m!.data as Float32Array)).toEqual(mw);
        expect(Array.from(got.z!.data as Float32Array)).toEqual(zw);
        expect(mw[4]).toBe(rb(1e10)); // bf16, not f16 (f16 would overflow to inf)
        // 1e-20, 1e-39 (an f32 subnormal): their bf16 bits are f16 subnormal / tiny patterns in an array<f16> slot, kept as bits
        expect(Array.from(got.h!.data as Float32Array)).toEqual(Array.from(xs, (v) => -rb(v)));
      } finally {
        await prog.dispose();
      }
    });
  }
});

describe('LoRA train step in bf16 compute: GPU backend vs the CPU EP\'s f32 graph', () => {
  it('tiny llama, bf16 weights in place: loss, gradients and 3 AdamW steps agree to bf16 precision; f16 compute is closer', async () => {
    const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
    const { dir, config, layout, weights, lora } = await loraStepFixture('llama', { prefix: 'lathe-gpu-bf16-', dtype: 'bf16' });
    const B = 2, T = 8;
    const ref = openWeightSource(weights); // (bf16 converted to f32 in the weight cache for the CPU EP)
    const tg = await buildTrainGraph(config, layout, ref, lora, { batch: B, seqLen: T }, optim);
    const bf = await buildTrainGraph(config, layout, { weights, dir, bf16InPlace: true, bf16Compute: true, compute: 'float16' }, lora, { batch: B, seqLen: T, fused: true }, optim);
    const init = stepState(loraStart(lora));
    const feeds = stepFeeds(B, T, optim, { masked: [3] });
    const want = await runSteps(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', threads: 1, externalDataDir: ref.dir }), init, feeds);
    const spec = { graph: bf.graph, state: bf.state, fetch: bf.fetch };
    // (and the emulation, f32 words holding the bf16-rounded values: the same numbers)
    const { got, info } = await gpuHalfAndEmulation(spec, { externalDataDir: dir, halfType: 'bfloat16' }, init, feeds, (gpu) => {
      // every 16-bit activation is bf16 (none f16); the bf16 weights are read in place (no Cast dispatch copies them)
      const written = new Set(gpu.plan.dispatches.flatMap((d) => d.bindings.filter((b) => b.write).map((b) => b.ref.storage)));
      expect(written.has('hb16') || written.has('b16r')).toBe(true);
      expect(written.has('h16') || written.has('f16r')).toBe(false);
      expect(gpu.plan.dispatches.filter((d) => d.name === 'Cast' && d.bindings.some((b) => b.ref.storage === 'bf16')).length).toBe(0);
    });
    // the previous formulation (a Cast of each LoRA factor): one Cast of the flat masters gives the same numbers bit for bit
    const before = await buildTrainGraph(config, layout, { weights, dir, bf16InPlace: true, bf16Compute: true, compute: 'float16' }, lora, { batch: B, seqLen: T, fused: true, castPerFactor: true }, optim);
    expectSameRun(got, await runSteps(await GpuProgram.create({ graph: before.graph, state: bf.state, fetch: bf.fetch }, { externalDataDir: dir, halfType: 'bfloat16' }), init, feeds));
    // the same graph as f16 compute (IEEE f16 activations: 3 more mantissa bits than bf16) lands closer to f32
    const f16 = await runSteps(await GpuProgram.create(spec, { externalDataDir: dir }), init, feeds);
    await weights.close();
    const err = (r: typeof got) => ({ loss: Math.abs(r.first - want.first) / Math.abs(want.first), grad: rel(r.grad, want.grad), grad2: rel2(r.grad, want.grad), losses: rel(r.losses, want.losses), update: rel2(r.update, want.update) });
    const e = err(got), e16 = err(f16);
    console.log(`llama bf16 compute: ${info.dispatches} dispatches, GPU bytes ${JSON.stringify(info.bytes)}; vs f32: ${formatErrors(e)}; f16 compute vs f32: ${formatErrors(e16)}`);
    // bf16 keeps 8 significant bits (unit roundoff 2⁻⁹ ≈ 2e-3): the loss within 1e-2, gradients within 5e-2 (L2) of f32
    expect(e.loss).toBeLessThan(1e-2);
    expect(e.grad2).toBeLessThan(5e-2);
    expect(e.losses).toBeLessThan(1e-2);
    expect(e.update).toBeLessThan(1e-1);
    // and it is bf16, not f16: its gradients are further from f32 than the f16 run's
    expect(e.grad2).toBeGreaterThan(e16.grad2);
  }, 600_000);

  it('the plan of a bf16 step reads the bf16 weights in place (the f32 step\'s weight bytes) and holds fewer activation bytes (16-bit slots)', async () => {
    const dir = path.join(tempDir('lathe-gpu-bf16-plan-'), 'llama');
    await createTinyModel('llama', dir, { seed: 1, dtype: 'bf16' });
    const { config, layout, weights } = await openModel(dir);
    const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
    const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
    const plan = async (compute: 'float32' | 'float16', halfType?: 'bfloat16') => {
      const tg = await buildTrainGraph(config, layout, { weights, dir, bf16InPlace: true, bf16Compute: true, compute }, lora, { batch: 2, seqLen: 64, fused: true }, optim);
      return planGraph(tg.graph, { outputs: [...tg.fetch, ...tg.state.map((s) => s.output)], state: tg.state.map((s) => s.input), shaderF16: true, ...(halfType ? { halfType } : {}) });
    };
    const f32 = await plan('float32'), bf16 = await plan('float16', 'bfloat16');
    await weights.close();
    // bf16 weights read in place under both: the same weight bytes
    expect(bf16.bytes.weight).toBe(f32.bytes.weight);
    const act = (p: typeof f32) => p.bytes.temp + p.bytes.input;
    const ratio = act(bf16) / act(f32);
    console.log(`tiny llama B2×T64 activations: f32 ${act(f32)} B, bf16 ${act(bf16)} B (${ratio.toFixed(3)})`);
    expect(ratio).toBeLessThan(0.75);
  }, 120_000);
});

describe('16-bit compute with QLoRA in the trainer', () => {
  it('trains 3 QLoRA steps with compute float16 and with bfloat16 on the GPU backend, close to the f32 run; bf16 refused off the backend', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 2, evalEvery: 2, checkpointEvery: 10, maxSteps: 3, optim: { lr: 5e-3 }, schedule: { warmupSteps: 1 }, quantization: 'nf4', ep: 'gpu' };
    await expect(train({ ...base, ep: 'cpu', compute: 'bfloat16', out: path.join(tempDir(), 'cpu') }, {})).rejects.toMatchObject({ code: 'train.bf16NeedsGpu' });
    const metrics: Record<string, Record<string, number>[]> = { f32: [], float16: [], bfloat16: [] };
    await train({ ...base, out: path.join(tempDir(), 'f32') }, { onMetric: (m) => metrics.f32!.push(m as Record<string, number>) });
    for (const compute of ['float16', 'bfloat16'] as const) {
      const logs: string[] = [];
      const r = await train({ ...base, compute, out: path.join(tempDir(), compute) }, { onMetric: (m) => metrics[compute]!.push(m as Record<string, number>), onLog: (_level, m) => logs.push(m) });
      expect(r.ep).toBe('gpu');
      expect(logs.some((l) => /^GPU backend: validation runs on it too/.test(l))).toBe(true);
    }
    const steps = (k: string) => metrics[k]!.filter((m) => typeof m.loss === 'number');
    // validation on the backend in the compute type too (every 2 steps): its losses near the f32 run's
    const evals = (k: string) => metrics[k]!.flatMap((m) => Object.entries(m).filter(([n]) => /^val_.*_loss$/.test(n)).map(([, v]) => v));
    for (const k of ['float16', 'bfloat16']) {
      expect(steps(k).length).toBe(3);
      steps('f32').forEach((c, i) => {
        const h = steps(k)[i]!;
        expect(Math.abs(h.loss! - c.loss!) / c.loss!, k).toBeLessThan(k === 'float16' ? 1e-2 : 2e-2);
        expect(Math.abs(h.gradNorm! - c.gradNorm!) / c.gradNorm!, k).toBeLessThan(1e-1);
      });
      expect(evals(k).length).toBeGreaterThan(0);
      evals('f32').forEach((v, i) => expect(Math.abs(evals(k)[i]! - v) / v, k).toBeLessThan(2e-2));
    }
  }, 600_000);
});
