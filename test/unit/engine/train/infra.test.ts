import { describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { learningRateAt } from '../../../../src-main/engine/train/schedule';
import { MetricsLog } from '../../../../src-main/engine/train/metrics';
import { CheckpointManager } from '../../../../src-main/engine/train/checkpoints';
import { tempDir } from '../../../helpers/services';

describe('learning-rate schedules', () => {
  const base = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, minLrRatio: 0 };
  it('warms up linearly, then follows cosine / linear / constant', () => {
    const cos = { ...base, kind: 'cosine' as const };
    expect(learningRateAt(0, cos)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt(9, cos)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(10, cos)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(60, cos)).toBeCloseTo(0.5e-3, 12); // half-way through decay
    expect(learningRateAt(110, cos)).toBeCloseTo(0, 12);
    expect(learningRateAt(500, cos)).toBeCloseTo(0, 12);
    const lin = { ...base, kind: 'linear' as const };
    expect(learningRateAt(35, lin)).toBeCloseTo(0.75e-3, 12);
    expect(learningRateAt(50, { ...base, kind: 'constant' })).toBe(1e-3);
    expect(learningRateAt(110, { ...cos, minLrRatio: 0.1 })).toBeCloseTo(1e-4, 12);
  });
});

describe('metrics log', () => {
  it('appends JSON lines and reloads them, skipping a torn last line', () => {
    const file = path.join(tempDir(), 'run', 'metrics.jsonl');
    const log = new MetricsLog(file);
    log.append({ kind: 'train', step: 1, loss: 2.5 });
    log.append({ kind: 'train', step: 2, loss: 2.25 });
    log.append({ kind: 'val', step: 2, loss: 2.4 });
    appendFileSync(file, '{"kind":"train","step":3,"lo'); // crash mid-write
    const back = MetricsLog.read(file);
    expect(back.map((r) => [r.kind, r.step, r['loss']])).toEqual([['train', 1, 2.5], ['train', 2, 2.25], ['val', 2, 2.4]]);
    expect(MetricsLog.read(file, 1).length).toBe(1);
  });
});

describe('checkpoint manager', () => {
  const tensors = (x: number) => new Map([['lora.A', new Float32Array([x, x + 1, x + 2])], ['adam.m', new Float32Array([x / 10])]]);
  const state = (step: number, valLoss: number | null) => ({ step, rng: { dropout: [1, 2, 3, 4] }, dataPosition: { epoch: 0, index: step * 4 }, valLoss, config: { lr: 1e-3 } });

  it('saves atomically and loads back exactly', async () => {
    const m = new CheckpointManager(path.join(tempDir(), 'checkpoints'));
    const dir = await m.save(state(10, 1.5), tensors(0.25));
    expect(path.basename(dir)).toBe('step-000010');
    const back = await m.load(dir);
    expect(back.state).toEqual(state(10, 1.5));
    expect([...back.tensors.get('lora.A')!]).toEqual([0.25, 1.25, 2.25]);
    expect(readdirSync(m.root).filter((n) => n.startsWith('.tmp'))).toEqual([]);
  });

  it('keeps the last N plus the best by validation loss', async () => {
    const m = new CheckpointManager(path.join(tempDir(), 'checkpoints'), 2);
    const losses = [3, 1, 2.5, 2.7, 2.9];
    for (let i = 0; i < losses.length; i++) await m.save(state((i + 1) * 10, losses[i]!), tensors(i));
    expect(m.list().map((c) => c.step)).toEqual([20, 40, 50]); // best (step 20) + last two
    expect((await m.best())?.step).toBe(20);
    expect((await m.latest())?.state.step).toBe(50);
  });

  it('resumes from the newest readable checkpoint when the last one is damaged', async () => {
    const m = new CheckpointManager(path.join(tempDir(), 'checkpoints'), 5);
    await m.save(state(10, null), tensors(1));
    const bad = await m.save(state(20, null), tensors(2));
    appendFileSync(path.join(bad, 'state.json'), 'garbage');
    expect((await m.latest())?.state.step).toBe(10);
    expect(existsSync(bad)).toBe(true); // nothing deleted behind the user's back
  });
});
