/**
 * Time estimates (issue 22 item 4): before a run starts, from the calibration job's timed steps (the
 * 'calibrate' job kind: a few real steps of the configured model, batch and device); while it runs, the
 * dashboard's ETA from the moving average of recent step times plus the validation passes still to come.
 * Pure functions of recorded times, tested against recorded step-time series (test/unit/renderer/eta.test.ts).
 */

/** A step and the time (seconds, any origin) at which it finished. */
export interface StepTime { step: number; t: number }

export interface EtaOptions {
  totalSteps: number;
  /** Validation every N steps (0: none during the run); a final validation follows the last step unless it was just done. */
  evalEvery: number;
  /** Whether the run has held-out text to validate on (no validation cost otherwise). */
  validates?: boolean;
  /** Seconds one validation pass takes, until one has been observed (from the calibration estimate). */
  valSecondsGuess?: number;
  /** How many recent plain steps the moving average covers (default 50). */
  window?: number;
}

export interface Eta {
  /** Seconds until the run ends. */
  seconds: number;
  /** The moving average of recent step times (validation excluded). */
  stepSeconds: number;
  /** Seconds per validation pass (observed, or the guess). */
  valSeconds: number;
  /** Validation passes still to come. */
  valsLeft: number;
}

/** Whether the time from step a to step b includes the validation run after some step m, a ≤ m < b. */
function spansValidation(a: number, b: number, evalEvery: number): boolean {
  if (evalEvery <= 0) return false;
  return Math.floor((b - 1) / evalEvery) * evalEvery >= Math.max(a, evalEvery);
}

/** Validation passes after `current` (in-loop every evalEvery steps, plus the final one). */
export function validationsLeft(current: number, totalSteps: number, evalEvery: number): number {
  if (current >= totalSteps) return 0;
  if (evalEvery <= 0) return 1;
  const inLoop = Math.floor(totalSteps / evalEvery) - Math.floor(Math.max(0, current - 1) / evalEvery);
  // The pass after `current` itself may already be done; counting it errs by one pass at most.
  return Math.max(0, inLoop) + (totalSteps % evalEvery === 0 ? 0 : 1);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The ETA from the steps finished so far (at least two, so one interval is known), or null. The first
 * interval (from the run's start) is left out: it carries the model load and graph build.
 */
export function estimateEta(times: StepTime[], o: EtaOptions): Eta | null {
  const pts = times.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.step)).sort((a, b) => a.step - b.step);
  if (pts.length < 2) return null;
  const validates = o.validates ?? true;
  const plain: number[] = [];
  const withVal: { seconds: number; steps: number }[] = [];
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!, b = pts[i]!;
    const n = b.step - a.step;
    if (n <= 0 || b.t < a.t) continue;
    if (validates && spansValidation(a.step, b.step, o.evalEvery)) withVal.push({ seconds: b.t - a.t, steps: n });
    else for (let k = 0; k < n; k++) plain.push((b.t - a.t) / n);
  }
  if (!plain.length) return null;
  const recent = plain.slice(-(o.window ?? 50));
  // A moving average of the recent steps, leaving out rare long ones (a checkpoint write, a hiccup)
  // that would otherwise be extrapolated to every remaining step; those are counted once below.
  const med = median(recent);
  const kept = recent.filter((x) => x <= 3 * med);
  const stepSeconds = kept.reduce((a, b) => a + b, 0) / kept.length;
  // The median extra time of the intervals that held a validation (a checkpoint written at the same step
  // makes one of them longer; the median keeps that from counting for every pass to come).
  const valSeconds = withVal.length
    ? Math.max(0, median(withVal.map((v) => v.seconds - v.steps * stepSeconds)))
    : (o.valSecondsGuess ?? 0);
  const current = pts.at(-1)!.step;
  const left = Math.max(0, o.totalSteps - current);
  const valsLeft = validates ? validationsLeft(current, o.totalSteps, o.evalEvery) : 0;
  return { seconds: left * stepSeconds + valsLeft * valSeconds, stepSeconds, valSeconds, valsLeft };
}

/** What the calibration job measured (contract/ux.ts CalibrationResult). */
export interface Calibration { setupSeconds: number; stepSeconds: number; steps: number[]; ep: string }

export interface RunShape {
  totalSteps: number;
  evalEvery: number;
  /** Held-out blocks read per validation split, and the number of splits (0: no validation). */
  evalBlocks: number;
  valSplits: number;
  /** Rows per micro-batch and micro-batches per step. */
  batchSize: number;
  gradAccum: number;
}

/**
 * Seconds one validation pass takes, from the measured step time: a forward pass costs about a third of a
 * forward + backward + update step, for evalBlocks rows per split instead of batchSize × gradAccum.
 */
export function validationSecondsFrom(stepSeconds: number, r: RunShape): number {
  if (r.valSplits <= 0) return 0;
  return (stepSeconds / 3) * (r.evalBlocks / (r.batchSize * r.gradAccum)) * r.valSplits;
}

/** The whole run's duration from a calibration: setup + steps + validation passes (before, during, after). */
export function estimateRun(c: Calibration, r: RunShape): { seconds: number; setupSeconds: number; stepsSeconds: number; valSeconds: number; valPasses: number } {
  const val = validationSecondsFrom(c.stepSeconds, r);
  // One pass before the first step (the "before" numbers) and the in-loop and final ones.
  const valPasses = r.valSplits > 0 ? 1 + validationsLeft(0, r.totalSteps, r.evalEvery) : 0;
  const stepsSeconds = r.totalSteps * c.stepSeconds;
  return { seconds: c.setupSeconds + stepsSeconds + valPasses * val, setupSeconds: c.setupSeconds, stepsSeconds, valSeconds: valPasses * val, valPasses };
}
