/**
 * Activation recomputation (gradient checkpointing): the gradient must equal the plain backward's, for
 * every architecture family, with new-token rows (tied and untied), dropout and QLoRA.
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../../src-main/engine/models';
import { addNewRows, buildLoraLayout, initLoraParams, TokenRows } from '../../../../src-main/engine/llm/lora';
import { buildTrainGraph, type GraphShape } from '../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor, type HostTensor } from '../../../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { feedsOf, makeBatch } from '../../../../src-main/engine/train/batch';
import { Rng } from '../../../../src-main/engine/models/rng';
import { tinyModel } from '../../../helpers/tiny';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

async function gradOf(dir: string, recompute: boolean, opts: { newRows?: boolean; dropout?: number; nf4?: boolean; fused?: boolean } = {}): Promise<{ grad: Float32Array; loss: number }> {
  const { config, layout, weights } = await openModel(dir);
  let lora = buildLoraLayout(config, layout, { rank: 3, alpha: 6, dropout: 0, rslora: false, targets: 'all-linear', seed: 2 });
  const V = config.vocabSize;
  if (opts.newRows) lora = addNewRows(lora, config, [V, V + 1]);
  const rows = new TokenRows(V, lora.newRows);
  const B = 2, T = 8, P = lora.size;
  // fused: the recomputed side is the GPU backend's fused graph, run here through its ONNX decomposition
  const shape: GraphShape = { batch: B, seqLen: T, recompute, fused: recompute && opts.fused, ...(opts.dropout ? { dropout: opts.dropout } : {}) };
  const tg = await buildTrainGraph(config, layout, { weights, dir, ...(opts.nf4 ? { quantize: 'nf4' as const } : {}) }, lora, shape, optim);
  const prog = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', externalDataDir: dir });
  const p = initLoraParams(lora, 2);
  const rng = new Rng(4);
  for (let i = 0; i < p.length; i++) if (p[i] === 0) p[i] = rng.normal() * 0.05; // B non-zero, new rows non-zero
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  await prog.init({ params: hostTensor('float32', [P], p), m: z(), v: z(), gacc: z() });
  const ids = Array.from({ length: B }, (_, b) => Uint32Array.from({ length: T }, (_, t) => (opts.newRows && t % 3 === 0 ? V + ((b + t) % 2) : (b * 31 + t * 7) % 60 + 3)));
  const batch = makeBatch(ids, T, rows);
  const feeds: Record<string, HostTensor> = {
    ...feedsOf(batch, B, T), apply: hostTensor('bool', [], new Uint8Array([0])),
    invCount: hostTensor('float32', [], [1]), adam: hostTensor('float32', [3], adamwScalars(optim, 1)),
    ...(opts.dropout ? { dropout_seed: hostTensor('float32', [], [3.5]) } : {}),
    ...(recompute ? { recompute_one: hostTensor('float32', [], [1]) } : {}),
  };
  const out = await prog.step(feeds);
  const grad = (await prog.read(['gacc']))['gacc']!.data as Float32Array;
  await prog.dispose(); await weights.close();
  return { grad, loss: Number(out['loss_sum']!.data[0]) };
}

function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); n = Math.max(n, Math.abs(b[i]!)); }
  return d / n;
}

describe('activation recomputation', () => {
  const cases: [string, Parameters<typeof gradOf>[2]][] = [
    ['llama', {}], ['qwen3', {}], ['smollm3', {}], ['gpt2', {}],
    ['llama', { newRows: true, dropout: 0.2 }], ['gpt2', { newRows: true }], ['qwen2', { nf4: true }],
    ['qwen3', { fused: true }], ['gpt2', { fused: true, newRows: true }],
  ];
  for (const [arch, opts] of cases) {
    it(`${arch} ${JSON.stringify(opts)}: same loss and gradient as the plain backward`, async () => {
      const dir = await tinyModel(arch);
      const plain = await gradOf(dir, false, opts);
      const rec = await gradOf(dir, true, opts);
      if (opts?.fused) expect(Math.abs(rec.loss - plain.loss) / Math.abs(plain.loss)).toBeLessThan(1e-6);
      else expect(rec.loss).toBe(plain.loss);
      expect(plain.grad.some((x) => x !== 0)).toBe(true);
      expect(relErr(rec.grad, plain.grad)).toBeLessThan(1e-5);
    });
  }
});

describe('trainer with recomputation', () => {
  it('ends with the same weights as a plain run (CPU EP)', async () => {
    const path = await import('node:path');
    const { train } = await import('../../../../src-main/engine/train/trainer');
    const { CheckpointManager } = await import('../../../../src-main/engine/train/checkpoints');
    const { tinyDataset } = await import('../../../helpers/tiny');
    const { tempDir } = await import('../../../helpers/services');
    const model = await tinyModel('qwen3');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 2, maxSteps: 4, evalEvery: 0, optim: { lr: 5e-3 }, ep: 'cpu' as const };
    const a = path.join(tempDir(), 'plain'), b = path.join(tempDir(), 'recompute');
    await train({ ...base, out: a });
    await train({ ...base, out: b, recompute: true });
    const pa = (await new CheckpointManager(path.join(a, 'checkpoints')).latest())!.tensors.get('params')!;
    const pb = (await new CheckpointManager(path.join(b, 'checkpoints')).latest())!.tensors.get('params')!;
    let d = 0;
    for (let i = 0; i < pa.length; i++) d = Math.max(d, Math.abs(pa[i]! - pb[i]!));
    expect(d).toBeLessThan(1e-5);
  });
});
