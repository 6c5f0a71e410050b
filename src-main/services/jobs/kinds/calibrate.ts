/**
 * The calibration job behind the Configure page's time estimate: a few real training steps of the configured
 * model, batch and device, in a scratch folder that is removed afterwards, timed step by step. The first step
 * carries the one-off costs (graph build, session creation, first weight reads), so the step time is taken
 * from the steps after it (renderer/lib/eta.ts extrapolates to the whole run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import type { CalibrationResult } from '../../../contract/ux';
import { train } from '../../../engine/train/trainer';

type Params = Extract<JobRequest, { kind: 'calibrate' }>['params'];

/** Steps run: one warm-up and two timed. */
export const CALIBRATION_STEPS = 3;

/** Setup and per-step seconds from the times (seconds since the job started) at which each step finished. */
export function calibrationFromTimes(doneAt: number[]): Pick<CalibrationResult, 'setupSeconds' | 'stepSeconds' | 'steps'> {
  if (doneAt.length === 0) throw new Error('calibration: no step finished');
  const steps = doneAt.map((t, i) => t - (i === 0 ? 0 : doneAt[i - 1]!));
  const timed = steps.length > 1 ? steps.slice(1) : steps;
  const stepSeconds = timed.reduce((a, b) => a + b, 0) / timed.length;
  return { setupSeconds: Math.max(0, doneAt[0]! - stepSeconds), stepSeconds, steps };
}

export const calibrateJob: JobHandler<Params> = async (params, ctx) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'lathe-calibrate-'));
  const t0 = performance.now();
  // The job process's own start (loading the code) is part of every real run too.
  const processStart = process.uptime();
  const doneAt: number[] = [];
  try {
    ctx.onProgress({ stage: 'Measuring', fraction: 0, message: `Running ${CALIBRATION_STEPS} training steps to time them` });
    const result = await train({
      ...params, out: path.join(scratch, 'run'), maxSteps: CALIBRATION_STEPS, evalEvery: 0, sampleEvery: 0, samplePrompts: [],
      checkpointEvery: 1_000_000, keepLast: 1,
    }, {
      onLog: ctx.onLog,
      signal: ctx.signal,
      checkpoint: ctx.checkpoint,
      onMetric: (m) => {
        if (typeof m['loss'] !== 'number') return;
        doneAt.push((performance.now() - t0) / 1000);
        ctx.onProgress({ stage: 'Measuring', fraction: doneAt.length / CALIBRATION_STEPS, message: `Step ${doneAt.length} of ${CALIBRATION_STEPS}` });
      },
    });
    const timed = calibrationFromTimes(doneAt);
    const out: CalibrationResult = { ...timed, setupSeconds: timed.setupSeconds + processStart, ep: result.ep };
    return out;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
};
