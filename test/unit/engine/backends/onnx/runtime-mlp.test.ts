/**
 * The small MLP training step (forward + cross-entropy + backward + AdamW in one graph, from
 * src-main/engine/nn) trained for 50 steps on the CPU EP and on the WebGPU EP with its parameters and
 * Adam moments resident on the GPU; the two loss curves must agree.
 */
import { describe, expect, it } from 'vitest';
import { adamwScalars, buildMlpTrainStep, initMlpParams, mlpSyntheticBatch, type MlpConfig } from '../../../../../src-main/engine/nn';
import { probeEp } from '../../../../../src-main/engine/backends/onnx/ep';
import { Program, type ProgramSpec } from '../../../../../src-main/engine/backends/onnx/program';
import type { EpName } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../../../src-main/engine/runtime/tensor';
import { maxAbsDiff } from './runtime-helpers';

const STEPS = 50;
// int32 targets: a Reshape of int64 data has no WebGPU kernel (the placement report names it).
const cfg: MlpConfig = { batch: 16, inDim: 8, hidden: 16, classes: 4, targetType: 'int32', adamw: { lr: 1e-2 } };

export function mlpProgramSpec(c: MlpConfig = cfg): { spec: ProgramSpec; step: ReturnType<typeof buildMlpTrainStep> } {
  const step = buildMlpTrainStep(c);
  return {
    step,
    spec: { model: step.model, state: step.state, fetch: step.fetch },
  };
}

async function train(ep: EpName): Promise<{ losses: number[]; params: number[]; nodes: number }> {
  const { spec, step } = mlpProgramSpec();
  const P = step.paramCount;
  const p = await Program.create(spec, { ep, disableCpuFallback: ep !== 'cpu' });
  try {
    await p.init({
      params: hostTensor('float32', [P], initMlpParams(step.layout, 1)),
      m: hostTensor('float32', [P], new Float32Array(P)),
      v: hostTensor('float32', [P], new Float32Array(P)),
    });
    const losses: number[] = [];
    for (let t = 1; t <= STEPS; t++) {
      const b = mlpSyntheticBatch(cfg, t % 5); // 5 fixed batches in rotation
      const out = await p.step({
        opt: hostTensor('float32', [3], adamwScalars(cfg.adamw!, t)),
        x: hostTensor('float32', [cfg.batch, cfg.inDim], b.x),
        targets: hostTensor('int32', [cfg.batch], b.targets),
      });
      losses.push(toNumbers(out.loss!)[0]!);
    }
    const params = toNumbers((await p.read(['params'])).params!);
    return { losses, params, nodes: p.info.nodeCount };
  } finally {
    await p.dispose();
  }
}

describe('MLP training: CPU vs WebGPU (state on the GPU)', () => {
  it(`trains ${STEPS} steps with the same loss curve on both EPs`, async () => {
    const gpu = await probeEp('webgpu');
    if (!gpu.ok) throw new Error(`WebGPU is not available: ${gpu.reason}. Install Mesa 25 lavapipe (mesa-vulkan-drivers from bookworm-backports).`);
    const cpu = await train('cpu');
    const web = await train('webgpu');
    const lossDiff = maxAbsDiff(cpu.losses, web.losses);
    const paramDiff = maxAbsDiff(cpu.params, web.params);
    console.log(`MLP ${cpu.nodes} nodes; loss ${cpu.losses[0]!.toFixed(4)} -> ${cpu.losses[STEPS - 1]!.toFixed(4)}; ` +
      `max |loss cpu - webgpu| = ${lossDiff.toExponential(2)}, max |param diff| = ${paramDiff.toExponential(2)}`);
    // It really learns (5 rotating batches of a linearly separable task)...
    expect(cpu.losses[STEPS - 1]!).toBeLessThan(cpu.losses[0]! * 0.7);
    // ...and both EPs follow the same curve (measured: 1.2e-7 loss, 2.4e-7 params; f32 reduction
    // order differs between EPs and Adam's normalisation amplifies it, hence 1e-5).
    expect(lossDiff).toBeLessThan(1e-5);
    expect(paramDiff).toBeLessThan(1e-5);
  });
});
