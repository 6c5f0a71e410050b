/**
 * The whole LoRA train step of the tiny models on Lathe's GPU backend against the same IR graph lowered
 * to ONNX on onnxruntime's CPU EP: loss and every LoRA gradient (one accumulate-only micro-batch), then
 * three AdamW steps' losses, grad norms and the parameters they leave (f32, relative 1e-5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor } from '../../../../../src-main/engine/backends/onnx';
import { GpuProgram, closeGpu, openGpu } from '../../../../../src-main/engine/backends/webgpu';
import { TINY_ARCHS } from '../../../../../src-main/engine/models/tiny';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { rel } from '../../../../helpers/numeric';
import { formatErrors, loraStart, loraStepFixture, runSteps, stepErrors, stepFeeds, stepState } from '../../../../helpers/lora-step';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('LoRA train step: GPU backend vs CPU EP (f32)', () => {
  // every tiny architecture in f32, and weights kept in their file's 16-bit type (unpacked in the kernels' loads)
  // the GPU runs the fused graph (flash attention, fused cross-entropy and norm backwards: graph/ops/fused.ts),
  // the CPU EP today's decomposed one; `packed`: two samples per row, segment ids and restarting positions
  const cases = [...TINY_ARCHS.map((arch) => ({ arch, dtype: 'f32' as const, packed: false })), { arch: 'llama', dtype: 'bf16' as const, packed: false },
    { arch: 'qwen2', dtype: 'f16' as const, packed: false }, { arch: 'qwen2', dtype: 'f32' as const, packed: true }];
  for (const { arch, dtype, packed } of cases) {
    it(`${arch} (${dtype} weights${packed ? ', packed samples' : ''}): loss, gradients and 3 AdamW steps agree`, async () => {
      const { dir, config, layout, weights, lora } = await loraStepFixture(arch, { dtype });
      const B = 2, T = 8;
      const src = openWeightSource(weights); // the CPU EP reads bf16 weights as f32 conversions from the (test) weight cache
      const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, packed }, optim);
      // the GPU's graph references bf16 weights in the file (the CPU EP's reads f32 conversions: same values)
      const tgGpu = await buildTrainGraph(config, layout, dtype === 'bf16' ? { weights, dir, bf16InPlace: true } : src, lora, { batch: B, seqLen: T, packed, fused: true }, optim);
      expect(tgGpu.graph.nodes.some((n) => n.op === 'LinearCrossEntropy')).toBe(true);
      const init = stepState(loraStart(lora));
      // `packed`: two samples per row, segment ids and restarting positions
      const feeds = stepFeeds(B, T, optim, { masked: [3], extra: packed ? {
        segments: hostTensor('float32', [B, T], Float32Array.from([1, 1, 1, 2, 2, 2, 2, 0, 1, 1, 1, 1, 1, 2, 2, 2])),
        positions: hostTensor('int64', [B, T], BigInt64Array.from([0, 1, 2, 0, 1, 2, 3, 0, 0, 1, 2, 3, 4, 0, 1, 2].map(BigInt))),
      } : {} });
      /** One accumulate-only micro-batch (loss, Σ-loss gradient in gacc), then three optimizer steps. */
      const run = (p: Program | GpuProgram) => runSteps(p, init, feeds);
      // one at a time: onnxruntime's spinning threads would starve lavapipe's
      const want = await run(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', threads: 1, externalDataDir: src.dir }));
      const gpu = await GpuProgram.create({ graph: tgGpu.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir });
      const info = gpu.info;
      const got = await run(gpu);
      await weights.close();
      const e = stepErrors(got, want);
      console.log(`${arch} ${dtype}: ${info.dispatches} dispatches for ${tg.nodes.total} ONNX nodes, ${info.pipelines} pipelines, GPU bytes ${JSON.stringify(info.bytes)}; ${formatErrors(e)}`);
      expect(e.loss).toBeLessThan(1e-5);
      expect(e.grad).toBeLessThan(1e-5);
      expect(e.losses).toBeLessThan(1e-5);
      // the first optimizer step's norm is the accumulated gradient's (1e-5, as the gradients); the later ones
      // are taken after AdamW updates, which the check below allows to differ by up to 1e-3 (L2), so they get 1e-4
      // (gemma3 measures 1.1e-5 over the three steps)
      expect(rel(got.norms.slice(0, 1), want.norms.slice(0, 1))).toBeLessThan(1e-5);
      expect(e.norms).toBeLessThan(1e-4);
      // Adam divides by √v: elements whose gradient is ~0 turn rounding noise into visible steps (see
      // parity.test.ts), so the update is judged as a whole (L2), not element by element
      expect(e.update).toBeLessThan(1e-3);
    }, 300_000); // lavapipe compiles each new pipeline on first use: minutes on a loaded machine
  }
});
