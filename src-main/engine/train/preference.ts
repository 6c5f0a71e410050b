/**
 * What the trainer needs for preference tuning besides the graph (llm/preference-graph.ts): pairs ->
 * feeds, the reward metrics, and the evaluation of held-out pairs. The loop is the trainer's own.
 *
 * A prepared preference dataset stores pair i as rows 2i (chosen) and 2i + 1 (rejected); a micro-batch of
 * P pairs becomes 2P graph rows, the P chosen first, then the P rejected in the same order.
 */
import type { SplitReader } from '../../data/pack/dataset';
import { hostTensor, type EngineSession, type HostTensor } from '../backends/onnx';
import type { TokenRows } from '../llm/lora';
import type { PreferenceLoss } from '../llm/preference-graph';
import { UserError } from '../../util/progress';
import type { TrainConfig } from './config';

export interface PairBatch {
  ids: BigInt64Array;
  targets: BigInt64Array;
  mask: Float32Array;
  /** 1 per real pair, 0 per padding pair. */
  weights: Float32Array;
  /** Completion tokens scored per row [2P]. */
  tokens: Float32Array;
  /** Real pairs (what the step's loss is averaged over). */
  count: number;
}

/** The preference loss of a run's config. */
export function preferenceLossOf(cfg: TrainConfig): PreferenceLoss | null {
  if (cfg.method === 'lm') return null;
  return { method: cfg.method, beta: cfg.preference.beta, loss: cfg.preference.loss, labelSmoothing: cfg.preference.labelSmoothing, orpoLambda: cfg.preference.orpoLambda };
}

/**
 * Pairs by index (-1 = padding) as one batch. Position t predicts token t + 1 when that token is a
 * completion token (mask). A padding pair repeats pair 0 with weight 0, so its numbers stay finite.
 */
export function readPairs(split: SplitReader, indices: number[], T: number, rows: TokenRows): PairBatch {
  const P = indices.length, R = 2 * P, N = R * T;
  const b: PairBatch = { ids: new BigInt64Array(N), targets: new BigInt64Array(N), mask: new Float32Array(N), weights: new Float32Array(P), tokens: new Float32Array(R), count: 0 };
  for (let p = 0; p < P; p++) {
    const real = indices[p]! >= 0;
    const pair = real ? indices[p]! : 0;
    b.weights[p] = real ? 1 : 0;
    if (real) b.count++;
    for (const side of [0, 1]) {
      const r = split.sftRow(2 * pair + side);
      const row = side * P + p;
      for (let t = 0; t < T; t++) {
        const k = row * T + t;
        const id = r.ids[t]!;
        if (!rows.has(id)) {
          throw new UserError('train.tokenRange', `The dataset has token id ${id}, but the model has only ${rows.baseRows} embeddings.`, 'Prepare the dataset with this model\'s tokenizer.');
        }
        b.ids[k] = BigInt(id);
        if (t + 1 < T && r.mask[t + 1]) {
          b.targets[k] = BigInt(r.ids[t + 1]!);
          b.mask[k] = 1;
          b.tokens[row]!++;
        }
      }
    }
  }
  return b;
}

export function pairFeeds(b: PairBatch, P: number, T: number): Record<string, HostTensor> {
  const R = 2 * P, N = R * T;
  return {
    ids: hostTensor('int64', [R, T], b.ids),
    targets: hostTensor('int64', [N, 1], b.targets),
    mask: hostTensor('float32', [N, 1], b.mask),
    pairs: hostTensor('float32', [P], b.weights),
  };
}

/**
 * Reward metrics over the pairs of a step or an evaluation (means over pairs):
 *   DPO:  reward = β · (logp_policy − logp_reference) per reply (the implicit reward of the DPO paper);
 *         logps are summed over the reply's tokens.
 *   ORPO: reward = λ · mean per-token logp of the reply (as TRL reports it); logps are per-token means.
 *   margin = mean(reward_chosen − reward_rejected); accuracy = share of pairs with reward_chosen > reward_rejected.
 */
export class RewardStats {
  private n = 0;
  private rc = 0;
  private rr = 0;
  private acc = 0;
  private lc = 0;
  private lr = 0;
  constructor(readonly loss: PreferenceLoss) {}
  add(b: PairBatch, logps: ArrayLike<number>, refLogps: ArrayLike<number> | null): void {
    const P = b.weights.length;
    for (let p = 0; p < P; p++) {
      if (!b.weights[p]) continue;
      let c = logps[p]!, r = logps[P + p]!, wc: number, wr: number;
      if (this.loss.method === 'dpo') {
        wc = this.loss.beta * (c - (refLogps?.[p] ?? 0));
        wr = this.loss.beta * (r - (refLogps?.[P + p] ?? 0));
      } else {
        c /= Math.max(1, b.tokens[p]!);
        r /= Math.max(1, b.tokens[P + p]!);
        wc = this.loss.orpoLambda * c;
        wr = this.loss.orpoLambda * r;
      }
      this.n++;
      this.rc += wc; this.rr += wr; this.lc += c; this.lr += r;
      if (wc > wr) this.acc++;
    }
  }
  get pairs(): number { return this.n; }
  result(): Record<string, number> {
    const n = Math.max(1, this.n);
    return {
      rewardsChosen: this.rc / n, rewardsRejected: this.rr / n, rewardMargin: (this.rc - this.rr) / n,
      rewardAccuracy: this.acc / n, logpsChosen: this.lc / n, logpsRejected: this.lr / n,
    };
  }
}

/** Loss (mean over pairs) and reward metrics on up to `maxPairs` pairs of a held-out split. */
export async function evaluatePairs(session: Pick<EngineSession, 'run'>, split: SplitReader, params: HostTensor, P: number, T: number, rows: TokenRows,
  maxPairs: number, loss: PreferenceLoss): Promise<Record<string, number> & { loss: number }> {
  const n = Math.min(split.rows / 2, maxPairs);
  const stats = new RewardStats(loss);
  let sum = 0;
  const fetch = ['loss_sum', 'logps', ...(loss.method === 'dpo' ? ['ref_logps'] : [])];
  for (let start = 0; start < n; start += P) {
    const b = readPairs(split, Array.from({ length: P }, (_, i) => (start + i < n ? start + i : -1)), T, rows);
    const out = await session.run({ ...pairFeeds(b, P, T), params }, fetch);
    sum += Number((out['loss_sum']!.data as Float32Array)[0]);
    stats.add(b, out['logps']!.data as Float32Array, out['ref_logps'] ? out['ref_logps'].data as Float32Array : null);
  }
  return { loss: sum / Math.max(1, stats.pairs), ...stats.result() };
}
