import { describe, expect, it } from 'vitest';
import { compareTokenizers } from '../../../src-main/tokenizer/compare';
import { extendTokenizer } from '../../../src-main/tokenizer/extend';
import { LatheTokenizer } from '../../../src-main/tokenizer/tokenizer';
import { trainDomainCandidates } from '../../../src-main/tokenizer/train';
import { corpus, fixtureDir } from './helpers';

describe('compareTokenizers', () => {
  it('measures fewer tokens on held-out domain text and almost no change on general text', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('llama3'));
    const train = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 100 });
    const ext = extendTokenizer(base, train, { topN: 100 });
    const domainTexts = corpus('domain-heldout');
    const generalTexts = corpus('general-heldout');
    const c = await compareTokenizers(base, ext.tokenizer, { domainTexts, generalTexts });

    expect(c.vocabBefore).toBe(base.vocabSize);
    expect(c.vocabAfter).toBe(base.vocabSize + 100);
    // The numbers are the real encodings' numbers.
    const count = async (t: LatheTokenizer, xs: string[]) => (await t.countTokens(xs)).reduce((a, b) => a + b, 0);
    expect(c.domain.before.tokens).toBe(await count(base, domainTexts));
    expect(c.domain.after.tokens).toBe(await count(ext.tokenizer, domainTexts));
    expect(c.domain.before.words).toBe(domainTexts.join(' ').split(/\s+/).length);
    expect(c.domain.before.bytesPerToken).toBeCloseTo(c.domain.before.bytes / c.domain.before.tokens, 12);
    expect(c.domain.after.tokensPerWord).toBeLessThan(c.domain.before.tokensPerWord);
    expect(c.domain.after.bytesPerToken).toBeGreaterThan(c.domain.before.bytesPerToken);
    expect(c.domain.tokenChangePct).toBeLessThan(-15);
    expect(Math.abs(c.general.tokenChangePct)).toBeLessThan(2);
    expect(c.domain.roundTripRegressions).toBe(0);
    expect(c.general.roundTripRegressions).toBe(0);
    expect(c.topNewTokens.length).toBe(20);
    expect(c.topNewTokens[0]!.count).toBeGreaterThanOrEqual(c.topNewTokens[1]!.count);
    expect(c.topNewTokens.every((t) => t.id >= base.vocabSize)).toBe(true);
    const used = new Set((await ext.tokenizer.encodeBatch(domainTexts, { addSpecialTokens: false })).flatMap((e) => e.ids.filter((id) => id >= base.vocabSize)));
    expect(c.newTokensUsed).toBe(used.size);
    expect(c.newTokensUsed).toBeGreaterThan(20);
    expect(c.newTokensUsed).toBeLessThanOrEqual(100);
  });
});
