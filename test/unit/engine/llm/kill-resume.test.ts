/**
 * A training process killed without warning (SIGKILL, like a crash or a power cut) resumes from its last
 * checkpoint and ends exactly where an uninterrupted run ends (CPU EP).
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { train } from '../../../../src-main/engine/train/trainer';
import { CheckpointManager } from '../../../../src-main/engine/train/checkpoints';
import { MetricsLog } from '../../../../src-main/engine/train/metrics';
import { tinyDataset, tinyModel } from '../../../helpers/tiny';
import { tempDir } from '../../../helpers/services';

describe('resume after a killed process', () => {
  it('continues from the last checkpoint and matches an uninterrupted run bit for bit', async () => {
    const model = await tinyModel('qwen3');
    const dataset = await tinyDataset(model);
    const steps = 40;
    const flags = ['--model', model, '--data', dataset, '--steps', String(steps), '--batch', '2', '--lr', '0.005', '--eval-every', '0', '--checkpoint-every', '4', '--ep', 'cpu'];
    const killed = path.join(tempDir(), 'run');
    const child = spawn(process.execPath, ['bin/lathe.mjs', 'train', ...flags, '--out', killed], { stdio: 'ignore' });
    const ckDir = path.join(killed, 'checkpoints');
    // wait for the first checkpoint, then kill -9 mid-run
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        if (existsSync(ckDir) && readdirSync(ckDir).some((n) => n.startsWith('step-'))) { clearInterval(poll); resolve(); }
        else if (Date.now() - t0 > 60_000) { clearInterval(poll); reject(new Error('no checkpoint within 60 s')); }
      }, 20);
    });
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const left = new CheckpointManager(ckDir).list().map((c) => c.step);
    expect(left.length).toBeGreaterThan(0);
    expect(Math.max(...left)).toBeLessThan(steps); // it really was interrupted

    const resumed = await train({ model, dataset, out: killed, maxSteps: steps, batchSize: 2, optim: { lr: 0.005 }, evalEvery: 0, checkpointEvery: 4, ep: 'cpu' });
    expect(resumed.resumedFrom).toBe(Math.max(...left));
    const clean = path.join(tempDir(), 'clean');
    await train({ model, dataset, out: clean, maxSteps: steps, batchSize: 2, optim: { lr: 0.005 }, evalEvery: 0, checkpointEvery: 4, ep: 'cpu' });

    const pa = (await new CheckpointManager(path.join(clean, 'checkpoints')).latest())!.tensors.get('params')!;
    const pb = (await new CheckpointManager(ckDir).latest())!.tensors.get('params')!;
    expect(Buffer.from(pb.buffer).equals(Buffer.from(pa.buffer))).toBe(true);
    // the metrics history reloads despite the kill (a torn last line is skipped)
    const hist = MetricsLog.read(path.join(killed, 'metrics.jsonl')).filter((r) => r.kind === 'train');
    expect(new Set(hist.map((r) => r.step)).size).toBe(steps);
  });
});
