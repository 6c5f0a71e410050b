/**
 * Logits beyond exp's f32 range on the WebGPU EP: its ReduceLogSumExp kernel does not subtract the max, so
 * the cross-entropy of logits above ~88.7 came back as Infinity (the Llama-3.2-1B shape had logits up to
 * 290 and a non-finite first-step loss with f16 compute). backends/onnx/patches.ts rewrites it; here a tiny
 * model with a large final-norm weight (logits > 100) trains one step on the WebGPU EP, in f32 and in f16,
 * with a finite loss equal to the CPU EP's.
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../src-main/engine/llm/lora';
import { buildEvalGraph, buildTrainGraph } from '../../../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { EngineSession, Program, hostTensor, type EpName } from '../../../../src-main/engine/backends/onnx';
import { f32ToBf16Bits } from '../../../../src-main/engine/safetensors';
import { openWeightSource } from '../../../../src-main/engine/weights/source';
import { bigBf16Model } from '../../../helpers/big';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const B = 1, T = 8, N = B * T;

describe('logits above 88.7 on the WebGPU EP', () => {
  it('one LoRA step in f32 and f16 compute has the CPU EP\'s finite loss', async () => {
    const dir = await bigBf16Model('llama', {}, { edit: (name, bits) => { if (name === 'model.norm.weight') bits.fill(f32ToBf16Bits(200)); } });
    const { config, layout, weights } = await openModel(dir);
    try {
      const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt((i * 37) % config.vocabSize));
      const targets = ids.map((_, i) => ids[(i + 1) % N]!);
      // the case: logits well past exp's f32 range
      const ev = await buildEvalGraph(config, layout, openWeightSource(weights), null, { batch: B, seqLen: T });
      const s = await EngineSession.create(ev.model, { ep: 'cpu', externalDataDir: openWeightSource(weights).dir });
      const logits = (await s.run({ ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)) }))['logits']!.data as Float32Array;
      await s.dispose();
      expect(logits.reduce((m, v) => Math.max(m, v), -Infinity)).toBeGreaterThan(100);

      const lora = buildLoraLayout(config, layout, { rank: 2, alpha: 4, dropout: 0, rslora: false, targets: 'all-linear', seed: 5 });
      const step = async (ep: EpName, compute: 'float32' | 'float16') => {
        const src = openWeightSource(weights, { compute });
        const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
        const p = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep, externalDataDir: src.dir, disableCpuFallback: ep === 'webgpu' });
        try {
          const P = lora.size, z = () => hostTensor('float32', [P], new Float32Array(P));
          await p.init({ params: hostTensor('float32', [P], initLoraParams(lora, 5)), m: z(), v: z(), gacc: z() });
          const out = await p.step({
            ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
            mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
            invCount: hostTensor('float32', [], [1 / N]), adam: hostTensor('float32', [3], adamwScalars(optim, 1)),
          });
          return { loss: Number(out['loss_sum']!.data[0]) / N, gradNorm: Number(out['grad_norm']!.data[0]) };
        } finally {
          await p.dispose();
        }
      };
      const cpu = await step('cpu', 'float32');
      expect(Number.isFinite(cpu.loss)).toBe(true);
      const gpu = await step('webgpu', 'float32');
      expect(Math.abs(gpu.loss - cpu.loss)).toBeLessThan(1e-4 * cpu.loss);
      expect(Math.abs(gpu.gradNorm - cpu.gradNorm)).toBeLessThan(1e-3 * cpu.gradNorm);
      const gpu16 = await step('webgpu', 'float16');
      expect(Math.abs(gpu16.loss - cpu.loss)).toBeLessThan(1e-2 * cpu.loss);
      expect(Number.isFinite(gpu16.gradNorm)).toBe(true);
    } finally {
      await weights.close();
    }
  });
});
