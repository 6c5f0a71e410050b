/**
 * Resuming after a crash: a damaged newest checkpoint is reported and set aside (not skipped silently),
 * and metrics.jsonl records each step once (the crashed attempt's later records are dropped on resume;
 * readers of older files count re-run steps once).
 */
import { describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, readFileSync, truncateSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dedupeHistory, MetricsLog, type MetricRecord } from '../../../../src-main/engine/train/metrics';
import { CheckpointManager } from '../../../../src-main/engine/train/checkpoints';
import { train } from '../../../../src-main/engine/train/trainer';
import { computeLogits } from '../../../../src-main/engine/train/infer';
import type { UserError } from '../../../../src-main/util/progress';
import { listRuns, readRun } from '../../../../src-main/services/runs';
import { tinyDataset, tinyModel } from '../../../helpers/tiny';
import { tempDir } from '../../../helpers/services';

const rec = (kind: MetricRecord['kind'], step: number, extra: Record<string, number | string> = {}): MetricRecord => ({ kind, step, time: 't', ...extra });

describe('metrics history after crashes', () => {
  it('keeps one record per train step (the last) and drops a crashed attempt past a resume event', () => {
    const crashed = [1, 2, 3, 4, 5, 6, 7].map((s) => rec('train', s, { loss: 10 - s }));
    const resumed = [rec('event', 4, { event: 'resumed' }), rec('train', 5, { loss: 0.5 }), rec('train', 6, { loss: 0.4 })];
    const out = dedupeHistory([...crashed, rec('val', 6, { split: 'val-domain', loss: 9 }), ...resumed]);
    expect(out.filter((r) => r.kind === 'train').map((r) => [r.step, r['loss']])).toEqual([[1, 9], [2, 8], [3, 7], [4, 6], [5, 0.5], [6, 0.4]]);
    expect(out.filter((r) => r.kind === 'val')).toEqual([]); // step 6's val came from the crashed attempt
    // without a resume event (older files): the last record of each step wins
    const old = dedupeHistory([rec('train', 1, { loss: 3 }), rec('train', 2, { loss: 2 }), rec('train', 2, { loss: 1 }), rec('val', 2, { split: 'a', loss: 5 }), rec('val', 2, { split: 'a', loss: 4 })]);
    expect(old.map((r) => [r.kind, r.step, r['loss']])).toEqual([['train', 1, 3], ['train', 2, 1], ['val', 2, 4]]);
  });

  it('truncates the file after a step atomically, skipping a torn last line', () => {
    const file = path.join(tempDir(), 'metrics.jsonl');
    const log = new MetricsLog(file);
    for (let s = 1; s <= 5; s++) log.append({ kind: 'train', step: s, loss: s });
    appendFileSync(file, '{"kind":"train","st');
    expect(MetricsLog.truncateAfter(file, 3)).toBe(2);
    expect(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).toEqual([1, 2, 3]);
  });
});

describe('resume with a damaged newest checkpoint', () => {
  it('says so, sets it aside, resumes from the one before, and records every step once', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const project = tempDir();
    const out = path.join(project, 'runs', 'r1');
    const cfg = { model, dataset, out, batchSize: 2, optim: { lr: 0.005 }, evalEvery: 0, checkpointEvery: 3, ep: 'cpu' as const };
    await train({ ...cfg, maxSteps: 7 }); // checkpoints at 3, 6 and the final 7
    const ck = path.join(out, 'checkpoints');
    const file = path.join(ck, 'step-000007', 'tensors.safetensors');
    truncateSync(file, statSync(file).size - 64); // torn while being copied
    // what a crashed attempt past step 7 left: records of steps 8-9 that the resumed run repeats
    const metrics = path.join(out, 'metrics.jsonl');
    for (const s of [8, 9]) appendFileSync(metrics, JSON.stringify({ kind: 'train', step: s, loss: 99, time: 't' }) + '\n');
    writeFileSync(path.join(out, 'summary.json'), '{}'); // not read by the trainer

    // used before the resume (export, eval, chat), the run does not fall back silently either
    const err = await computeLogits(model, [1, 2], { checkpoint: out, ep: 'cpu' }).then(() => null, (e: unknown) => e as UserError);
    expect(err?.code).toBe('checkpoint.damaged');
    expect(err?.message).toMatch(/step-000007, is damaged \(tensors\.safetensors is truncated/);
    expect(err?.hint).toContain(path.join(ck, 'step-000006'));

    const logs: string[] = [];
    const s = await train({ ...cfg, maxSteps: 8 }, { onLog: (_l, m) => logs.push(m) });
    expect(s.resumedFrom).toBe(6);
    expect(s.damagedCheckpoints).toHaveLength(1);
    expect(s.damagedCheckpoints[0]!.message).toMatch(/^Checkpoint step-000007 is damaged \(tensors\.safetensors is truncated: .*\); resuming from step-000006\. It was moved to step-000007\.damaged\.$/);
    expect(logs.some((m) => m.startsWith('Checkpoint step-000007 is damaged'))).toBe(true);
    expect(existsSync(path.join(ck, 'step-000007.damaged'))).toBe(true);
    expect(new CheckpointManager(ck).list().map((c) => c.step)).toEqual([3, 6, 8]);

    const raw = MetricsLog.readRaw(metrics);
    const trainSteps = raw.filter((r) => r.kind === 'train').map((r) => r.step);
    expect(trainSteps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]); // each once, in order, in the file itself
    expect(raw.filter((r) => r.kind === 'train').every((r) => r['loss'] !== 99)).toBe(true);
    expect(raw.some((r) => r['event'] === 'checkpoint-damaged' && r['checkpoint'] === 'step-000007')).toBe(true);
    // the services' run view reads the same history
    expect(listRuns(project).find((r) => r.dir === out)?.lastStep).toBe(8);
    expect(readRun(out).records.filter((r) => r.kind === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
