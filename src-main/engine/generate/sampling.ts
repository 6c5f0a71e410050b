/**
 * Choosing the next token from logits on the host, in transformers' order: repetition penalty ->
 * temperature -> top-k -> top-p -> sample (or argmax when greedy). Seeded, so a run can be repeated.
 */
import { Rng } from '../models/rng';
import { UserError } from '../../util/progress';

export interface SamplingOptions {
  /** Argmax after the repetition penalty (temperature, top-k, top-p ignored). */
  greedy: boolean;
  /** Logits are divided by this (> 0). */
  temperature: number;
  /** Keep the k most likely tokens (0 = off). */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP: number;
  /** CTRL-style penalty on tokens already in the prompt or the output (1 = off): logit>0 ? l/p : l·p. */
  repetitionPenalty: number;
  seed: number;
}

/**
 * transformers' GenerationConfig defaults: greedy unless do_sample (a model's generation_config.json may
 * turn sampling on and set its values).
 */
export const DEFAULT_SAMPLING: SamplingOptions = { greedy: true, temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1, seed: 0 };

export function checkSampling(o: SamplingOptions): void {
  const bad = (what: string, got: number, want: string) =>
    new UserError('generate.sampling', `${what} must be ${want} (got ${got}).`, 'Fix the value, or use --greedy for deterministic output.');
  if (!(o.temperature > 0) || !Number.isFinite(o.temperature)) throw bad('Temperature', o.temperature, 'a number above 0');
  if (!Number.isInteger(o.topK) || o.topK < 0) throw bad('Top-k', o.topK, 'a whole number ≥ 0 (0 = off)');
  if (!(o.topP > 0 && o.topP <= 1)) throw bad('Top-p', o.topP, 'above 0 and at most 1');
  if (!(o.repetitionPenalty > 0) || !Number.isFinite(o.repetitionPenalty)) throw bad('Repetition penalty', o.repetitionPenalty, 'a number above 0 (1 = off)');
}

export class Sampler {
  private readonly rng: Rng;
  private readonly seen = new Set<number>();

  constructor(readonly opts: SamplingOptions, context: Iterable<number> = []) {
    checkSampling(opts);
    this.rng = new Rng(opts.seed);
    for (const id of context) this.seen.add(id);
  }

  /** Picks the next id from logits [V] (not modified) and remembers it for the repetition penalty. */
  next(logits: Float32Array): number {
    return this.nextWith(logits, this.draw());
  }

  /**
   * The uniform draw in [0, 1) the next pick uses (the seeded RNG advances), or 0 when greedy (no draw):
   * `nextWith(logits, draw())` is `next(logits)`. The GPU sampler (backends/webgpu/sample.ts) takes it.
   */
  draw(): number {
    return this.opts.greedy ? 0 : this.rng.next();
  }

  /** next() with the draw already taken (draw()). */
  nextWith(logits: Float32Array, u: number): number {
    const id = this.choose(logits, u);
    this.remember(id);
    return id;
  }

  /** Adds an id picked elsewhere (on the GPU) to the repetition penalty's set. */
  remember(id: number): void {
    this.seen.add(id);
  }

  /** Ids the repetition penalty applies to (the context and the picks so far). */
  get seenIds(): ReadonlySet<number> {
    return this.seen;
  }

  private choose(logits: Float32Array, draw: number): number {
    const o = this.opts;
    const V = logits.length;
    const l = Float64Array.from(logits);
    if (o.repetitionPenalty !== 1) {
      for (const id of this.seen) if (id < V) l[id] = l[id]! > 0 ? l[id]! / o.repetitionPenalty : l[id]! * o.repetitionPenalty;
    }
    if (o.greedy) return argmax(l);
    let max = -Infinity;
    for (let i = 0; i < V; i++) { l[i] = l[i]! / o.temperature; if (l[i]! > max) max = l[i]!; }
    // candidates sorted by logit, descending (ties: lower id first, as a stable sort). Tokens more than
    // 40 nats below the best (probability < 4e-18 each) are left out first, so a 150k vocabulary costs a
    // scan instead of a full sort; their total mass stays below 1e-12.
    const cand: number[] = [];
    for (let i = 0; i < V; i++) if (l[i]! >= max - 40) cand.push(i);
    let order = cand.sort((a, b) => l[b]! - l[a]! || a - b);
    if (o.topK > 0 && o.topK < V) order = order.slice(0, o.topK);
    let probs = order.map((i) => Math.exp(l[i]! - max));
    let sum = probs.reduce((a, b) => a + b, 0);
    if (o.topP < 1) {
      // keep tokens while the mass before them is below p (the token crossing p is kept, as transformers)
      let acc = 0, n = 0;
      while (n < order.length && acc < o.topP * sum) acc += probs[n++]!;
      order = order.slice(0, Math.max(1, n));
      probs = probs.slice(0, order.length);
      sum = probs.reduce((a, b) => a + b, 0);
    }
    let u = draw * sum;
    for (let j = 0; j < order.length; j++) {
      u -= probs[j]!;
      if (u < 0) return order[j]!;
    }
    return order[order.length - 1]!;
  }
}

export function argmax(l: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < l.length; i++) if (l[i]! > l[best]!) best = i;
  return best;
}
