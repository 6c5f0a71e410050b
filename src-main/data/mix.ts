import { fmix, rng } from './clean/hash';
import { readSpool } from './spool';
import type { Doc } from './types';

export interface MixPlan {
  /** Requested domain share of the training mix, in tokens. */
  ratio: number;
  domainRepeat: number;
  generalRepeat: number;
  /** Size of each corpus in tokens (estimated from its characters and `charsPerToken`). */
  domainTokens: number;
  generalTokens: number;
  /** Expected tokens from each side after repetition/subsampling. */
  domainTarget: number;
  generalTarget: number;
  /** Planned domain share (differs from `ratio` when a corpus is too small even with repetition). */
  achievedRatio: number;
  /** Characters per token of each corpus, measured on a sample with the model's tokenizer. */
  charsPerToken: { domain: number; general: number };
  /** Tokens that actually went into the training split from each side, and the resulting domain share. */
  measured?: { domainTokens: number; generalTokens: number; ratio: number };
  warnings: string[];
}

/**
 * Decides how often each corpus is used, in tokens. The domain corpus is used once (or
 * `totalTokens × ratio` worth when a total is set); the general corpus fills the rest. Either side is
 * repeated (oversampled) when too small, at most `maxRepeat` times, else the ratio is missed and a
 * warning says so. Token counts come from characters and each corpus's measured characters per token
 * (text in another language or script can differ by 2× or more, so a ratio by characters would be off).
 */
export function planMix(
  domainTokens: number, generalTokens: number, ratio: number, maxRepeat: number, totalTokens?: number,
  charsPerToken: MixPlan['charsPerToken'] = { domain: 1, general: 1 },
): MixPlan {
  const warnings: string[] = [];
  if (generalTokens <= 0 || ratio >= 1) {
    const rep = totalTokens && domainTokens > 0 ? Math.min(maxRepeat, totalTokens / domainTokens) : 1;
    return { ratio: 1, domainRepeat: rep, generalRepeat: 0, domainTokens, generalTokens, domainTarget: domainTokens * rep, generalTarget: 0, achievedRatio: 1, charsPerToken, warnings };
  }
  let dTarget = totalTokens ? totalTokens * ratio : domainTokens;
  let gTarget = totalTokens ? totalTokens * (1 - ratio) : (domainTokens * (1 - ratio)) / ratio;
  let dRep = domainTokens > 0 ? dTarget / domainTokens : 0;
  let gRep = gTarget / generalTokens;
  if (dRep > maxRepeat) {
    warnings.push(`The domain corpus would have to be repeated ${dRep.toFixed(1)}× for this total; capped at ${maxRepeat}×.`);
    dRep = maxRepeat;
    dTarget = domainTokens * dRep;
  }
  if (gRep > maxRepeat) {
    warnings.push(`The general corpus is too small for a ${(ratio * 100).toFixed(0)}% domain mix (it would need ${gRep.toFixed(1)} repeats); capped at ${maxRepeat}×, so the domain share is higher than asked.`);
    gRep = maxRepeat;
    gTarget = generalTokens * gRep;
  }
  const achievedRatio = dTarget / Math.max(1, dTarget + gTarget);
  return { ratio, domainRepeat: dRep, generalRepeat: gRep, domainTokens, generalTokens, domainTarget: dTarget, generalTarget: gTarget, achievedRatio, charsPerToken, warnings };
}

/** Documents of a spool repeated `repeat` times: whole passes, then a seeded fraction of one more. */
async function* repeated(path: string, repeat: number, seed: number): AsyncGenerator<Doc> {
  const passes = Math.ceil(repeat - 1e-9);
  for (let p = 0; p < passes; p++) {
    const frac = Math.min(1, repeat - p);
    let i = 0;
    for await (const d of readSpool(path)) {
      const u = (fmix(Math.imul(seed ^ 0x5bd1e995, p + 1) ^ Math.imul(i++, 0x9e3779b1)) >>> 0) / 4294967296;
      if (frac >= 1 || u < frac) yield d;
    }
  }
}

/** A document of the training mix, marked with the corpus it came from. */
export type MixedDoc = Doc & { general?: true };

/**
 * Streams the training mix: both sides interleaved at random (seeded), each pick weighted by the
 * tokens that side still has to give (estimated from characters), so the two are spread evenly.
 */
export async function* mixStreams(domainSpool: string, generalSpool: string | null, plan: MixPlan, seed: number): AsyncGenerator<MixedDoc> {
  const r = rng(seed);
  const d = repeated(domainSpool, plan.domainRepeat, seed);
  const g = generalSpool && plan.generalRepeat > 0 ? repeated(generalSpool, plan.generalRepeat, seed + 1) : null;
  let dLeft = plan.domainTarget, gLeft = g ? plan.generalTarget : 0;
  let dDone = false, gDone = !g;
  while (!dDone || !gDone) {
    const pickDomain = gDone || (!dDone && r() * (Math.max(dLeft, 1) + Math.max(gLeft, 1)) < Math.max(dLeft, 1));
    const it = pickDomain ? d : g!;
    const next = await it.next();
    if (next.done) { if (pickDomain) dDone = true; else gDone = true; continue; }
    if (pickDomain) { dLeft -= next.value.text.length / plan.charsPerToken.domain; yield next.value; }
    else { gLeft -= next.value.text.length / plan.charsPerToken.general; yield { ...next.value, general: true }; }
  }
}

/** Evenly spaced validation picks: document i is held out when the running count crosses an integer. */
export function makeValSelector(fraction: number, seed: number): (i: number) => boolean {
  const u = rng(seed)();
  return (i) => fraction > 0 && Math.floor((i + 1) * fraction + u) > Math.floor(i * fraction + u);
}
