import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { openModel } from '../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor } from '../../../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { train } from '../../../../src-main/engine/train/trainer';
import { MetricsLog } from '../../../../src-main/engine/train/metrics';
import { CheckpointManager } from '../../../../src-main/engine/train/checkpoints';
import { stopAfter, tinyDataset, tinyModel } from '../../../helpers/tiny';
import { tempDir } from '../../../helpers/services';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

async function stepProgram(arch: string) {
  const dir = await tinyModel(arch);
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
  const B = 2, T = 8, N = B * T;
  const tg = await buildTrainGraph(config, layout, { weights, dir }, lora, { batch: B, seqLen: T }, optim);
  const prog = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', externalDataDir: dir });
  const P = lora.size;
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  await prog.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), m: z(), v: z(), gacc: z() });
  const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N).fill(1);
  for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 7) % 40) + 3);
  for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
  const feeds = (s: number, apply = true) => ({
    ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
    apply: hostTensor('bool', [], new Uint8Array([apply ? 1 : 0])), invCount: hostTensor('float32', [], new Float32Array([1 / N])),
    adam: hostTensor('float32', [3], adamwScalars(optim, s)),
  });
  return { prog, feeds, P, tg, close: () => weights.close() };
}

describe('LoRA train step graph', () => {
  for (const arch of ['llama', 'llama3', 'mistral', 'qwen2', 'qwen3', 'smollm3', 'gpt2']) {
    it(`${arch}: builds, runs on the CPU EP and lowers the loss`, async () => {
      const { prog, feeds, tg, close } = await stepProgram(arch);
      const losses: number[] = [];
      for (let s = 1; s <= 12; s++) losses.push(Number((await prog.step(feeds(s)))['loss_sum']!.data[0]));
      await prog.dispose(); await close();
      expect(tg.nodes.total).toBeLessThan(600);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.8);
    });
  }

  it('accumulates without updating until apply, and skips a non-finite update', async () => {
    const { prog, feeds, P, close } = await stepProgram('llama');
    const before = (await prog.read(['params']))['params']!.data as Float32Array;
    await prog.step(feeds(1, false));
    const mid = await prog.read(['params', 'gacc']);
    expect(Array.from(mid['params']!.data as Float32Array)).toEqual(Array.from(before)); // no update yet
    expect((mid['gacc']!.data as Float32Array).some((x) => x !== 0)).toBe(true); // gradient accumulated
    // poison the accumulator: the next apply must leave params and moments untouched and clear it
    const nan = new Float32Array(P).fill(NaN);
    const cur = await prog.read(['params', 'm', 'v']);
    await prog.init({ params: cur['params']!, m: cur['m']!, v: cur['v']!, gacc: hostTensor('float32', [P], nan) });
    const out = await prog.step(feeds(1, true));
    expect(Number.isFinite(Number(out['grad_norm']!.data[0]))).toBe(false);
    const after = await prog.read(['params', 'gacc']);
    expect(Array.from(after['params']!.data as Float32Array)).toEqual(Array.from(before));
    expect((after['gacc']!.data as Float32Array).every((x) => x === 0)).toBe(true);
    await prog.dispose(); await close();
  });
});

describe('trainer', () => {
  it('trains, validates, checkpoints, and resumes exactly as an uninterrupted run would (CPU EP)', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 2, evalEvery: 2, checkpointEvery: 2, optim: { lr: 5e-3 }, ep: 'cpu' as const, schedule: { warmupSteps: 2 } };
    const full = path.join(tempDir(), 'full');
    const a = await train({ ...base, out: full, maxSteps: 6 });
    expect(a.steps).toBe(6);
    expect(a.val['val-domain']!.loss).toBeLessThan(a.valBefore['val-domain']!.loss);

    // interrupted: 3 steps (the schedule is for 6), then resume to 6
    const split = path.join(tempDir(), 'split');
    await train({ ...base, out: split, maxSteps: 6, checkpointEvery: 3 }, { checkpoint: stopAfter(3) }).catch(() => undefined);
    const firstPart = new CheckpointManager(path.join(split, 'checkpoints')).list().map((c) => c.step);
    expect(firstPart).toEqual([3]);
    const b = await train({ ...base, out: split, maxSteps: 6, checkpointEvery: 3 });
    expect(b.resumedFrom).toBe(3);

    const lossesOf = (dir: string) => new Map(MetricsLog.read(path.join(dir, 'metrics.jsonl')).filter((r) => r.kind === 'train').map((r) => [r.step, r['loss']]));
    const la = lossesOf(full), lb = lossesOf(split);
    for (let s = 1; s <= 6; s++) expect(lb.get(s)).toBe(la.get(s)); // bit-identical losses
    const pa = (await new CheckpointManager(path.join(full, 'checkpoints')).latest())!.tensors.get('params')!;
    const pb = (await new CheckpointManager(path.join(split, 'checkpoints')).latest())!.tensors.get('params')!;
    expect(Buffer.from(pb.buffer).equals(Buffer.from(pa.buffer))).toBe(true);
  });

  it('rejects unknown settings and a mismatched resume in plain words', async () => {
    await expect(train({ model: 'x', dataset: 'y', out: 'z', learningRate: 1 })).rejects.toMatchObject({ code: 'train.config' });
  });
});

describe('trainer with paged optimizer states', () => {
  it('trains bit-identically to resident moments, and resumes across the two modes', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 2, maxSteps: 6, evalEvery: 0, checkpointEvery: 3, optim: { lr: 5e-3 }, ep: 'cpu' as const };
    const latest = async (dir: string) => (await new CheckpointManager(path.join(dir, 'checkpoints')).latest())!;
    const resident = path.join(tempDir(), 'resident');
    await train({ ...base, out: resident });
    const paged = path.join(tempDir(), 'paged');
    await train({ ...base, out: paged, pagedOptimizer: true });
    const a = await latest(resident), b = await latest(paged);
    for (const k of ['params', 'm', 'v']) expect(Buffer.from(b.tensors.get(k)!.buffer).equals(Buffer.from(a.tensors.get(k)!.buffer))).toBe(true);
    // stop a paged run after 3 steps and finish it with resident moments
    const mixed = path.join(tempDir(), 'mixed');
    await train({ ...base, out: mixed, pagedOptimizer: true }, { checkpoint: stopAfter(3) }).catch(() => undefined);
    await train({ ...base, out: mixed });
    expect(Buffer.from((await latest(mixed)).tensors.get('params')!.buffer).equals(Buffer.from(a.tensors.get('params')!.buffer))).toBe(true);
  });
});
