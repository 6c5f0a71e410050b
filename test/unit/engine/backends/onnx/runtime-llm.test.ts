/**
 * The real LoRA training step (src-main/engine/llm: decoder forward, masked cross-entropy, backward to
 * the flat LoRA vector, clipping, AdamW) on tiny models: 10 steps on the CPU EP and 10 on the WebGPU EP
 * with CPU fallback disabled and all state (params, Adam moments, gradient accumulator) GPU-resident.
 * This is what needs the WebGPU patches (the flat-vector Split/Concat are wider than a shader may bind).
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { probeEp } from '../../../../../src-main/engine/backends/onnx/ep';
import { Program } from '../../../../../src-main/engine/backends/onnx/program';
import { hostTensor, toNumbers } from '../../../../../src-main/engine/runtime/tensor';
import { tinyModel } from '../../../../helpers/tiny';
import { maxAbsDiff } from './runtime-helpers';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const STEPS = 10;

describe('LoRA training step: CPU vs WebGPU (GPU-resident state)', () => {
  // One architecture in CI: with a cold Mesa shader cache each costs ~25 s of shader compiles on
  // lavapipe. gpt2 and qwen3 were checked the same way by hand (rel loss diff 1.0-1.3e-7).
  for (const arch of ['llama']) {
    it(`${arch}: same losses, gradient norms and parameters on both EPs`, async () => {
      const gpu = await probeEp('webgpu');
      if (!gpu.ok) throw new Error(`WebGPU is not available: ${gpu.reason}. Install Mesa 25 lavapipe (mesa-vulkan-drivers from bookworm-backports).`);
      const dir = await tinyModel(arch);
      const { config, layout, weights } = await openModel(dir);
      try {
        const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
        const B = 2, T = 8, N = B * T, P = lora.size;
        const tg = await buildTrainGraph(config, layout, { weights, dir }, lora, { batch: B, seqLen: T }, optim);
        const ids = new BigInt64Array(N), targets = new BigInt64Array(N);
        for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 7) % 40) + 3);
        for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
        const feeds = (s: number) => ({
          ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
          mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)),
          apply: hostTensor('bool', [], new Uint8Array([1])), invCount: hostTensor('float32', [], [1 / N]),
          adam: hostTensor('float32', [3], adamwScalars(optim, s)),
        });
        const runs: Record<string, { loss: number[]; norm: number[]; params: number[]; patches: string[] }> = {};
        for (const ep of ['cpu', 'webgpu'] as const) {
          const p = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep, externalDataDir: dir, disableCpuFallback: ep === 'webgpu' });
          try {
            expect(p.info.gpuResident).toBe(ep === 'webgpu');
            const z = () => hostTensor('float32', [P], new Float32Array(P));
            await p.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), m: z(), v: z(), gacc: z() });
            const loss: number[] = [], norm: number[] = [];
            for (let s = 1; s <= STEPS; s++) {
              const o = await p.step(feeds(s));
              loss.push(toNumbers(o.loss_sum!)[0]!);
              norm.push(toNumbers(o.grad_norm!)[0]!);
            }
            runs[ep] = { loss, norm, params: toNumbers((await p.read(['params'])).params!), patches: p.info.patches };
          } finally {
            await p.dispose();
          }
        }
        const { cpu, webgpu } = runs as Required<typeof runs>;
        const rel = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.max(1, Math.abs(x))));
        const d = { loss: rel(cpu!.loss, webgpu!.loss), norm: rel(cpu!.norm, webgpu!.norm), params: maxAbsDiff(cpu!.params, webgpu!.params) };
        console.log(`${arch}: ${tg.nodes.total} nodes, ${P} LoRA values; loss ${cpu!.loss[0]!.toFixed(2)} -> ${cpu!.loss[STEPS - 1]!.toFixed(2)}; ` +
          `rel diff loss ${d.loss.toExponential(1)}, grad norm ${d.norm.toExponential(1)}; max |param diff| ${d.params.toExponential(1)}; ` +
          `WebGPU patches: ${webgpu!.patches.length}`);
        expect(webgpu!.patches.some((l) => l.startsWith('Split'))).toBe(true);
        expect(cpu!.loss[STEPS - 1]!).toBeLessThan(cpu!.loss[0]! * 0.8);
        // Measured ~2e-7 / 5e-7 / 5e-6; Adam turns f32 summation-order noise into small parameter differences.
        expect(d.loss).toBeLessThan(1e-5);
        expect(d.norm).toBeLessThan(1e-5);
        expect(d.params).toBeLessThan(1e-4);
      } finally {
        await weights.close();
      }
    });
  }
});
