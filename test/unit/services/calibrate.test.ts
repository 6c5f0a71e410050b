/**
 * The time estimate before Start (issue 22 item 4): the calibration job runs real training steps of the
 * configured run in its own process, times them, leaves nothing behind, and its extrapolation is compared with
 * the same run really trained.
 */
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../helpers/cache-env';
import { JobHost } from '../../../src-main/services/jobs/host';
import { spawnNodeJobProcess } from '../../../src-main/services/jobs/node-process';
import { calibrationFromTimes, CALIBRATION_STEPS } from '../../../src-main/services/jobs/kinds/calibrate';
import type { CalibrationResult } from '../../../src-main/contract/ux';
import { TrainConfigSchema } from '../../../src-main/engine/train/config';
import { estimateRun } from '../../../src-renderer/lib/eta';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';

const scratchDirs = () => readdirSync(os.tmpdir()).filter((n) => n.startsWith('lathe-calibrate-'));

describe('calibration', () => {
  it('splits setup from step time', () => {
    expect(calibrationFromTimes([5, 6, 7.5])).toEqual({ setupSeconds: 5 - 1.25, stepSeconds: 1.25, steps: [5, 1, 1.5] });
    expect(calibrationFromTimes([2])).toEqual({ setupSeconds: 0, stepSeconds: 2, steps: [2] });
    expect(() => calibrationFromTimes([])).toThrow();
  });

  it('times real steps of the configured run in a job process, removes its scratch folder, and predicts the real run', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model, { docs: 30 });
    const out = path.join(tempDir('lathe-cal-run-'), 'run');
    const cfg = TrainConfigSchema.parse({ model, dataset, out, batchSize: 4, maxSteps: 40, evalEvery: 10, evalBlocks: 8, ep: 'cpu' });
    const before = new Set(scratchDirs());
    const host = new JobHost(spawnNodeJobProcess);
    try {
      const cal = await host.wait(host.start({ kind: 'calibrate', params: cfg }));
      expect(cal.state, JSON.stringify(cal.error)).toBe('done');
      const c = cal.result as CalibrationResult;
      expect(c.steps).toHaveLength(CALIBRATION_STEPS);
      expect(c.stepSeconds).toBeGreaterThan(0);
      expect(c.ep).toBe('cpu');
      expect(existsSync(out)).toBe(false); // nothing written where the real run goes
      expect(scratchDirs().filter((d) => !before.has(d))).toEqual([]);
      // The real run of the same config, timed the same way (job start to done).
      const t0 = Date.now();
      const real = await host.wait(host.start({ kind: 'train', params: cfg }));
      const seconds = (Date.now() - t0) / 1000;
      expect(real.state).toBe('done');
      const est = estimateRun(c, { totalSteps: 40, evalEvery: 10, evalBlocks: 8, valSplits: 1, batchSize: 4, gradAccum: 1 });
      // A loose bound: a 40-step tiny run lasts seconds and shares 2 cores with other work; the process start
      // (~1-2 s of tsx) is in both. This checks the extrapolation is the right shape, not a benchmark.
      expect(est.seconds).toBeGreaterThan(seconds * 0.5);
      expect(est.seconds).toBeLessThan(seconds * 2);
      console.log(`calibration: setup ${c.setupSeconds.toFixed(2)} s, step ${c.stepSeconds.toFixed(3)} s; estimate ${est.seconds.toFixed(1)} s, real ${seconds.toFixed(1)} s`);
    } finally {
      host.dispose();
    }
  }, 240_000);
});
