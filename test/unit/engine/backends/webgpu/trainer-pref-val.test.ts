/**
 * Preference validation (held-out pairs) on Lathe's GPU backend: with `ep: 'gpu'` the trainer evaluates
 * DPO/ORPO pairs with the fused preference eval graph on the backend (GpuSession, sharing the step's weight
 * buffers), and every validation record (loss, rewards, margins, log-probs; each split, each eval step)
 * equals the CPU EP's within 1e-5.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { train } from '../../../../../src-main/engine/train/trainer';
import { closeGpu } from '../../../../../src-main/engine/backends/webgpu';
import { tempDir } from '../../../../helpers/services';
import { tinyPreferenceDataset } from '../../../../helpers/tiny';

let model: string;
let dataset: string;

beforeAll(async () => {
  ({ model, dataset } = await tinyPreferenceDataset('lathe-gpu-prefval', { pairs: 16, seed: 11, blockSize: 32, valFraction: 0.25 }));
}, 60_000);
afterAll(() => closeGpu());

type Val = Record<string, number | string>;

/**
 * The validation records of one run (metrics.jsonl `val`: before training, with the starting adapter both
 * runs share, then after each step) and its log. After a step the two runs' adapters differ by the step's
 * own rounding (gradients within ~1e-6), so the small learning rate keeps that below the eval's bound.
 */
async function run(ep: 'cpu' | 'gpu', extra: Record<string, unknown>): Promise<{ vals: Val[]; logs: string[] }> {
  const logs: string[] = [], out = path.join(tempDir(), ep);
  await train({
    model, dataset, batchSize: 2, gradAccum: 1, evalEvery: 1, evalBlocks: 8, checkpointEvery: 10, maxSteps: 2,
    optim: { lr: 2e-3 }, schedule: { kind: 'constant' as const, warmupSteps: 0 }, out, ep, ...extra,
  }, { onLog: (_level, m) => logs.push(m) });
  const vals = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Val).filter((r) => r['kind'] === 'val');
  return { vals, logs };
}

async function compare(extra: Record<string, unknown>, metrics: string[]): Promise<void> {
  const cpu = await run('cpu', extra), gpu = await run('gpu', extra);
  expect(gpu.logs.some((m) => /GPU backend: validation runs on it too/.test(m)), gpu.logs.join('\n')).toBe(true);
  expect(gpu.logs.some((m) => /CPU EP/.test(m))).toBe(false);
  expect(cpu.vals.map((r) => r['step'])).toEqual([0, 1, 2]); // one held-out split, evaluated 3 times
  expect(gpu.vals.map((r) => r['step'])).toEqual([0, 1, 2]);
  let checked = 0;
  cpu.vals.forEach((c, i) => {
    const g = gpu.vals[i]!;
    expect(Object.keys(g).sort()).toEqual(Object.keys(c).sort());
    for (const [k, v] of Object.entries(c)) {
      if (typeof v !== 'number' || k === 'step') {
        if (k === 'kind' || k === 'split' || k === 'step') expect(g[k]).toBe(v); // (not the record's time)
        continue;
      }
      expect(Number.isFinite(v), k).toBe(true);
      // a DPO reward is β·(log-prob of the policy − of the reference), log-probs summed over a sequence (~ −117 here
      // against a reward of 0.33): its rounding is that of β·the log-probs it subtracts (one f32 ulp of −117 is 7.6e-6);
      // a margin is a difference of rewards: its rounding is that of the rewards it subtracts
      const beta = (extra['preference'] as { beta?: number } | undefined)?.beta;
      const reward = (side: 'Chosen' | 'Rejected') => Math.max(Math.abs(c[`rewards${side}`] as number), beta === undefined ? 0 : beta * Math.abs(c[`logps${side}`] as number));
      const scale = k === 'rewardMargin' ? Math.max(Math.abs(v), reward('Chosen'), reward('Rejected'))
        : k === 'rewardsChosen' ? reward('Chosen') : k === 'rewardsRejected' ? reward('Rejected') : Math.abs(v);
      expect(Math.abs((g[k] as number) - v) / Math.max(scale, 1e-3), `${k} at step ${c['step']}: gpu ${g[k]}, cpu ${v}`).toBeLessThan(1e-5);
      if (metrics.includes(k)) checked++;
    }
  });
  expect(checked).toBe(3 * metrics.length); // every named metric was there at each evaluation
  expect(cpu.vals[2]!['loss']).not.toBe(cpu.vals[0]!['loss']); // training moved the adapter: not the start's numbers again
}

describe('preference validation on the GPU backend', () => {
  it('DPO: held-out loss, rewards and log-probs equal the CPU EP\'s within 1e-5', async () => {
    await compare({ method: 'dpo', preference: { beta: 0.5 } }, ['loss', 'rewardsChosen', 'rewardsRejected', 'rewardMargin', 'logpsChosen', 'logpsRejected']);
  }, 600_000);

  it('ORPO: held-out loss and log-probs equal the CPU EP\'s within 1e-5', async () => {
    await compare({ method: 'orpo', preference: { orpoLambda: 0.5 } }, ['loss', 'rewardMargin', 'logpsChosen', 'logpsRejected']);
  }, 600_000);
});
