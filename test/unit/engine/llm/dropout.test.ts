/** Seeded LoRA dropout: an unbiased, seed-dependent in-graph mask; deterministic per seed; runs on WebGPU. */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../src-main/engine/graph/graph';
import { lowerGraph } from '../../../../src-main/engine/backends/onnx/lower';
import { loraDropout } from '../../../../src-main/engine/llm/dropout';
import { runModel, hostTensor, reportPlacement } from '../../../../src-main/engine/backends/onnx';

function maskGraph(N: number, M: number, p: number) {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [N, M]);
  const seed = g.input('seed', 'float32', []);
  g.output('y', loraDropout(g, x, p, seed, 0));
  return lowerGraph(g).model;
}

async function dropped(seed: number, N = 256, M = 128, p = 0.25, ep: 'cpu' | 'webgpu' = 'cpu') {
  const out = await runModel(maskGraph(N, M, p), { x: hostTensor('float32', [N, M], new Float32Array(N * M).fill(1)), seed: hostTensor('float32', [], [seed]) }, { ep });
  return out['y']!.data as Float32Array;
}

describe('LoRA dropout', () => {
  it('drops about p of the inputs, scales the rest by 1/(1-p), and depends on the seed only', async () => {
    const a = await dropped(3.5), b = await dropped(3.5), c = await dropped(4.5);
    const kept = a.filter((v) => v !== 0);
    expect(Math.abs(kept.length / a.length - 0.75)).toBeLessThan(0.01); // 32,768 draws: σ ≈ 0.0024
    expect(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    let same = 0;
    for (let i = 0; i < a.length; i++) if ((a[i] === 0) === (c[i] === 0)) same++;
    expect(same / a.length).toBeLessThan(0.7); // independent masks agree on ~62.5% of elements
    // neighbouring rows and columns are not correlated
    const M = 128, rows = 256;
    let agreeRow = 0, agreeCol = 0;
    for (let r = 0; r + 1 < rows; r++) for (let k = 0; k + 1 < M; k++) {
      agreeRow += (a[r * M + k] === 0) === (a[(r + 1) * M + k] === 0) ? 1 : 0;
      agreeCol += (a[r * M + k] === 0) === (a[r * M + k + 1] === 0) ? 1 : 0;
    }
    const n = (rows - 1) * (M - 1);
    expect(Math.abs(agreeRow / n - 0.625)).toBeLessThan(0.02);
    expect(Math.abs(agreeCol / n - 0.625)).toBeLessThan(0.02);
  });

  it('runs fully on the WebGPU EP (lavapipe) with the same keep rate', async () => {
    const r = await reportPlacement(maskGraph(64, 32, 0.1), { ep: 'webgpu' });
    expect(r.fallback).toEqual([]);
    const y = await dropped(7.5, 64, 32, 0.1, 'webgpu');
    expect(Math.abs(y.filter((v) => v !== 0).length / y.length - 0.9)).toBeLessThan(0.03);
  });
});

describe('training with LoRA dropout', () => {
  it('is seeded: a stopped and resumed run ends bit-identical to an uninterrupted one, and differs from no dropout', async () => {
    const path = await import('node:path');
    const { train } = await import('../../../../src-main/engine/train/trainer');
    const { CheckpointManager } = await import('../../../../src-main/engine/train/checkpoints');
    const { CancelledError } = await import('../../../../src-main/util/progress');
    const { tinyDataset, tinyModel } = await import('../../../helpers/tiny');
    const { tempDir } = await import('../../../helpers/services');
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, maxSteps: 6, evalEvery: 0, checkpointEvery: 3, optim: { lr: 5e-3 }, ep: 'cpu' as const };
    const params = async (dir: string) => (await new CheckpointManager(path.join(dir, 'checkpoints')).latest())!.tensors.get('params')!;
    const full = path.join(tempDir(), 'full');
    await train({ ...base, out: full, lora: { dropout: 0.1 } });
    const split = path.join(tempDir(), 'split');
    let calls = 0;
    await train({ ...base, out: split, lora: { dropout: 0.1 } }, { checkpoint: async () => { if (calls++ >= 3) throw new CancelledError(); } });
    await train({ ...base, out: split, lora: { dropout: 0.1 } });
    expect(Buffer.from((await params(split)).buffer).equals(Buffer.from((await params(full)).buffer))).toBe(true);
    const none = path.join(tempDir(), 'none');
    await train({ ...base, out: none });
    expect(Buffer.from((await params(none)).buffer).equals(Buffer.from((await params(full)).buffer))).toBe(false);
  });
});
