/**
 * QLoRA on Lathe's GPU backend: Nf4Gemm (codes and double-quantized scales uploaded as they are,
 * dequantized in the GEMM's tile load) against the same graph on the CPU EP (forward and the gradient,
 * both layouts, with a bias), the plan holding no f32 copy of the weight, and the whole QLoRA train step
 * of tiny llama against the CPU EP (loss, gradients, three AdamW steps).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { gradients } from '../../../../../src-main/engine/autodiff/grad';
import { lowerGraph } from '../../../../../src-main/engine/backends/onnx/lower';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { Program, hostTensor, toNumbers, type HostTensor } from '../../../../../src-main/engine/backends/onnx';
import { quantizeNf4 } from '../../../../../src-main/engine/quant/nf4';
import { nf4Gemm, placeNf4 } from '../../../../../src-main/engine/quant/graph';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { openModel } from '../../../../../src-main/engine/models';
import { createTinyModel } from '../../../../../src-main/engine/models/tiny';
import { buildLoraLayout, initLoraParams } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { tempDir } from '../../../../helpers/services';
import { rel, uniform as randn } from '../../../../helpers/numeric';

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('Nf4Gemm on the GPU backend vs the CPU EP', () => {
  for (const transB of [true, false]) {
    it(`y = x·W${transB ? 'ᵀ' : ''} + b and dx; no f32 copy of W on the GPU`, async () => {
      // IN·OUT = 40·72 = 2880: 45 blocks of 64, one short second-level block
      const N = 5, IN = 40, OUT = 72;
      const q = quantizeNf4(randn(IN * OUT, 11, 0.1), transB ? [OUT, IN] : [IN, OUT]);
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [N, IN]);
      const gy = g.input('gy', 'float32', [N, OUT]);
      const bias = g.weight('b', 'float32', [OUT], { kind: 'raw', bytes: new Uint8Array(randn(OUT, 3).buffer) });
      const y = nf4Gemm(g, x, placeNf4(g, 'w', q), bias, transB);
      const { grads } = gradients(g, [[y, gy]], [x]);
      g.output('y', y);
      g.output('dx', grads[0]!);
      const feeds = { x: hostTensor('float32', [N, IN], randn(N * IN, 5)), gy: hostTensor('float32', [N, OUT], randn(N * OUT, 6)) };
      const want = await runModel(lowerGraph(g).model, feeds);
      const plan = planGraph(g);
      expect(plan.byKernel.Nf4Gemm).toBe(2);
      // weights: the code bytes (n/2), the absmax codes (nb), scale2, offset, the bias, the tables; never IN·OUT·4
      expect(plan.bytes.weight).toBeLessThan((IN * OUT) / 2 + 64 + 16 + 4 * OUT + 4 * 3 * 256 + 64);
      expect(plan.bytes.temp + plan.bytes.output).toBeLessThan(4 * IN * OUT);
      const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'dx'] });
      try {
        const got = await prog.step(feeds);
        for (const k of ['y', 'dx']) {
          const e = rel(toNumbers(got[k]!), toNumbers(want[k]!));
          console.log(`Nf4Gemm transB=${transB} ${k}: ${e.toExponential(1)}`);
          expect(e, k).toBeLessThan(2e-6);
        }
      } finally {
        await prog.dispose();
      }
    }, 120_000);
  }
});

describe('QLoRA train step: GPU backend vs CPU EP', () => {
  it('tiny llama (NF4 base weights): loss, gradients and 3 AdamW steps agree', async () => {
    const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
    const dir = path.join(tempDir('lathe-gpu-nf4-'), 'llama');
    await createTinyModel('llama', dir, { seed: 1 });
    const { config, layout, weights } = await openModel(dir);
    const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
    const B = 1, T = 8, N = B * T, P = lora.size;
    const tg = await buildTrainGraph(config, layout, { weights, dir, quantize: 'nf4' }, lora, { batch: B, seqLen: T }, optim);
    const p0 = initLoraParams(lora, 3);
    for (const m of lora.modules) for (let i = 0; i < m.outFeatures * lora.rank; i++) p0[m.bOffset + i] = 0.02 * Math.sin(i + m.bOffset);
    const z = () => hostTensor('float32', [P], new Float32Array(P));
    const init = { params: hostTensor('float32', [P], p0), m: z(), v: z(), gacc: z() };
    const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N).fill(1);
    for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 7) % 40) + 3);
    for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
    const feeds = (s: number, apply: boolean) => ({
      ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
      apply: hostTensor('bool', [], new Uint8Array([apply ? 1 : 0])), invCount: hostTensor('float32', [], new Float32Array([1 / N])),
      adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, s))),
    });
    const run = async (p: { init(v: Record<string, HostTensor>): Promise<void>; step(f: Record<string, HostTensor>): Promise<Record<string, HostTensor>>; read(n: string[]): Promise<Record<string, HostTensor>>; dispose(): Promise<void> }) => {
      await p.init(init);
      const first = Number((await p.step(feeds(1, false))).loss_sum!.data[0]);
      const grad = (await p.read(['gacc'])).gacc!.data as Float32Array;
      const losses: number[] = [];
      for (let s = 1; s <= 3; s++) losses.push(Number((await p.step(feeds(s, true))).loss_sum!.data[0]));
      await p.dispose();
      return { first, grad, losses };
    };
    const want = await run(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', threads: 1, externalDataDir: dir }));
    const gpu = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir });
    expect(gpu.info.byKernel.Nf4Gemm).toBeGreaterThan(0);
    const got = await run(gpu);
    await weights.close();
    const e = { loss: Math.abs(got.first - want.first) / Math.abs(want.first), grad: rel(got.grad, want.grad), losses: rel(got.losses, want.losses) };
    console.log(`QLoRA llama: ${gpu.info.dispatches} dispatches (${gpu.info.byKernel.Nf4Gemm} Nf4Gemm); ${Object.entries(e).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ')}`);
    expect(e.loss).toBeLessThan(1e-5);
    expect(e.grad).toBeLessThan(1e-5);
    expect(e.losses).toBeLessThan(1e-5);
  }, 300_000);
});
