/**
 * Preference tuning through the real trainer: a prepared preference dataset (the bundled tiny model's
 * chat template) -> DPO / ORPO runs with accumulation, dropout, recomputation, rsLoRA and QLoRA ->
 * reward metrics in metrics.jsonl, validation on held-out pairs, checkpoints and exact resume.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { train } from '../../../../src-main/engine/train/trainer';
import { MetricsLog } from '../../../../src-main/engine/train/metrics';
import { CheckpointManager } from '../../../../src-main/engine/train/checkpoints';
import { UserError } from '../../../../src-main/util/progress';
import { tinyDataset } from '../../../helpers/tiny';
import { openDataset } from '../../../../src-main/data/pack/dataset';
import { readBatch } from '../../../../src-main/engine/train/batch';
import { TokenRows } from '../../../../src-main/engine/llm/lora';
import { tempDir } from '../../../helpers/services';
import { tinyPreferenceDataset } from '../../../helpers/tiny';

let model: string;
let dataset: string;

beforeAll(async () => {
  ({ model, dataset } = await tinyPreferenceDataset('lathe-pref', { pairs: 20, seed: 5, blockSize: 48, valFraction: 0.2 }));
}, 60_000);

const base = () => ({
  model, dataset, batchSize: 2, gradAccum: 2, evalEvery: 2, evalBlocks: 8, checkpointEvery: 2, ep: 'cpu' as const,
  optim: { lr: 5e-3 }, schedule: { kind: 'constant' as const, warmupSteps: 0 },
});

const trainRecords = (dir: string) => MetricsLog.read(path.join(dir, 'metrics.jsonl')).filter((r) => r.kind === 'train');

describe('DPO through the trainer', () => {
  it('starts at ln 2, records rewards on training and held-out pairs, and widens the margin', async () => {
    const out = path.join(tempDir(), 'dpo');
    const s = await train({ ...base(), out, maxSteps: 6, method: 'dpo', preference: { beta: 0.5 } });
    expect(s.steps).toBe(6);
    const tr = trainRecords(out);
    expect(Math.abs(Number(tr[0]!.loss) - Math.LN2)).toBeLessThan(1e-6); // B = 0: policy = reference
    expect(tr[0]!.rewardMargin).toBe(0);
    for (const k of ['rewardsChosen', 'rewardsRejected', 'rewardMargin', 'rewardAccuracy', 'logpsChosen', 'logpsRejected']) expect(Number.isFinite(Number(tr[5]![k]))).toBe(true);
    expect(tr[0]!.ppl).toBeUndefined();
    expect(Number(tr[5]!.loss)).toBeLessThan(Number(tr[0]!.loss));
    expect(Number(tr[5]!.rewardMargin)).toBeGreaterThan(0);
    const val = MetricsLog.read(path.join(out, 'metrics.jsonl')).filter((r) => r.kind === 'val');
    expect(val.map((r) => r.step)).toEqual([0, 2, 4, 6]); // every 2 steps; the last step's evaluation is the final one
    expect(Math.abs(Number(val[0]!.loss) - Math.LN2)).toBeLessThan(1e-6);
    expect(Number(val[3]!.rewardAccuracy)).toBeGreaterThanOrEqual(0);
    expect(val[3]!.ppl).toBeUndefined();
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as { method: string; preference: { beta: number } };
    expect(cfg.method).toBe('dpo');
    expect(cfg.preference.beta).toBe(0.5);
  }, 120_000);

  it('resumes exactly (dropout, recomputation, label smoothing): 2 + 2 steps = 4 steps', async () => {
    const opts = { ...base(), method: 'dpo' as const, preference: { beta: 0.3, labelSmoothing: 0.1 }, lora: { dropout: 0.1 }, recompute: true, evalEvery: 0 };
    const once = path.join(tempDir(), 'once');
    await train({ ...opts, out: once, maxSteps: 4 });
    const twice = path.join(tempDir(), 'twice');
    await train({ ...opts, out: twice, maxSteps: 2 });
    const r = await train({ ...opts, out: twice, maxSteps: 4 });
    expect(r.resumedFrom).toBe(2);
    const a = (await new CheckpointManager(path.join(once, 'checkpoints'), 3).latest())!;
    const b = (await new CheckpointManager(path.join(twice, 'checkpoints'), 3).latest())!;
    expect(a.state.step).toBe(4);
    expect(Array.from(b.tensors.get('params')!)).toEqual(Array.from(a.tensors.get('params')!));
    expect(trainRecords(twice).map((x) => x.loss)).toEqual(trainRecords(once).map((x) => x.loss));
    // a different method in the same folder is refused
    await expect(train({ ...opts, out: twice, maxSteps: 6, method: 'orpo' })).rejects.toMatchObject({ code: 'train.resumeMismatch' });
  }, 180_000);

  it('IPO runs (with the paged optimizer)', async () => {
    const out = path.join(tempDir(), 'ipo');
    await train({ ...base(), out, maxSteps: 3, evalEvery: 0, method: 'dpo', preference: { loss: 'ipo', beta: 0.1 }, pagedOptimizer: true });
    const tr = trainRecords(out);
    expect(Number(tr[0]!.loss)).toBeCloseTo(25, 4); // (0 − 1/(2·0.1))² at B = 0
    expect(Number(tr[2]!.loss)).toBeLessThan(25);
  }, 120_000);
});

describe('ORPO through the trainer', () => {
  it('trains with rsLoRA on an NF4 (QLoRA) base and reports per-token log-probs', async () => {
    const out = path.join(tempDir(), 'orpo');
    await train({ ...base(), out, maxSteps: 4, evalEvery: 4, method: 'orpo', preference: { orpoLambda: 0.5 }, quantization: 'nf4', lora: { rslora: true } });
    const tr = trainRecords(out);
    expect(tr.every((r) => Number.isFinite(Number(r.loss)))).toBe(true);
    expect(Number(tr[3]!.loss)).toBeLessThan(Number(tr[0]!.loss));
    expect(Number(tr[0]!.logpsChosen)).toBeLessThan(0);
    expect(Number(tr[0]!.logpsChosen)).toBeGreaterThan(-20); // a per-token mean, not a sum
    expect(Number(tr[3]!.logpsChosen)).toBeGreaterThan(Number(tr[0]!.logpsChosen)); // the SFT term lifts the chosen reply
  }, 120_000);
});

describe('method and dataset must fit', () => {
  it('refuses DPO on plain text and the next-token loss on pairs', async () => {
    const text = await tinyDataset(model, { docs: 8 });
    await expect(train({ ...base(), dataset: text, out: path.join(tempDir(), 'x'), maxSteps: 1, method: 'dpo' })).rejects.toMatchObject({ code: 'train.methodData', message: expect.stringMatching(/DPO needs a preference dataset.*plain text/) });
    const e = await train({ ...base(), out: path.join(tempDir(), 'y'), maxSteps: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).hint).toMatch(/--method dpo/);
    // next-token evaluation (lathe eval, export checks) refuses pairs in plain words instead of misreading them
    const ds = openDataset(dataset);
    expect(() => readBatch(ds.split('train'), ds.manifest, [0], new TokenRows(424, null))).toThrow(/holds preference pairs/);
  }, 60_000);
});
