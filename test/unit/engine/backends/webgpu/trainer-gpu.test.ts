/** `ep: 'gpu'` in the trainer: the same run on Lathe's GPU backend and on the CPU EP gives the same metrics. */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { closeGpu } from '../../../../../src-main/engine/backends/webgpu';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';
import { tempDir } from '../../../../helpers/services';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { prepareCorpus } from '../../../../../src-main/data/prepare';
import { shortRun, stepMetricErrors, trainCpuAndGpu } from '../../../../helpers/lora-step';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../..');

afterAll(() => closeGpu());

describe('trainer on the GPU backend', () => {
  it('trains 3 steps with the same losses, grad norms and validation as the CPU EP', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const { cpu: { result: cpu, steps: cpuSteps }, gpu: { result: gpu, steps: gpuSteps } } = await trainCpuAndGpu(shortRun(model, dataset, 3));
    expect(gpu.ep).toBe('gpu');
    expect(gpu.epReason).toMatch(/GPU backend/);
    expect(gpuSteps.length).toBe(3);
    const d = stepMetricErrors(gpuSteps, cpuSteps);
    expect(d.loss).toBeLessThan(1e-5);
    expect(d.gradNorm).toBeLessThan(1e-4);
    for (const [k, v] of Object.entries(cpu.val)) expect(Math.abs(gpu.val[k]!.loss - v.loss) / v.loss).toBeLessThan(1e-5);
  }, 600_000);

  it('QLoRA (NF4 codes from the weight cache, uploaded as they are): 2 steps as on the CPU EP', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { ...shortRun(model, dataset, 2), gradAccum: 1, quantization: 'nf4' as const };
    const { cpu, gpu } = await trainCpuAndGpu(base);
    expect(gpu.result.ep).toBe('gpu');
    expect(gpu.steps.length).toBe(2);
    const d = stepMetricErrors(gpu.steps, cpu.steps);
    expect(d.loss).toBeLessThan(1e-5);
    expect(d.gradNorm).toBeLessThan(1e-4);
  }, 600_000);

  it('the bundled demo (default model, sample + general corpus, the demo\'s settings, 4 steps): losses, validation and samples equal on gpu and cpu', async () => {
    // `lathe demo` / README's headless job, shortened: same model, corpus, block size, batch, LoRA and LR; 4 steps,
    // validation and samples every 2 steps. GPU: step, validation and samples all on Lathe's backend.
    const model = path.join(root, 'resources/models/tiny-default');
    const general = path.join(root, 'resources/corpus/general');
    const dataset = path.join(tempDir('lathe-demo-gpu-'), 'dataset');
    await prepareCorpus({ inputs: [path.join(root, 'resources/corpus/sample')], ...(existsSync(general) ? { general: [general] } : {}), out: dataset, tokenizerDir: model, blockSize: 64, seed: 1, valFraction: 0.1 });
    const base = {
      model, dataset, maxSteps: 4, batchSize: 8, evalEvery: 2, evalBlocks: 16, checkpointEvery: 40, optim: { lr: 3e-3 }, schedule: { warmupSteps: 10 },
      lora: { rank: 8, alpha: 16, targets: 'all-linear' as const }, samplePrompts: ['Sharpening notes: the bevel'], sampleEvery: 2, sampleMaxTokens: 12,
    };
    const logs: string[] = [];
    const { cpu: { result: cpu, steps: cpuSteps }, gpu: { result: gpu, steps: gpuSteps } } = await trainCpuAndGpu(base, {}, { onLog: (_l, m) => logs.push(m) });
    expect(gpu.ep).toBe('gpu');
    // validation reads the step's weights: shared, not uploaded twice
    const shared = logs.find((l) => l.includes('validation runs on it too'));
    expect(shared, logs.join('\n')).toMatch(/\(0\.[0-9] MiB shared, not uploaded again\)/);
    expect(shared).not.toMatch(/\(0\.0 MiB/);
    expect(gpuSteps.length).toBe(4);
    const d = stepMetricErrors(gpuSteps, cpuSteps);
    expect(d.loss).toBeLessThan(1e-5);
    expect(d.gradNorm).toBeLessThan(1e-4);
    // validation records (steps 0, 2, 4; domain and general splits) from metrics.jsonl
    const vals = (dir: string) => readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as { kind: string; step: number; split?: string; loss?: number }).filter((r) => r.kind === 'val');
    const vc = vals(cpu.runDir), vg = vals(gpu.runDir);
    expect(vc.length).toBeGreaterThanOrEqual(4);
    expect(vg.map((r) => `${r.step}:${r.split}`)).toEqual(vc.map((r) => `${r.step}:${r.split}`));
    vc.forEach((c, i) => expect(Math.abs(vg[i]!.loss! - c.loss!) / c.loss!).toBeLessThan(1e-5));
    for (const [k, v] of Object.entries(cpu.val)) expect(Math.abs(gpu.val[k]!.loss - v.loss) / v.loss).toBeLessThan(1e-5);
    // greedy samples at steps 0, 2, 4: the same text
    const samples = (dir: string) => readFileSync(path.join(dir, 'samples.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { step: number; text: string }));
    const sc = samples(cpu.runDir), sg = samples(gpu.runDir);
    expect(sc.map((x) => x.step)).toEqual([0, 2, 4]);
    expect(sg.map((x) => `${x.step}:${x.text}`)).toEqual(sc.map((x) => `${x.step}:${x.text}`));
  }, 900_000);
});
