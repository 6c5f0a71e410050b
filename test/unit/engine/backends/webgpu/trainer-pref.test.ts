/**
 * Preference tuning and the paged optimizer through the trainer with `ep: 'gpu'`: the same runs on Lathe's
 * GPU backend and on the CPU EP give the same losses, reward metrics and grad norms; a paged GPU run leaves
 * the same checkpoint (params, m, v) as a resident one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { train } from '../../../../../src-main/engine/train/trainer';
import { CheckpointManager } from '../../../../../src-main/engine/train/checkpoints';
import { closeGpu } from '../../../../../src-main/engine/backends/webgpu';
import { tempDir } from '../../../../helpers/services';
import { tinyPreferenceDataset } from '../../../../helpers/tiny';
import { rel } from '../../../../helpers/numeric';

let model: string;
let dataset: string;

beforeAll(async () => {
  ({ model, dataset } = await tinyPreferenceDataset('lathe-gpu-pref', { pairs: 16, seed: 5, blockSize: 32, valFraction: 0.25 }));
}, 60_000);
afterAll(() => closeGpu());

const base = () => ({ model, dataset, batchSize: 2, gradAccum: 2, evalEvery: 0, evalBlocks: 4, checkpointEvery: 10, maxSteps: 3, optim: { lr: 5e-3 }, schedule: { kind: 'constant' as const, warmupSteps: 0 } });
type Rec = Record<string, number>;

async function both(extra: Record<string, unknown>): Promise<{ cpu: Rec[]; gpu: Rec[]; gpuOut: string; gpuSummary: Awaited<ReturnType<typeof train>>; cpuSummary: Awaited<ReturnType<typeof train>> }> {
  const m: Record<'cpu' | 'gpu', Rec[]> = { cpu: [], gpu: [] };
  const gpuOut = path.join(tempDir(), 'gpu');
  const cpuSummary = await train({ ...base(), ...extra, out: path.join(tempDir(), 'cpu'), ep: 'cpu' }, { onMetric: (x) => { if ('loss' in x) m.cpu.push(x as Rec); } });
  const gpuSummary = await train({ ...base(), ...extra, out: gpuOut, ep: 'gpu' }, { onMetric: (x) => { if ('loss' in x) m.gpu.push(x as Rec); } });
  return { ...m, gpuOut, gpuSummary, cpuSummary };
}

function same(cpu: Rec[], gpu: Rec[], keys: string[]): void {
  expect(gpu.length).toBe(3);
  expect(cpu.length).toBe(3);
  for (const k of keys) expect(rel(gpu.map((r) => r[k]!), cpu.map((r) => r[k]!)), k).toBeLessThan(1e-4);
}

describe('preference tuning on the GPU backend through the trainer', () => {
  it('DPO: 3 steps with the CPU EP\'s losses, rewards and grad norms; held-out pairs evaluated', async () => {
    const r = await both({ method: 'dpo', preference: { beta: 0.5 } });
    expect(r.gpuSummary.ep).toBe('gpu');
    same(r.cpu, r.gpu, ['loss', 'rewardsChosen', 'rewardsRejected', 'rewardMargin', 'logpsChosen', 'logpsRejected', 'gradNorm']);
    expect(Math.abs(r.gpu[0]!.loss! - Math.LN2)).toBeLessThan(1e-5); // the adapter starts as the reference
    expect(Object.keys(r.cpuSummary.val).length).toBeGreaterThan(0);
    for (const [k, v] of Object.entries(r.cpuSummary.val)) expect(Math.abs(r.gpuSummary.val[k]!.loss - v.loss) / Math.abs(v.loss)).toBeLessThan(1e-4);
  }, 600_000);

  it('ORPO with the paged optimizer: as on the CPU EP, and the checkpoint equals a resident GPU run\'s', async () => {
    const r = await both({ method: 'orpo', preference: { orpoLambda: 0.5 }, pagedOptimizer: true });
    expect(r.gpuSummary.ep).toBe('gpu');
    same(r.cpu, r.gpu, ['loss', 'rewardMargin', 'logpsChosen', 'logpsRejected', 'gradNorm']);
    const residentOut = path.join(tempDir(), 'gpu-resident');
    await train({ ...base(), method: 'orpo', preference: { orpoLambda: 0.5 }, out: residentOut, ep: 'gpu' });
    const ck = async (d: string) => (await new CheckpointManager(path.join(d, 'checkpoints'), 3).latestUsable()).checkpoint!;
    const [paged, resident] = [await ck(r.gpuOut), await ck(residentOut)];
    expect(paged.state.step).toBe(3);
    for (const t of ['params', 'm', 'v']) expect(paged.tensors.get(t), t).toEqual(resident.tensors.get(t));
    expect(paged.tensors.get('m')!.some((x) => x !== 0)).toBe(true);
  }, 600_000);

  it('DPO on a QLoRA (NF4) base with recomputation: as on the CPU EP', async () => {
    const r = await both({ method: 'dpo', preference: { beta: 0.2, labelSmoothing: 0.1 }, quantization: 'nf4', recompute: true, gradAccum: 1 });
    expect(r.gpuSummary.ep).toBe('gpu');
    same(r.cpu, r.gpu, ['loss', 'rewardMargin', 'logpsChosen', 'logpsRejected', 'gradNorm']);
  }, 600_000);
});
