/**
 * Reference-based text metrics for evaluation sets, computed by us (no Python at run time):
 *
 * - Corpus BLEU-4 as sacreBLEU computes it by default (signature nrefs:N|case:mixed|eff:no|tok:13a|
 *   smooth:exp): 13a tokenization (mteval-v13a), clipped n-gram matches against the per-n-gram maximum
 *   over references, closest reference length (ties: the shorter), brevity penalty, geometric mean of the
 *   four precisions, 'exp' smoothing for orders with no match. Score 0..100.
 * - ROUGE-L as Google's rouge-score package (`RougeScorer(['rougeL'])`): lowercase, runs of characters
 *   other than [a-z0-9] are separators, LCS-based precision / recall / F1. No Porter stemmer (rouge-score's
 *   use_stemmer=False, its default).
 */

/** sacreBLEU's Tokenizer13a. */
export function tokenize13a(line: string): string[] {
  let s = line.replace(/<skipped>/g, '').replace(/-\n/g, '').replace(/\n/g, ' ');
  if (s.includes('&')) s = s.replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  s = ` ${s} `;
  // mteval-v13a: punctuation apart; period/comma apart unless next to a digit; dash after a digit apart
  s = s.replace(/([{-~[-` -&(-+:-@/])/g, ' $1 ');
  s = s.replace(/([^0-9])([.,])/g, '$1 $2 ');
  s = s.replace(/([.,])([^0-9])/g, ' $1 $2');
  s = s.replace(/([0-9])(-)/g, '$1 $2 ');
  return s.split(/\s+/).filter((t) => t.length > 0);
}

function ngramCounts(tokens: string[], maxN: number): Map<string, number>[] {
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= maxN; n++) {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = tokens.slice(i, i + n).join('\u0001');
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    out.push(m);
  }
  return out;
}

export interface BleuResult {
  /** 0..100 */
  score: number;
  /** n-gram precisions 0..100 (n = 1..4). */
  precisions: number[];
  bp: number;
  ratio: number;
  hypLen: number;
  refLen: number;
  counts: number[];
  totals: number[];
}

/**
 * Corpus BLEU. `refs` is sacreBLEU's layout: one array per reference set, each with one line per
 * hypothesis; '' marks a missing reference (variable number of references).
 */
export function corpusBleu(hyps: string[], refs: string[][], maxN = 4): BleuResult {
  for (const set of refs) {
    if (set.length !== hyps.length) throw new Error(`corpusBleu: a reference set has ${set.length} lines for ${hyps.length} hypotheses.`);
  }
  const counts = new Array<number>(maxN).fill(0), totals = new Array<number>(maxN).fill(0);
  let hypLen = 0, refLen = 0;
  hyps.forEach((hyp, i) => {
    const h = tokenize13a(hyp);
    const rs = refs.map((set) => set[i]!).filter((r) => r !== '').map(tokenize13a);
    if (rs.length === 0) throw new Error(`corpusBleu: hypothesis ${i} has no reference.`);
    // closest reference length; on a tie the shorter one
    let closest = rs[0]!.length, diff = Math.abs(h.length - closest);
    for (const r of rs) {
      const d = Math.abs(h.length - r.length);
      if (d < diff || (d === diff && r.length < closest)) { closest = r.length; diff = d; }
    }
    hypLen += h.length;
    refLen += closest;
    const maxRef: Map<string, number>[] = Array.from({ length: maxN }, () => new Map());
    for (const r of rs) {
      ngramCounts(r, maxN).forEach((m, n) => { for (const [k, c] of m) maxRef[n]!.set(k, Math.max(maxRef[n]!.get(k) ?? 0, c)); });
    }
    ngramCounts(h, maxN).forEach((m, n) => {
      for (const [k, c] of m) counts[n]! += Math.min(c, maxRef[n]!.get(k) ?? 0);
      totals[n]! += Math.max(0, h.length - n);
    });
  });
  const precisions = new Array<number>(maxN).fill(0);
  // no match at all: 0 (sacreBLEU stops early here, its issue #141, instead of smoothing everything)
  if (counts.every((c) => c === 0)) return { score: 0, precisions, bp: 0, ratio: refLen === 0 ? 0 : hypLen / refLen, hypLen, refLen, counts, totals };
  let smooth = 1;
  for (let n = 0; n < maxN; n++) {
    if (totals[n] === 0) break;
    if (counts[n] === 0) {
      smooth *= 2; // 'exp' smoothing: 1 / 2^k for the k-th order without a match
      precisions[n] = 100 / (smooth * totals[n]!);
    } else {
      precisions[n] = (100 * counts[n]!) / totals[n]!;
    }
  }
  const bp = hypLen === 0 ? 0 : hypLen < refLen ? Math.exp(1 - refLen / hypLen) : 1;
  const score = precisions.every((p) => p > 0) ? bp * Math.exp(precisions.reduce((a, p) => a + Math.log(p), 0) / maxN) : 0;
  return { score, precisions, bp, ratio: refLen === 0 ? 0 : hypLen / refLen, hypLen, refLen, counts, totals };
}

/** rouge-score's tokenizer (no stemming). */
export function tokenizeRouge(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, ' ').split(' ').filter((t) => t.length > 0);
}

export interface RougeScore { precision: number; recall: number; fmeasure: number }

function lcsLength(a: string[], b: string[]): number {
  // one row of the DP table at a time: O(|a|·|b|) time, O(|b|) memory
  let prev = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const cur = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    prev = cur;
  }
  return prev[b.length]!;
}

/** ROUGE-L of one prediction against its target (reference), as rouge-score's `score(target, prediction)`. */
export function rougeL(target: string, prediction: string): RougeScore {
  const t = tokenizeRouge(target), p = tokenizeRouge(prediction);
  if (t.length === 0 || p.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const l = lcsLength(t, p);
  const precision = l / p.length, recall = l / t.length;
  return { precision, recall, fmeasure: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0 };
}

/** Mean ROUGE-L over pairs (what rouge-score users report without bootstrap). */
export function meanRougeL(targets: string[], predictions: string[]): RougeScore {
  if (targets.length !== predictions.length) throw new Error(`meanRougeL: ${targets.length} targets for ${predictions.length} predictions.`);
  const n = Math.max(1, targets.length);
  const acc = { precision: 0, recall: 0, fmeasure: 0 };
  targets.forEach((t, i) => {
    const s = rougeL(t, predictions[i]!);
    acc.precision += s.precision; acc.recall += s.recall; acc.fmeasure += s.fmeasure;
  });
  return { precision: acc.precision / n, recall: acc.recall / n, fmeasure: acc.fmeasure / n };
}
