/**
 * The preference-tuning step (DPO with its in-graph reference, ORPO) on the WebGPU EP (Mesa lavapipe in CI):
 * every node on the GPU with CPU fallback disabled, state GPU-resident, losses equal to the CPU EP's; and
 * DPO with f16 compute for the frozen model close to f32.
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../src-main/engine/llm/lora';
import { buildPreferenceTrainGraph, type PreferenceLoss } from '../../../../src-main/engine/llm/preference-graph';
import { Program, hostTensor, type EpName } from '../../../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { tinyModel } from '../../../helpers/tiny';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const DPO: PreferenceLoss = { method: 'dpo', beta: 0.5, loss: 'sigmoid', labelSmoothing: 0.1, orpoLambda: 0 };
const ORPO: PreferenceLoss = { method: 'orpo', beta: 0.1, loss: 'sigmoid', labelSmoothing: 0, orpoLambda: 0.5 };

async function curve(loss: PreferenceLoss, ep: EpName, steps: number, compute: 'float32' | 'float16' = 'float32'): Promise<{ losses: number[]; gpuResident: boolean }> {
  const dir = await tinyModel('llama');
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { rank: 2, alpha: 4, dropout: 0, rslora: false, targets: 'all-linear', seed: 5 });
  const P = 1, R = 2, T = 8, N = R * T;
  const tg = await buildPreferenceTrainGraph(config, layout, { weights, dir, compute }, lora, { pairs: P, seqLen: T }, loss, optim);
  const prog = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep, externalDataDir: dir, disableCpuFallback: ep === 'webgpu' });
  const S = lora.size;
  const z = () => hostTensor('float32', [S], new Float32Array(S));
  await prog.init({ params: hostTensor('float32', [S], initLoraParams(lora, 5)), m: z(), v: z(), gacc: z() });
  // one pair: a shared 3-token prompt, then different replies; loss on the reply tokens
  const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt(i % T < 3 ? 7 + (i % T) : ((i * 11) % 60) + 5));
  const targets = BigInt64Array.from({ length: N }, (_, i) => ids[(i + 1) % N]!);
  const mask = Float32Array.from({ length: N }, (_, i) => (i % T >= 2 && i % T < T - 1 ? 1 : 0));
  const losses: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const out = await prog.step({
      ids: hostTensor('int64', [R, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
      pairs: hostTensor('float32', [P], [1]), apply: hostTensor('bool', [], new Uint8Array([1])),
      invCount: hostTensor('float32', [], [1 / P]), adam: hostTensor('float32', [3], adamwScalars(optim, s)),
    });
    losses.push(Number(out['loss_sum']!.data[0]) / P);
  }
  const gpuResident = prog.info.gpuResident;
  await prog.dispose();
  await weights.close();
  return { losses, gpuResident };
}

describe('preference tuning on the WebGPU EP (lavapipe)', () => {
  for (const [name, loss] of [['DPO', DPO], ['ORPO', ORPO]] as const) {
    it(`${name}: 4 steps fully on the GPU match the CPU EP`, async () => {
      const cpu = await curve(loss, 'cpu', 4);
      const gpu = await curve(loss, 'webgpu', 4);
      expect(gpu.gpuResident).toBe(true);
      for (let i = 0; i < 4; i++) expect(Math.abs(gpu.losses[i]! - cpu.losses[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(cpu.losses[i]!)));
      expect(cpu.losses.at(-1)!).toBeLessThan(cpu.losses[0]!);
    });
  }

  it('DPO with f16 compute: starts near ln 2 and follows the f32 curve', async () => {
    const f32 = await curve(DPO, 'webgpu', 4);
    const f16 = await curve(DPO, 'webgpu', 4, 'float16');
    // policy and reference are separate f16 forwards that onnxruntime may fuse differently (3.5e-5 measured on
    // lavapipe), so ln 2 holds to f16 rounding here, exactly only in f32
    expect(Math.abs(f16.losses[0]! - Math.LN2)).toBeLessThan(1e-3);
    for (let i = 0; i < 4; i++) expect(Math.abs(f16.losses[i]! - f32.losses[i]!)).toBeLessThan(0.05);
  });
});
