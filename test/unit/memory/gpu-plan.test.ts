/**
 * Runs on Lathe's GPU backend are checked against their buffer plan (planGraph: exact bytes, no device),
 * not the ONNX-path estimate: a SmolLM2-135M-shaped run with recomputation whose ONNX-path estimate does
 * not fit a budget is started when its planned buffers do, and refused (train.tooBig, figures named)
 * when they do not. On a real GPU (memory not reported by WebGPU) only the host side is checked.
 */
import { describe, expect, it } from 'vitest';
import { parseModelConfig, weightsLayout } from '../../../src-main/engine/models';
import { buildLoraLayout } from '../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../src-main/engine/llm/train-graph';
import { planGraph } from '../../../src-main/engine/backends/webgpu';
import { estimateFromGpuPlan, estimateMemory } from '../../../src-main/engine/memory/estimate';
import { refuseIfGpuPlanTooBig, refuseIfTooBig } from '../../../src-main/engine/memory/oom';
import { UserError } from '../../../src-main/util/progress';
import { REAL_SHAPES, layoutOnlyWeights } from '../../bench/webgpu';

const optim = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

describe('GPU backend memory check from the buffer plan', () => {
  it('starts a run the ONNX-path estimate would refuse when its planned buffers fit; refuses when they do not', async () => {
    const cfg = parseModelConfig(REAL_SHAPES['SmolLM2-135M']!);
    const lay = weightsLayout(cfg);
    const lora = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
    const src = { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true };
    const g = await buildTrainGraph(cfg, lay, src, lora, { batch: 1, seqLen: 512, fused: true, recompute: true }, optim);
    const bytes = planGraph(g.graph, { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input) }).bytes;
    const est = estimateFromGpuPlan(cfg, bytes, null);
    expect(est.planned).toBe(Object.values(bytes).reduce((a, b) => a + b, 0));
    const need = est.device + est.host; // software adapter: the GPU's buffers are this computer's memory
    const onnx = estimateMemory(cfg, { batchSize: 1, seqLen: 512, lora: { rank: 16, targets: 'all-linear' }, recompute: true }, 'cpu').deviceTotal;
    console.log(`SmolLM2-135M B1×T512 recompute: planned ${est.planned} bytes, software-GPU need ${need}, ONNX-path estimate ${onnx}`);
    expect(onnx).toBeGreaterThan(need * 1.2);
    const budget = Math.round((need + onnx) / 2);
    expect(() => refuseIfTooBig(cfg, { batchSize: 1, seqLen: 512, lora: { rank: 16, targets: 'all-linear' }, recompute: true }, 'cpu', budget)).toThrow(UserError);
    expect(() => refuseIfGpuPlanTooBig(cfg, bytes, { software: true }, budget)).not.toThrow();
    let err: UserError | undefined;
    try { refuseIfGpuPlanTooBig(cfg, bytes, { software: true }, need - 1); } catch (e) { err = e as UserError; }
    expect(err?.code).toBe('train.tooBig');
    expect(err?.message).toMatch(/needs about \d+\.\d [MG]B of memory \(GPU buffers \d+\.\d [MG]B, held in this computer's memory by the software GPU\)/);
    // a real GPU: only the host side counts (paged moments add 2·P f32 there)
    expect(() => refuseIfGpuPlanTooBig(cfg, bytes, { software: false }, est.host)).not.toThrow();
    expect(() => refuseIfGpuPlanTooBig(cfg, bytes, { software: false, pagedLoraParams: lora.size }, est.host)).toThrow(UserError);
  }, 120_000);
});
