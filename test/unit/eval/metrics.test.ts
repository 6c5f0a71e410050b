/**
 * BLEU and ROUGE-L against published reference values:
 * - sacreBLEU README (github.com/mjpost/sacrebleu, README.md, the BLEU/compatibility API examples):
 *   BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18) for two
 *   reference sets. (The README's "variable number of references" example, 29.44, is not used: it
 *   reports all 14 unigram matches although sentence 1 has no reference there; we could not reproduce it.)
 * - torchmetrics docs (lightning.ai/docs/torchmetrics, SacreBLEUScore / sacre_bleu_score docstring):
 *   preds ['the cat is on the mat'], targets ['there is a cat on the mat', 'a cat is on the mat'] -> 0.7598.
 * - rouge-score README (github.com/google-research/google-research, rouge/README.md):
 *   score('The quick brown fox jumps over the lazy dog', 'The quick brown dog jumps on the log.') ->
 *   rougeL Score(precision=0.625, recall=0.5555555555555556, fmeasure=0.5882352941176471)
 *   (that example uses the Porter stemmer; it changes no token that matters here: jumps/jump in both).
 */
import { describe, expect, it } from 'vitest';
import { corpusBleu, meanRougeL, rougeL, tokenize13a } from '../../../src-main/eval/metrics';

const sys = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];

describe('corpus BLEU (sacreBLEU defaults)', () => {
  it('matches the sacreBLEU README example with two reference sets', () => {
    const refs = [
      ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
      ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
    ];
    const b = corpusBleu(sys, refs);
    expect(b.score.toFixed(2)).toBe('48.53');
    expect(b.precisions.map((p) => p.toFixed(1))).toEqual(['82.4', '50.0', '45.5', '37.5']);
    expect(b.bp.toFixed(3)).toBe('0.943');
    expect(b.ratio.toFixed(3)).toBe('0.944');
    expect([b.hypLen, b.refLen]).toEqual([17, 18]);
  });

  it('matches the torchmetrics sacre_bleu_score docstring example (0.7598)', () => {
    // refs in sacreBLEU's layout: one set per reference
    const b = corpusBleu(['the cat is on the mat'], [['there is a cat on the mat'], ['a cat is on the mat']]);
    expect((b.score / 100).toFixed(4)).toBe('0.7598');
  });

  it('is 100 for identical text, 0 when no n-gram matches, smoothed otherwise', () => {
    expect(corpusBleu(sys, [sys]).score).toBeCloseTo(100, 10);
    expect(corpusBleu(['a b c d'], [['w x y z']]).score).toBe(0);
    // 'exp' smoothing: unigrams match, no higher order does -> small but non-zero
    const s = corpusBleu(['a b c d e'], [['a x b y c']]);
    expect(s.score).toBeGreaterThan(0);
    expect(s.precisions[1]).toBeCloseTo(100 / (2 * 4), 12);
  });

  it('tokenizes like mteval-v13a', () => {
    expect(tokenize13a("It wasn't surprising.")).toEqual(['It', "wasn't", 'surprising', '.']);
    expect(tokenize13a('Costs 3.50, or 1,000 -- see (a)&quot;b&quot;')).toEqual(['Costs', '3.50', ',', 'or', '1,000', '--', 'see', '(', 'a', ')', '"', 'b', '"']);
    expect(tokenize13a('pages 10-12')).toEqual(['pages', '10', '-', '12']);
  });
});

describe('ROUGE-L (rouge-score)', () => {
  it('matches the rouge-score README example', () => {
    const s = rougeL('The quick brown fox jumps over the lazy dog', 'The quick brown dog jumps on the log.');
    expect(s.precision).toBeCloseTo(0.625, 12);
    expect(s.recall).toBeCloseTo(0.5555555555555556, 12);
    expect(s.fmeasure).toBeCloseTo(0.5882352941176471, 12);
  });

  it('handles empty texts and averages pairs', () => {
    expect(rougeL('', 'x').fmeasure).toBe(0);
    const m = meanRougeL(['a b', 'c d'], ['a b', 'x y']);
    expect(m.fmeasure).toBeCloseTo(0.5, 12);
  });
});
