/** Turns a run's history (metrics.jsonl records) and live job metrics into chart series. */
import type { Series } from '../../lib/chart';

/** Preference tuning (DPO/ORPO) metrics, on training steps and held-out pairs (docs/preference.md). */
export const REWARD_KEYS = ['rewardsChosen', 'rewardsRejected', 'rewardMargin', 'rewardAccuracy', 'logpsChosen', 'logpsRejected'] as const;
export type RewardKey = (typeof REWARD_KEYS)[number];
export type Rewards = Partial<Record<RewardKey, number>>;

export interface TrainPoint extends Rewards { step: number; loss: number; lr: number; gradNorm: number; tokensPerSecond: number; memoryMB: number; etaSeconds: number; ppl: number }
export interface ValPoint extends Rewards { step: number; split: string; loss: number; ppl: number }

const rewardsOf = (get: (k: string) => unknown): Rewards =>
  Object.fromEntries(REWARD_KEYS.filter((k) => get(k) !== undefined).map((k) => [k, num(get(k))])) as Rewards;

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

/** History records ({kind:'train'|'val'|'event', ...}) and live metric events ({step, loss...} or {step, val_<split>_loss...}). */
export function collect(records: Record<string, number | string>[], live: Record<string, number>[]): { train: TrainPoint[]; val: ValPoint[] } {
  const train = new Map<number, TrainPoint>();
  const val = new Map<string, ValPoint>();
  for (const r of records) {
    if (r['kind'] === 'train') train.set(num(r['step']), r as unknown as TrainPoint);
    else if (r['kind'] === 'val') val.set(`${r['split']}@${r['step']}`, { step: num(r['step']), split: String(r['split']), loss: num(r['loss']), ppl: num(r['ppl']), ...rewardsOf((k) => r[k]) });
  }
  for (const m of live) {
    if (typeof m['loss'] === 'number') { train.set(m['step']!, m as unknown as TrainPoint); continue; }
    const splits = new Set<string>();
    for (const k of Object.keys(m)) { const x = /^val_(.+)_loss$/.exec(k); if (x) splits.add(x[1]!); }
    for (const s of splits) val.set(`${s}@${m['step']}`, { step: m['step']!, split: s, loss: m[`val_${s}_loss`]!, ppl: num(m[`val_${s}_ppl`]), ...rewardsOf((k) => m[`val_${s}_${k}`]) });
  }
  return { train: [...train.values()].sort((a, b) => a.step - b.step), val: [...val.values()].sort((a, b) => a.step - b.step) };
}

/** Exponential moving average with bias correction (as TensorBoard's smoothing). */
export function smooth(points: { x: number; y: number }[], weight = 0.9): { x: number; y: number }[] {
  let acc = 0, n = 0;
  return points.map((p) => {
    acc = acc * weight + (1 - weight) * p.y;
    n++;
    return { x: p.x, y: acc / (1 - weight ** n) };
  });
}

/** At most this many points per series: enough for a chart a few hundred pixels wide. */
export const MAX_POINTS = 800;

/** Every k-th point (always the last), so long runs draw as fast as short ones. */
export function thin<T>(points: T[], max = MAX_POINTS): T[] {
  if (points.length <= max) return points;
  const k = Math.ceil(points.length / max);
  const out = points.filter((_, i) => i % k === 0);
  if (out.at(-1) !== points.at(-1)) out.push(points.at(-1)!);
  return out;
}

export function line(train: TrainPoint[], key: keyof TrainPoint): { x: number; y: number }[] {
  return train.filter((p) => Number.isFinite(p[key])).map((p) => ({ x: p.step, y: p[key] as number }));
}

const VAL_WORDS: Record<'loss' | 'ppl' | RewardKey, string> = {
  loss: 'loss', ppl: 'perplexity', rewardsChosen: 'chosen reward', rewardsRejected: 'rejected reward', rewardMargin: 'reward margin',
  rewardAccuracy: 'reward accuracy', logpsChosen: 'chosen log-prob', logpsRejected: 'rejected log-prob',
};

export function valSeries(val: ValPoint[], key: 'loss' | 'ppl' | RewardKey): Series[] {
  const splits = [...new Set(val.map((v) => v.split))].sort();
  return splits.map((s) => ({
    label: `${s.replace(/^val-/, '')} held-out ${VAL_WORDS[key]}`,
    points: val.filter((v) => v.split === s && Number.isFinite(v[key])).map((v) => ({ x: v.step, y: v[key] as number })),
  })).filter((x) => x.points.length > 0);
}

/** Whether the run is preference tuning (its steps carry reward metrics). */
export const isPreference = (train: TrainPoint[]): boolean => train.some((p) => p.rewardMargin !== undefined);
