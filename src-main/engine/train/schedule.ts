/**
 * Learning-rate schedules: linear warmup from 0, then cosine, linear or constant decay to
 * `minLrRatio × lr` at `totalSteps` (the shapes transformers' get_*_schedule_with_warmup produce,
 * with a floor). Steps are 0-based optimizer steps.
 */
export type ScheduleKind = 'cosine' | 'linear' | 'constant';

export interface ScheduleConfig {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  kind: ScheduleKind;
  /** Final LR as a fraction of the peak (0 = decay to zero). */
  minLrRatio: number;
}

export function learningRateAt(step: number, c: ScheduleConfig): number {
  if (c.warmupSteps > 0 && step < c.warmupSteps) return (c.lr * (step + 1)) / c.warmupSteps;
  if (c.kind === 'constant') return c.lr;
  const decaySteps = Math.max(1, c.totalSteps - c.warmupSteps);
  const progress = Math.min(1, Math.max(0, (step - c.warmupSteps) / decaySteps));
  const shape = c.kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * shape);
}
