import { fmix, rng } from './clean/hash';
import { readSpool } from './spool';
import type { Doc } from './types';

export interface MixPlan {
  /** Requested domain share of the training mix (by characters, a proxy for tokens). */
  ratio: number;
  domainRepeat: number;
  generalRepeat: number;
  domainChars: number;
  generalChars: number;
  /** Expected characters from each side after repetition/subsampling. */
  domainTarget: number;
  generalTarget: number;
  achievedRatio: number;
  warnings: string[];
}

/**
 * Decides how often each corpus is used. The domain corpus is used once (or `totalChars × ratio`
 * worth when a total is set); the general corpus fills the rest. Either side is repeated
 * (oversampled) when too small, at most `maxRepeat` times, else the ratio is missed and a warning says so.
 */
export function planMix(domainChars: number, generalChars: number, ratio: number, maxRepeat: number, totalChars?: number): MixPlan {
  const warnings: string[] = [];
  if (generalChars <= 0 || ratio >= 1) {
    const rep = totalChars && domainChars > 0 ? Math.min(maxRepeat, totalChars / domainChars) : 1;
    return { ratio: 1, domainRepeat: rep, generalRepeat: 0, domainChars, generalChars, domainTarget: domainChars * rep, generalTarget: 0, achievedRatio: 1, warnings };
  }
  let dTarget = totalChars ? totalChars * ratio : domainChars;
  let gTarget = totalChars ? totalChars * (1 - ratio) : (domainChars * (1 - ratio)) / ratio;
  let dRep = domainChars > 0 ? dTarget / domainChars : 0;
  let gRep = gTarget / generalChars;
  if (dRep > maxRepeat) {
    warnings.push(`The domain corpus would have to be repeated ${dRep.toFixed(1)}× for this total; capped at ${maxRepeat}×.`);
    dRep = maxRepeat;
    dTarget = domainChars * dRep;
  }
  if (gRep > maxRepeat) {
    warnings.push(`The general corpus is too small for a ${(ratio * 100).toFixed(0)}% domain mix (it would need ${gRep.toFixed(1)} repeats); capped at ${maxRepeat}×, so the domain share is higher than asked.`);
    gRep = maxRepeat;
    gTarget = generalChars * gRep;
  }
  const achievedRatio = dTarget / Math.max(1, dTarget + gTarget);
  return { ratio, domainRepeat: dRep, generalRepeat: gRep, domainChars, generalChars, domainTarget: dTarget, generalTarget: gTarget, achievedRatio, warnings };
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

/**
 * Streams the training mix: both sides interleaved at random (seeded), each pick weighted by the
 * characters that side still has to give, so the two are spread evenly through the output.
 */
export async function* mixStreams(domainSpool: string, generalSpool: string | null, plan: MixPlan, seed: number): AsyncGenerator<Doc> {
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
    if (pickDomain) dLeft -= next.value.text.length; else gLeft -= next.value.text.length;
    yield next.value;
  }
}

/** Evenly spaced validation picks: document i is held out when the running count crosses an integer. */
export function makeValSelector(fraction: number, seed: number): (i: number) => boolean {
  const u = rng(seed)();
  return (i) => fraction > 0 && Math.floor((i + 1) * fraction + u) > Math.floor(i * fraction + u);
}
