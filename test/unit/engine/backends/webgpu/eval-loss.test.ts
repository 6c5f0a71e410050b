/**
 * The eval graph's held-out loss on the GPU backend goes through LinearCrossEntropy (the lm_head GEMM and
 * the loss per vocabulary chunk): the fused graph's loss_sum equals the CPU EP's (unfused graph, [N, V]
 * logits) for llama and gemma2 (soft-capped, scaled embedding), with a LoRA adapter and a mask; a program
 * fetching only loss_sum plans no [N, V] buffer at a real shape, while fetching logits still gives them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel, parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../../src-main/engine/llm/lora';
import { buildEvalGraph } from '../../../../../src-main/engine/llm/train-graph';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../../../src-main/engine/runtime/tensor';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { tinyModel } from '../../../../helpers/tiny';
import { REAL_SHAPES, layoutOnlyWeights } from '../../../../bench/webgpu';

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('eval loss through LinearCrossEntropy on the GPU backend', () => {
  for (const arch of ['llama', 'gemma2']) {
    it(`${arch}: fused eval loss_sum = CPU EP's, logits still fetchable`, async () => {
      const dir = await tinyModel(arch, 3);
      const { config, layout, weights } = await openModel(dir);
      const src = openWeightSource(weights);
      try {
        const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 2 });
        const B = 2, T = 8, N = B * T;
        const fused = await buildEvalGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true });
        expect(fused.graph.countByOp().LinearCrossEntropy).toBe(1);
        const plain = await buildEvalGraph(config, layout, src, lora, { batch: B, seqLen: T });
        const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt(2 + ((i * 7 + 3) % (config.vocabSize - 2))));
        const tg = BigInt64Array.from({ length: N }, (_, i) => BigInt(1 + ((i * 11 + 5) % (config.vocabSize - 1))));
        const mask = Float32Array.from({ length: N }, (_, i) => (i % 5 === 4 ? 0 : 1));
        const params = initLoraParams(lora, 4);
        for (let i = 0; i < params.length; i++) params[i] = params[i]! + 0.01 * Math.sin(i); // B ≠ 0: the adapter counts
        const feeds = {
          ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], tg), mask: hostTensor('float32', [N, 1], mask),
          params: hostTensor('float32', [lora.size], params),
        };
        const want = await runModel(plain.model, feeds, { externalDataDir: src.dir });
        const prog = await GpuProgram.create({ graph: fused.graph, state: [], fetch: ['loss_sum', 'logits'] }, { externalDataDir: src.dir });
        try {
          const got = await prog.step(feeds);
          const l = toNumbers(got.loss_sum!)[0]!, w = toNumbers(want.loss_sum!)[0]!;
          console.log(`${arch}: eval loss_sum GPU ${l} vs CPU EP ${w}`);
          expect(Math.abs(l - w) / Math.abs(w)).toBeLessThan(1e-5);
          const gl = toNumbers(got.logits!), wl = toNumbers(want.logits!);
          let d = 0, m = 0;
          wl.forEach((x, i) => { d = Math.max(d, Math.abs(gl[i]! - x)); m = Math.max(m, Math.abs(x)); });
          expect(d / m).toBeLessThan(1e-5);
        } finally {
          await prog.dispose();
        }
      } finally {
        await weights.close();
      }
    }, 120_000);
  }

  it('plan (no device): SmolLM2-135M B1×T1024 eval fetching loss_sum holds no [N, V] buffer', async () => {
    const cfg = parseModelConfig(REAL_SHAPES['SmolLM2-135M']!);
    const lay = weightsLayout(cfg);
    const src = { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true };
    const T = 1024, NV = 4 * T * cfg.vocabSize;
    const eg = await buildEvalGraph(cfg, lay, src, null, { batch: 1, seqLen: T, fused: true });
    const loss = planGraph(eg.graph, { outputs: ['loss_sum'] });
    const largest = Math.max(...loss.buffers.filter((b) => b.kind !== 'weight').map((b) => b.bytes));
    console.log(`SmolLM2-135M eval T${T}: largest non-weight buffer ${largest} bytes ([N, V] f32 = ${NV}); temp ${loss.bytes.temp}`);
    expect(largest).toBeLessThan(NV / 2);
    expect(loss.bytes.temp).toBeLessThan(NV);
    const logits = planGraph(eg.graph, { outputs: ['logits'] });
    // (fetched, the logits are computed into an [N, V] buffer; it may be one the forward's activations used before)
    expect(logits.outputs.get('logits')!.ref.buf.bytes).toBeGreaterThanOrEqual(NV);
  }, 120_000);
});
