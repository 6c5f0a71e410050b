import { describe, expect, it } from 'vitest';
import { collect, isPreference, line, smooth, thin, valSeries } from '../../../src-renderer/wizards/train/series';
import { validateLora, type LoraForm } from '../../../src-renderer/wizards/lora/validate';

describe('dashboard series', () => {
  it('merges history records with live metrics, live values winning for the same step', () => {
    const history: Record<string, number | string>[] = [
      { kind: 'val', step: 0, split: 'val-domain', loss: 6.2, ppl: 492, time: 't' },
      { kind: 'train', step: 1, loss: 6.1, lr: 1e-4, gradNorm: 1, tokensPerSecond: 10, memoryMB: 100, etaSeconds: 5, ppl: 445, time: 't' },
      { kind: 'event', step: 1, event: 'checkpoint', time: 't' },
    ];
    const live: Record<string, number>[] = [
      { step: 1, loss: 6.0, lr: 1e-4, gradNorm: 1, tokensPerSecond: 10, memoryMB: 100, etaSeconds: 5, ppl: 403 },
      { step: 2, loss: 5.9, lr: 2e-4, gradNorm: 0.9, tokensPerSecond: 12, memoryMB: 101, etaSeconds: 4, ppl: 365 },
      { step: 2, 'val_val-domain_loss': 5.8, 'val_val-domain_ppl': 330, 'val_val-general_loss': 6.3, 'val_val-general_ppl': 545 },
    ];
    const { train, val } = collect(history, live);
    expect(train.map((p) => [p.step, p.loss])).toEqual([[1, 6.0], [2, 5.9]]);
    expect(val.map((v) => [v.split, v.step, v.loss])).toEqual([['val-domain', 0, 6.2], ['val-domain', 2, 5.8], ['val-general', 2, 6.3]]);
    const ppl = valSeries(val, 'ppl');
    expect(ppl.map((s) => s.label)).toEqual(['domain held-out perplexity', 'general held-out perplexity']);
    expect(ppl[0]!.points).toEqual([{ x: 0, y: 492 }, { x: 2, y: 330 }]);
  });

  it('reads preference-tuning reward metrics from history and live events (no perplexity)', () => {
    const history: Record<string, number | string>[] = [
      { kind: 'val', step: 0, split: 'val-domain', loss: 0.693, rewardMargin: 0, rewardAccuracy: 0, time: 't' },
      { kind: 'train', step: 1, loss: 0.693, rewardsChosen: 0, rewardsRejected: 0, rewardMargin: 0, rewardAccuracy: 0, logpsChosen: -40, logpsRejected: -45, lr: 1e-4, gradNorm: 1, tokensPerSecond: 10, memoryMB: 100, etaSeconds: 5, time: 't' },
    ];
    const live: Record<string, number>[] = [
      { step: 2, loss: 0.6, rewardsChosen: 0.2, rewardsRejected: -0.1, rewardMargin: 0.3, rewardAccuracy: 0.75, logpsChosen: -38, logpsRejected: -46, lr: 1e-4, gradNorm: 1, tokensPerSecond: 10, memoryMB: 100, etaSeconds: 4 },
      { step: 2, 'val_val-domain_loss': 0.62, 'val_val-domain_rewardMargin': 0.25, 'val_val-domain_rewardAccuracy': 0.5 },
    ];
    const { train, val } = collect(history, live);
    expect(isPreference(train)).toBe(true);
    expect(line(train, 'rewardMargin')).toEqual([{ x: 1, y: 0 }, { x: 2, y: 0.3 }]);
    expect(valSeries(val, 'rewardAccuracy')).toEqual([{ label: 'domain held-out reward accuracy', points: [{ x: 0, y: 0 }, { x: 2, y: 0.5 }] }]);
    expect(valSeries(val, 'ppl')).toEqual([]); // preference runs have no perplexity: no empty series drawn
    expect(isPreference(collect([], [{ step: 1, loss: 3, lr: 1, gradNorm: 1, tokensPerSecond: 1, memoryMB: 1, etaSeconds: 1, ppl: 20 }]).train)).toBe(false);
  });

  it('smooths with a bias-corrected moving average (a constant stays constant; a step is approached)', () => {
    expect(smooth([1, 2, 3].map((x) => ({ x, y: 4 }))).map((p) => p.y)).toEqual([4, 4, 4].map((v) => expect.closeTo(v, 12)));
    const s = smooth([{ x: 1, y: 0 }, { x: 2, y: 10 }], 0.5);
    // (0.5*0 + 0.5*10) / (1 - 0.25) = 6.67
    expect(s[1]!.y).toBeCloseTo(20 / 3, 10);
  });

  it('thins long series to at most the limit and keeps the last point', () => {
    const pts = Array.from({ length: 10_001 }, (_, i) => i);
    const t = thin(pts, 800);
    expect(t.length).toBeLessThanOrEqual(801);
    expect(t.at(-1)).toBe(10_000);
    expect(thin([1, 2, 3], 800)).toEqual([1, 2, 3]);
  });
});

describe('LoRA wizard validation', () => {
  const ok: LoraForm = {
    rank: 8, alpha: 16, dropout: 0, qlora: false, paged: false, recompute: false, f16: false, targets: 'attention', lr: 2e-4, schedule: 'cosine', warmupSteps: 10, useSteps: false, maxSteps: 100, epochs: 1,
    batchSize: 4, gradAccum: 1, maxGradNorm: 1, evalEvery: 50, checkpointEvery: 100, ep: 'auto',
  };

  it('accepts the presets\' values', () => {
    expect(validateLora(ok)).toEqual({});
  });

  it('names each bad value in plain words', () => {
    const e = validateLora({ ...ok, dropout: 0.95, rank: 0, lr: 0.5, batchSize: 2.5, epochs: 0, checkpointEvery: 0 });
    expect(e.rank).toMatch(/whole number from 1 to 1024/);
    expect(e.dropout).toMatch(/0 \(off\) to 0.9/);
    expect(e.lr).toMatch(/very high.*try 0.0002/);
    expect(e.batchSize).toMatch(/whole number/);
    expect(e.epochs).toMatch(/above 0/);
    expect(e.checkpointEvery).toMatch(/at least 1/);
    // maxSteps is checked only when training by steps
    expect(validateLora({ ...ok, maxSteps: 0 }).maxSteps).toBeUndefined();
    expect(validateLora({ ...ok, useSteps: true, maxSteps: 0 }).maxSteps).toMatch(/at least 1/);
  });
});
