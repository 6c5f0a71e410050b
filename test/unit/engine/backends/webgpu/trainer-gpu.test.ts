/** `ep: 'gpu'` in the trainer: the same run on Lathe's GPU backend and on the CPU EP gives the same metrics. */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { train } from '../../../../../src-main/engine/train/trainer';
import { closeGpu } from '../../../../../src-main/engine/backends/webgpu';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';
import { tempDir } from '../../../../helpers/services';

afterAll(() => closeGpu());

describe('trainer on the GPU backend', () => {
  it('trains 3 steps with the same losses, grad norms and validation as the CPU EP', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 2, evalEvery: 0, checkpointEvery: 10, maxSteps: 3, optim: { lr: 5e-3 }, schedule: { warmupSteps: 1 } };
    const metrics: Record<string, Record<string, number>[]> = { cpu: [], gpu: [] };
    const cpu = await train({ ...base, out: path.join(tempDir(), 'cpu'), ep: 'cpu' }, { onMetric: (m) => metrics.cpu!.push(m as Record<string, number>) });
    const gpu = await train({ ...base, out: path.join(tempDir(), 'gpu'), ep: 'gpu' }, { onMetric: (m) => metrics.gpu!.push(m as Record<string, number>) });
    expect(gpu.ep).toBe('gpu');
    expect(gpu.epReason).toMatch(/GPU backend/);
    const steps = (k: string) => metrics[k]!.filter((m) => typeof m.loss === 'number');
    expect(steps('gpu').length).toBe(3);
    steps('cpu').forEach((c, i) => {
      const g = steps('gpu')[i]!;
      expect(Math.abs(g.loss! - c.loss!) / c.loss!).toBeLessThan(1e-5);
      expect(Math.abs(g.gradNorm! - c.gradNorm!) / c.gradNorm!).toBeLessThan(1e-4);
    });
    for (const [k, v] of Object.entries(cpu.val)) expect(Math.abs(gpu.val[k]!.loss - v.loss) / v.loss).toBeLessThan(1e-5);
  }, 600_000);

  it('QLoRA (NF4 codes from the weight cache, uploaded as they are): 2 steps as on the CPU EP', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 1, evalEvery: 0, checkpointEvery: 10, maxSteps: 2, quantization: 'nf4' as const, optim: { lr: 5e-3 }, schedule: { warmupSteps: 1 } };
    const metrics: Record<string, Record<string, number>[]> = { cpu: [], gpu: [] };
    await train({ ...base, out: path.join(tempDir(), 'cpu'), ep: 'cpu' }, { onMetric: (m) => metrics.cpu!.push(m as Record<string, number>) });
    const gpu = await train({ ...base, out: path.join(tempDir(), 'gpu'), ep: 'gpu' }, { onMetric: (m) => metrics.gpu!.push(m as Record<string, number>) });
    expect(gpu.ep).toBe('gpu');
    const steps = (k: string) => metrics[k]!.filter((m) => typeof m.loss === 'number');
    expect(steps('gpu').length).toBe(2);
    steps('cpu').forEach((c, i) => {
      const g = steps('gpu')[i]!;
      expect(Math.abs(g.loss! - c.loss!) / c.loss!).toBeLessThan(1e-5);
      expect(Math.abs(g.gradNorm! - c.gradNorm!) / c.gradNorm!).toBeLessThan(1e-4);
    });
  }, 600_000);
});
