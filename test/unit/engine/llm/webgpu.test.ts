/**
 * The LoRA training step on the WebGPU EP (Mesa lavapipe in CI): every node placed on the GPU with CPU
 * fallback disabled, state kept GPU-resident between steps, and the loss curve equal to the CPU EP's.
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor, type EpName } from '../../../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { tinyModel } from '../../../helpers/tiny';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

async function curve(arch: string, ep: EpName, steps: number, compute: 'float32' | 'float16' = 'float32', recompute = false): Promise<{ losses: number[]; gpuResident: boolean; params: Float32Array }> {
  const dir = await tinyModel(arch);
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { rank: 2, alpha: 4, dropout: 0, rslora: false, targets: 'all-linear', seed: 5 });
  const B = 1, T = 8, N = B * T;
  const tg = await buildTrainGraph(config, layout, { weights, dir, compute }, lora, { batch: B, seqLen: T, recompute }, optim);
  const prog = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep, externalDataDir: dir, disableCpuFallback: ep === 'webgpu' });
  const P = lora.size;
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  await prog.init({ params: hostTensor('float32', [P], initLoraParams(lora, 5)), m: z(), v: z(), gacc: z() });
  const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt(((i * 11) % 60) + 5));
  const targets = BigInt64Array.from({ length: N }, (_, i) => ids[(i + 1) % N]!);
  const losses: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const out = await prog.step({
      ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
      mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
      invCount: hostTensor('float32', [], new Float32Array([1 / N])), adam: hostTensor('float32', [3], adamwScalars(optim, s)),
      ...(recompute ? { recompute_one: hostTensor('float32', [], [1]) } : {}),
    });
    losses.push(Number(out['loss_sum']!.data[0]) / N);
  }
  const params = (await prog.read(['params']))['params']!.data as Float32Array;
  const gpuResident = prog.info.gpuResident;
  await prog.dispose();
  await weights.close();
  return { losses, gpuResident, params };
}

describe('LoRA training on the WebGPU EP (lavapipe)', () => {
  // (gemma2: Tanh soft-capping, Gelu-tanh GeGLU, (1 + w) norms; phi3: fused qkv/gate_up Splits, longrope tables)
  for (const arch of ['llama', 'gpt2', 'gemma2', 'phi3']) {
    it(`${arch}: 5 steps fully on the GPU match the CPU EP`, async () => {
      const cpu = await curve(arch, 'cpu', 5);
      const gpu = await curve(arch, 'webgpu', 5);
      expect(gpu.gpuResident).toBe(true);
      for (let i = 0; i < 5; i++) expect(Math.abs(gpu.losses[i]! - cpu.losses[i]!)).toBeLessThan(1e-4 * Math.abs(cpu.losses[i]!));
      let maxDiff = 0;
      for (let i = 0; i < cpu.params.length; i++) maxDiff = Math.max(maxDiff, Math.abs(gpu.params[i]! - cpu.params[i]!));
      expect(maxDiff).toBeLessThan(1e-3);
    });
  }
});

describe('f16 compute for the frozen model on the WebGPU EP (lavapipe)', () => {
  for (const arch of ['llama', 'gpt2', 'gemma2']) {
    it(`${arch}: f16 weights and activations, f32 LoRA and loss: fully on the GPU, loss curve close to f32`, async () => {
      const f32 = await curve(arch, 'webgpu', 5);
      const f16 = await curve(arch, 'webgpu', 5, 'float16');
      expect(f16.gpuResident).toBe(true);
      for (let i = 0; i < 5; i++) expect(Math.abs(f16.losses[i]! - f32.losses[i]!)).toBeLessThan(1e-2 * Math.abs(f32.losses[i]!));
      expect(f16.losses[4]!).toBeLessThan(f16.losses[0]!);
      if (arch === 'llama') {
        const rc = await curve(arch, 'webgpu', 5, 'float16', true); // with activation recomputation too
        for (let i = 0; i < 5; i++) expect(Math.abs(rc.losses[i]! - f16.losses[i]!)).toBeLessThan(1e-3 * Math.abs(f16.losses[i]!));
      }
    });
  }
});

