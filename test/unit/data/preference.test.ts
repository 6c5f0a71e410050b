import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseHhText, toPreferencePair } from '../../../src-main/data/preference/formats';
import { prepareCorpus } from '../../../src-main/data/prepare';
import { openDataset } from '../../../src-main/data/pack/dataset';
import { loadTokenizerDir } from '../../../src-main/data/tokenize';
import { chatRendererForModel } from '../../../src-main/templates/for-model';
import type { ChatRenderer } from '../../../src-main/data/types';
import { UserError } from '../../../src-main/util/progress';
import { tmp } from './helpers';

const TINY = join(import.meta.dirname, '../../../resources/models/tiny-default');

describe('preference record formats', () => {
  it('reads TRL standard, TRL conversational, UltraFeedback and HH-RLHF into the same pair', () => {
    const want = { prompt: [{ role: 'user', content: 'Which gouge?' }], chosen: 'A bowl gouge.', rejected: 'A chisel.' };
    expect(toPreferencePair({ prompt: 'Which gouge?', chosen: 'A bowl gouge.', rejected: 'A chisel.' })).toEqual({ format: 'trl-standard', ...want });
    expect(toPreferencePair({
      prompt: [{ role: 'user', content: 'Which gouge?' }],
      chosen: [{ role: 'assistant', content: 'A bowl gouge.' }], rejected: [{ role: 'assistant', content: 'A chisel.' }],
    })).toEqual({ format: 'trl-conversational', ...want });
    expect(toPreferencePair({
      prompt: 'Which gouge?', prompt_id: 'x', score_chosen: 8, score_rejected: 3,
      chosen: [{ role: 'user', content: 'Which gouge?' }, { role: 'assistant', content: 'A bowl gouge.' }],
      rejected: [{ role: 'user', content: 'Which gouge?' }, { role: 'assistant', content: 'A chisel.' }],
    })).toEqual({ format: 'ultrafeedback', ...want });
    expect(toPreferencePair({ chosen: '\n\nHuman: Which gouge?\n\nAssistant: A bowl gouge.', rejected: '\n\nHuman: Which gouge?\n\nAssistant: A chisel.' }))
      .toEqual({ format: 'hh-rlhf', ...want });
  });

  it('finds the shared prompt of multi-turn HH-RLHF conversations', () => {
    const pre = '\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Best wood for bowls?';
    const p = toPreferencePair({ chosen: `${pre}\n\nAssistant: Maple or cherry.`, rejected: `${pre}\n\nAssistant: Plywood.` });
    expect(p).toEqual({
      format: 'hh-rlhf', chosen: 'Maple or cherry.', rejected: 'Plywood.',
      prompt: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello! How can I help?' }, { role: 'user', content: 'Best wood for bowls?' }],
    });
    expect(parseHhText('no turns here')).toBeNull();
  });

  it('says why a record is not a usable pair', () => {
    expect(toPreferencePair({ prompt: 'q', chosen: 'same', rejected: 'same' })).toMatchObject({ kind: 'identical' });
    expect(toPreferencePair({ prompt: 'q', chosen: '  ', rejected: 'x' })).toMatchObject({ kind: 'empty', error: expect.stringMatching(/chosen reply is empty/) });
    expect(toPreferencePair({ prompt: 'q', chosen: 'a' })).toMatchObject({ kind: 'shape', error: expect.stringMatching(/expected "chosen" and "rejected"/) });
    expect(toPreferencePair({ chosen: 'a', rejected: 'b' })).toMatchObject({ kind: 'shape', error: expect.stringMatching(/HH-RLHF/) });
    expect(toPreferencePair({ prompt: '', chosen: 'a', rejected: 'b' })).toMatchObject({ kind: 'prompt' });
    expect(toPreferencePair({ chosen: '\n\nHuman: a\n\nAssistant: b', rejected: '\n\nHuman: c\n\nAssistant: b' })).toMatchObject({ kind: 'shape', error: expect.stringMatching(/differ from message 1/) });
    expect(toPreferencePair({ prompt: 'q', chosen: [{ role: 'robot', content: 'x' }], rejected: [] })).toMatchObject({ kind: 'shape', error: expect.stringMatching(/chosen\[0\]\.role/) });
    expect(toPreferencePair([1, 2])).toMatchObject({ kind: 'shape' });
  });
});

describe('prepareCorpus (preference)', () => {
  it('renders both sides through the chat template, masks the reply only, truncates prompt-first, reports bad records by line', async () => {
    const root = tmp();
    const tok = await loadTokenizerDir(TINY);
    const { renderer } = chatRendererForModel(TINY, tok);
    const f = join(root, 'pairs.jsonl');
    const longPrompt = 'Tell me about lathes. '.repeat(40);
    const lines = [
      JSON.stringify({ prompt: 'Which gouge for a bowl?', chosen: 'A bowl gouge.', rejected: 'A hammer.' }),
      '{"prompt": broken',
      JSON.stringify({ prompt: 'q', chosen: 'same', rejected: 'same' }),
      JSON.stringify({ prompt: 'q', chosen: '', rejected: 'x' }),
      JSON.stringify({ chosen: '\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Speed?\n\nAssistant: 600 rpm to start.', rejected: '\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Speed?\n\nAssistant: Full speed.' }),
      JSON.stringify({ prompt: longPrompt, chosen: 'Short answer.', rejected: 'Another answer.' }),
      JSON.stringify({ prompt: 'Which gouge for a bowl?', chosen: 'A bowl gouge.', rejected: 'A hammer.' }),
    ];
    writeFileSync(f, lines.join('\n'));
    const out = join(root, 'o');
    const T = 64;
    const report = await prepareCorpus({ mode: 'preference', inputs: [f], out, tokenizer: tok, renderer, blockSize: T, valFraction: 0 });
    const p = report.preference!;
    expect(p.pairs).toBe(3);
    expect(p.formats).toEqual({ 'trl-standard': 2, 'hh-rlhf': 1 });
    expect(p.skipped).toEqual({ shape: 0, identical: 1, empty: 1, prompt: 0, template: 0, duplicate: 1 });
    expect(p.promptTruncated).toBe(1);
    expect(p.completionTruncated).toBe(0);
    const bad = report.corpora.domain.import.badLines.map((b) => [b.line, b.error]);
    expect(bad).toEqual([
      [2, expect.stringMatching(/not valid JSON/)], [3, expect.stringMatching(/identical/)], [4, expect.stringMatching(/empty/)], [7, expect.stringMatching(/same pair/)],
    ]);
    const step = report.corpora.domain.filters[0]!;
    expect(step).toMatchObject({ name: 'pairs', docsIn: 6, docsOut: 3, removed: 3, reasons: { identical: 1, empty: 1, duplicate: 1 } });
    expect(step.examples.map((e) => e.source)).toEqual([`${f}:2`, `${f}:3`, `${f}:4`, `${f}:7`]);
    const ds = openDataset(out);
    expect(ds.manifest.kind).toBe('preference');
    const r = ds.split('train');
    expect(r.rows).toBe(6); // chosen, rejected per pair
    // each row's loss tokens are the reply's tokens (plus the template's end-of-turn); the prompt has none
    const enc = async (t: string) => Array.from((await tok.encodeBatch([t]))[0]!);
    const lossIds: number[][] = [];
    for (let i = 0; i < r.rows; i++) {
      const row = r.sftRow(i);
      lossIds.push(Array.from(row.ids).filter((_, t) => row.mask[t]));
      expect(row.mask.indexOf(1)).toBeGreaterThan(0);
      expect(row.mask.lastIndexOf(1) - row.mask.indexOf(1) + 1).toBe(lossIds[i]!.length); // one run
    }
    const startsWith = (a: number[], b: number[]) => b.every((x, i) => a[i] === x);
    expect(startsWith(lossIds[0]!, await enc('A bowl gouge.'))).toBe(true);
    expect(startsWith(lossIds[1]!, await enc('A hammer.'))).toBe(true);
    expect(startsWith(lossIds[2]!, await enc('600 rpm to start.'))).toBe(true); // not the earlier "Hello." turn
    expect(startsWith(lossIds[3]!, await enc('Full speed.'))).toBe(true);
    expect(startsWith(lossIds[4]!, await enc('Short answer.'))).toBe(true);
    expect(lossIds[0]!.length - (await enc('A bowl gouge.')).length).toBeLessThanOrEqual(2); // + end of turn
    // the long pair: both rows full, the reply kept whole
    const long = r.sftRow(4);
    expect(Array.from(long.segments).every((s) => s === 1)).toBe(true);
    r.close();
  });

  it('stops before training when the template cannot separate prompt from reply', async () => {
    const root = tmp();
    const tok = await loadTokenizerDir(TINY);
    const noMask: ChatRenderer = async (messages) => {
      const ids = (await tok.encodeBatch([messages.map((m) => m.content).join('\n')]))[0]!;
      return { ids, mask: new Uint8Array(ids.length) };
    };
    const f = join(root, 'pairs.jsonl');
    writeFileSync(f, [JSON.stringify({ prompt: 'a', chosen: 'b', rejected: 'c' }), JSON.stringify({ prompt: 'd', chosen: 'e', rejected: 'f' })].join('\n'));
    const err = await prepareCorpus({ mode: 'preference', inputs: [f], out: join(root, 'o'), tokenizer: tok, renderer: noMask, blockSize: 64, valFraction: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('data.preferenceTemplate');
    expect((err as UserError).message).toMatch(/cannot separate the prompt from the reply \(first at .*pairs\.jsonl:1\)/);
  });

  it('names the problems when no pair is usable', async () => {
    const root = tmp();
    const tok = await loadTokenizerDir(TINY);
    const f = join(root, 'pairs.jsonl');
    writeFileSync(f, [JSON.stringify({ prompt: 'q', chosen: 'x', rejected: 'x' }), JSON.stringify({ text: 'plain' })].join('\n'));
    const err = await prepareCorpus({ mode: 'preference', inputs: [f], out: join(root, 'o'), tokenizer: tok, renderer: chatRendererForModel(TINY, tok).renderer, blockSize: 64, valFraction: 0 }).catch((e: unknown) => e);
    expect((err as UserError).code).toBe('data.empty');
    expect((err as UserError).message).toMatch(/1 not a preference pair, 1 chosen = rejected; first: .*pairs\.jsonl:1 chosen and rejected are identical/);
  });
});
