import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyTemplate, createChatRenderer } from '../../../src-main/templates/apply';
import { diffSequences, diffText } from '../../../src-main/templates/diff';
import { diffTemplates, inspectConversation } from '../../../src-main/templates/inspect';
import { loadBuiltin, loadTemplateFromFolder } from '../../../src-main/templates/load';
import { codePointToUtf16, loadTemplateTokenizer } from '../../../src-main/templates/tokenizer';
import type { ChatRenderer } from '../../../src-main/data/types';
import { conversation, NOW, TOKENIZERS } from './fixtures';

const chatmlDir = join(TOKENIZERS, 'chatml');

describe('tokenizer adapter', () => {
  it('gives UTF-16 offsets and flags special tokens', async () => {
    const tok = loadTemplateTokenizer(chatmlDir);
    const text = '<|im_start|>user\n🙂 hé<|im_end|>';
    const enc = await tok.encode(text, false);
    // Every token's offsets slice back to text that re-encodes to the same bytes.
    expect(enc.offsets[0]).toEqual([0, 12]);
    const im = tok.tokenToId('<|im_end|>')!;
    const last = enc.ids.length - 1;
    expect(enc.ids[last]).toBe(im);
    expect(text.slice(...enc.offsets[last]!)).toBe('<|im_end|>');
    expect(tok.isSpecial(im)).toBe(true);
    expect(tok.isSpecial(enc.ids[1]!)).toBe(false);
    const emoji = enc.offsets.filter(([s]) => s === text.indexOf('🙂'));
    expect(emoji.length).toBeGreaterThan(0);
    for (const [s, e] of emoji) expect(text.slice(s, e)).toBe('🙂');
    expect(codePointToUtf16('a🙂b')(2)).toBe(3);
  });

  it('reports the BOS the post-processor adds with empty offsets', async () => {
    const tok = loadTemplateTokenizer(join(TOKENIZERS, 'llama3'));
    const enc = await tok.encode('Hi', true);
    expect(enc.ids[0]).toBe(tok.bosId);
    expect(enc.offsets[0]).toEqual([0, 0]);
  });
});

describe('inspector', () => {
  it('shows tokens, trained tokens and the generation prompt', async () => {
    const tpl = loadTemplateFromFolder(chatmlDir);
    const tok = loadTemplateTokenizer(chatmlDir);
    const insp = await inspectConversation(tpl, conversation('repeated'), tok, { now: NOW });
    expect(insp.generationPrompt.marker).toBe('<|im_start|>assistant\n');
    expect(insp.generationPrompt.prompt.endsWith('<|im_start|>user\nOK<|im_end|>\n<|im_start|>assistant\n')).toBe(true);
    const trained = insp.tokens!.filter((t) => t.train);
    // Two replies "OK<|im_end|>": the text tokens and the end-of-turn token, nothing of the user's "OK".
    expect(trained.map((t) => insp.text.slice(t.start, t.end)).join('')).toBe('OK<|im_end|>OK<|im_end|>');
    expect(trained.filter((t) => t.special).map((t) => t.token)).toEqual(['<|im_end|>', '<|im_end|>']);
    expect(new Set(trained.map((t) => t.message))).toEqual(new Set([1, 3]));
    expect(insp.counts).toEqual({ tokens: insp.tokens!.length, trained: trained.length });
    // Offsets cover the text exactly, in order.
    let pos = 0;
    for (const t of insp.tokens!) {
      expect(t.start).toBeLessThanOrEqual(pos);
      pos = Math.max(pos, t.end);
    }
    expect(pos).toBe(insp.text.length);
  });

  it('diffs two templates by text and by tokens', async () => {
    const tok = loadTemplateTokenizer(chatmlDir);
    const d = await diffTemplates(loadBuiltin('chatml'), loadBuiltin('qwen2.5'), conversation('single'), tok);
    expect(d.identical).toBe(false);
    const inserted = d.text.filter((c) => c.op === 'insert').map((c) => c.text).join('');
    expect(inserted).toContain('You are Qwen');
    expect(d.text.filter((c) => c.op !== 'insert').map((c) => c.text).join('')).toBe(d.a.text);
    expect(d.text.filter((c) => c.op !== 'delete').map((c) => c.text).join('')).toBe(d.b.text);
    expect(d.tokens!.filter((c) => c.op === 'delete')).toEqual([]);
    expect(d.b.tokens! - d.a.tokens!).toBe(d.tokens!.filter((c) => c.op === 'insert').reduce((n, c) => n + c.ids.length, 0));
  });

  it('Myers diff is a shortest edit script (checked against LCS by dynamic programming)', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 200; trial++) {
      const a = Array.from({ length: Math.floor(rnd() * 30) }, () => Math.floor(rnd() * 4));
      const b = Array.from({ length: Math.floor(rnd() * 30) }, () => Math.floor(rnd() * 4));
      const dp = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
      for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) dp[i]![j] = a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
      const ops = diffSequences(a, b);
      const equal = ops.filter((o) => o.op === 'equal').reduce((n, o) => n + o.a[1] - o.a[0], 0);
      expect(equal, `seed trial ${trial}`).toBe(dp[0]![0]);
      const rebuiltA = ops.filter((o) => o.op !== 'insert').flatMap((o) => a.slice(o.a[0], o.a[1]));
      const rebuiltB = ops.filter((o) => o.op !== 'delete').flatMap((o) => (o.op === 'equal' ? a.slice(o.a[0], o.a[1]) : b.slice(o.b[0], o.b[1])));
      expect(rebuiltA).toEqual(a);
      expect(rebuiltB).toEqual(b);
    }
    expect(diffText('same', 'same')).toEqual([{ op: 'equal', text: 'same' }]);
  });
});

describe('applyTemplate for SFT', () => {
  it('returns ids equal to tokenizing the render, and a mask over replies + end-of-turn', async () => {
    const dir = join(TOKENIZERS, 'llama3');
    const tpl = loadTemplateFromFolder(dir);
    const tok = loadTemplateTokenizer(dir);
    const conv = conversation('system_multi');
    const r = await applyTemplate(conv, tpl, tok, { now: NOW });
    const insp = await inspectConversation(tpl, conv, tok, { now: NOW });
    expect(r.ids).toEqual(insp.tokens!.map((t) => t.id));
    expect(Array.from(r.mask)).toEqual(insp.tokens!.map((t) => t.train));
    // Exactly one BOS: the template's; the tokenizer adds none (add_special_tokens=False).
    expect(r.ids.filter((id) => id === tok.bosId).length).toBe(1);
    const eot = tok.tokenToId('<|eot_id|>')!;
    const trainedEot = r.ids.filter((id, i) => id === eot && r.mask[i]).length;
    expect(trainedEot).toBe(2);
    expect(r.truncated).toBe(false);
  });

  it('truncates on the right, or refuses', async () => {
    const tpl = loadTemplateFromFolder(chatmlDir);
    const tok = loadTemplateTokenizer(chatmlDir);
    const full = await applyTemplate(conversation('system_multi').messages, tpl, tok);
    const cut = await applyTemplate(conversation('system_multi').messages, tpl, tok, { maxLength: 20 });
    expect(cut.ids).toEqual(full.ids.slice(0, 20));
    expect(Array.from(cut.mask)).toEqual(Array.from(full.mask.slice(0, 20)));
    expect(cut.truncated).toBe(true);
    expect(cut.fullLength).toBe(full.ids.length);
    await expect(applyTemplate(conversation('system_multi').messages, tpl, tok, { maxLength: 20, truncation: 'error' })).rejects.toThrow(/more than the limit of 20/);
  });

  it('turns a template refusal into a UserError with the template message', async () => {
    const tok = loadTemplateTokenizer(join(TOKENIZERS, 'gemma'));
    await expect(applyTemplate(conversation('bad_roles').messages, loadBuiltin('gemma'), tok)).rejects.toThrow(/refused this conversation: Conversation roles must alternate/);
  });

  it('provides the data pipeline renderer (messages) => { ids, mask }', async () => {
    const tok = loadTemplateTokenizer(chatmlDir);
    // Typed as the data pipeline's interface: this line fails the typecheck if the two drift apart.
    const render: ChatRenderer = createChatRenderer(loadBuiltin('chatml'), tok);
    const out = await render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }]);
    expect(out.ids.length).toBe(out.mask.length);
    expect(out.mask).toBeInstanceOf(Uint8Array);
    const trained = Array.from(out.ids).filter((_, i) => out.mask[i]);
    expect(trained[trained.length - 1]).toBe(tok.tokenToId('<|im_end|>'));
  });
});

describe('src-main/tokenizer through fromLatheTokenizer', () => {
  it('gives the same ids, masks, offsets and special ids as the direct adapter', async () => {
    const { LatheTokenizer } = await import('../../../src-main/tokenizer/tokenizer');
    const { fromLatheTokenizer } = await import('../../../src-main/templates/tokenizer');
    const msgs = [{ role: 'system', content: 'Réponds 🙂' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello 👍' }];
    for (const fam of ['chatml', 'llama3', 'llama2', 'gemma', 'phi3']) {
      const dir = join(TOKENIZERS, fam);
      const a = fromLatheTokenizer(LatheTokenizer.fromDir(dir));
      const b = loadTemplateTokenizer(dir);
      const tpl = loadTemplateFromFolder(dir);
      const ra = await applyTemplate(msgs, tpl, a, { now: NOW });
      const rb = await applyTemplate(msgs, tpl, b, { now: NOW });
      expect(ra.ids, fam).toEqual(rb.ids);
      expect(Array.from(ra.mask), fam).toEqual(Array.from(rb.mask));
      expect((await a.encode('Hi 🙂', true)).offsets, fam).toEqual((await b.encode('Hi 🙂', true)).offsets);
      expect([a.bosId, a.eosId], fam).toEqual([b.bosId, b.eosId]);
    }
  });
});
