/**
 * Issue 22, guard rails on the Configure page: Start is blocked when the estimate exceeds the budget, and the
 * one-click fix (engine/memory/fit.ts's suggestion, applied to the form) makes the real `lora.plan` say it fits;
 * warnings for a step larger than the dataset and for a run too short to learn.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { dispatch, type Services } from '../../../src-main/services';
import type { LoraPlan } from '../../../src-main/contract/wizards';
import { prepareCorpus } from '../../../src-main/data/prepare';
import { guardRails, MIN_STEPS } from '../../../src-renderer/wizards/lora/guards';
import type { LoraForm } from '../../../src-renderer/wizards/lora/validate';
import { tempDir, testServices } from '../../helpers/services';

let s: Services;
let res: { tinyModel: string; domainCorpus: string };

async function call<T>(channel: string, payload: unknown): Promise<T> {
  const env = await dispatch(s, channel, payload);
  if (!env.ok) throw new Error(`${env.error.code}: ${env.error.message}`);
  return env.value as T;
}

const form = (over: Partial<LoraForm> = {}): LoraForm => ({
  rank: 8, alpha: 16, dropout: 0, qlora: false, paged: false, recompute: false, f16: false, targets: 'all-linear', lr: 3e-4, schedule: 'cosine', warmupSteps: 0,
  useSteps: false, maxSteps: 100, epochs: 1, batchSize: 64, gradAccum: 1, maxGradNorm: 1, evalEvery: 50, checkpointEvery: 100, ep: 'webgpu', ...over,
});

/** The request the wizard sends for a form (LoraWizard.svelte's live plan). */
const planFor = (f: LoraForm, dataset: string | null, budgetGB: number | null) => call<LoraPlan>('lora.plan', {
  model: res.tinyModel, dataset, rank: f.rank, targets: f.targets, batchSize: f.batchSize, gradAccum: f.gradAccum, epochs: f.epochs,
  maxSteps: f.useSteps ? f.maxSteps : null, quantization: f.qlora ? 'nf4' : 'none', ep: f.ep, pagedOptimizer: f.paged, recompute: f.recompute, budgetGB,
});

beforeAll(async () => {
  s = testServices();
  res = await call('app.resources', {});
});

describe('guard rails', () => {
  it('blocks Start over the memory budget, and the one-click fix makes the real plan fit', async () => {
    const f = form();
    const roomy = await planFor(f, null, 64);
    expect(guardRails(roomy, f).block).toBeNull();
    const budgetGB = (roomy.memoryMB / 1024) * 0.5;
    const tight = await planFor(f, null, budgetGB);
    const g = guardRails(tight, f);
    expect(g.block).toMatch(/does not fit in memory/);
    expect(g.block).toContain(tight.fit!.message);
    expect(g.fix).not.toBeNull();
    expect(g.fix!.label).toMatch(/^Apply: /);
    const fixed = g.fix!.apply(f);
    expect(f.batchSize).toBe(64); // the form passed in is not changed
    // The tokens per step are kept when the batch is lowered.
    expect(fixed.batchSize * fixed.gradAccum).toBeGreaterThanOrEqual(64);
    const after = await planFor(fixed, null, budgetGB);
    expect(after.fit!.fits).toBe(true);
    expect(after.memoryMB).toBeLessThan(tight.memoryMB);
    expect(guardRails(after, fixed).block).toBeNull();
  });

  it('blocks without a fix when even the smallest settings do not fit', async () => {
    const f = form();
    const hopeless = await planFor(f, null, 1e-4);
    expect(hopeless.fit!.fixable).toBe(false);
    const g = guardRails(hopeless, f);
    expect(g.block).toMatch(/smaller model/);
    expect(g.fix).toBeNull();
  });

  it('applies each kind of fix to the form', () => {
    const fit = (fixes: NonNullable<LoraPlan['fit']>['fixes']): Parameters<typeof guardRails>[0] => ({
      fit: { fits: false, budgetMB: 1, message: 'Needs more.', changes: [], fixes, fixable: true }, tokensPerStep: null, trainBlocks: null, blockSize: null, totalSteps: null,
    });
    const f = form({ batchSize: 8, gradAccum: 2, rank: 32, alpha: 64, f16: true });
    const all = guardRails(fit([
      { setting: 'quantization', from: 'none', to: 'nf4' }, { setting: 'pagedOptimizer', from: false, to: true },
      { setting: 'batchSize', from: 8, to: 2 }, { setting: 'loraRank', from: 32, to: 8 },
    ]), f).fix!.apply(f);
    expect(all).toMatchObject({ qlora: true, f16: false, paged: true, batchSize: 2, gradAccum: 8, rank: 8, alpha: 16 });
    // A shorter block length needs the dataset prepared again: no button, the reason says so.
    const seq = guardRails(fit([{ setting: 'seqLen', from: 1024, to: 512 }]), f);
    expect(seq.fix).toBeNull();
    expect(seq.block).toMatch(/shorter block length/);
  });

  it('warns when one step takes more than the whole dataset, and when the run is too short to learn', async () => {
    const project = (await call<{ path: string }>('projects.create', { parentDir: tempDir('lathe-guards-'), name: 'p' })).path;
    const out = path.join(project, 'datasets', 'ds');
    await prepareCorpus({ inputs: [res.domainCorpus], out, tokenizerDir: res.tinyModel, blockSize: 64, seed: 1 });
    const ok = form({ batchSize: 2, gradAccum: 1, epochs: 3, ep: 'cpu' });
    const okPlan = await planFor(ok, out, null);
    expect(okPlan.totalSteps!).toBeGreaterThanOrEqual(MIN_STEPS);
    expect(guardRails(okPlan, ok).warnings).toEqual([]);

    const huge = form({ batchSize: 4000, gradAccum: 1, ep: 'cpu' });
    const hugePlan = await planFor(huge, out, null);
    expect(hugePlan.tokensPerStep!).toBeGreaterThan(hugePlan.trainBlocks! * 64);
    const w = guardRails(hugePlan, huge).warnings;
    expect(w.some((x) => /more than the whole dataset/.test(x) && x.includes(hugePlan.trainBlocks!.toLocaleString('en-US')))).toBe(true);
    expect(w.some((x) => /too few for the model to learn/.test(x))).toBe(true); // 1 step

    const short = form({ batchSize: 2, useSteps: true, maxSteps: 5, warmupSteps: 10, ep: 'cpu' });
    const shortPlan = await planFor(short, out, null);
    const sw = guardRails(shortPlan, short).warnings;
    expect(sw.some((x) => x.startsWith('Only 5 training steps'))).toBe(true);
    expect(sw.some((x) => /Warmup \(10 steps\)/.test(x))).toBe(true);
    expect(sw.some((x) => /whole dataset/.test(x))).toBe(false);
  });
});
