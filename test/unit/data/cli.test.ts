import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands } from '../../../src-main/cli/commands/prepare';
import type { CliContext } from '../../../src-main/cli/types';
import type { PrepareReport } from '../../../src-main/data/prepare';
import { openDataset } from '../../../src-main/data/pack/dataset';
import { makeTokenizerDir, tmp } from './helpers';

const SAMPLE = join(import.meta.dirname, '../../../resources/corpus/sample');
const GENERAL = join(import.meta.dirname, '../../../resources/corpus/general');

function ctx(args: string[], flags: CliContext['flags'], json = true): CliContext & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [], stderr: string[] = [];
  return { args, flags, json, out: (s) => stdout.push(s), err: (s) => stderr.push(s), signal: new AbortController().signal, stdout, stderr };
}

describe('lathe prepare on the bundled sample corpora', () => {
  it('cleans, mixes and packs; every planted problem is found', async () => {
    const out = join(tmp(), 'ds');
    const tok = makeTokenizerDir(tmp());
    const c = ctx([SAMPLE], { general: GENERAL, out, tokenizer: tok, 'block-size': '512', ratio: '0.7', json: true });
    const r = (await commands[0]!.run(c)) as PrepareReport;
    const d = r.corpora.domain;
    const f = Object.fromEntries(d.filters.map((x) => [x.name, x]));
    expect(d.import.badLines).toEqual([{ path: join(SAMPLE, 'forum/posts.jsonl'), line: 13, error: expect.stringMatching(/not valid JSON/) }]);
    expect(f.exactDedup!.removed).toBe(4); // copy-of-*.md
    expect(f.nearDedup!.removed).toBe(5); // revised-*.md
    expect(f.boilerplate!.examples[0]!.excerpt).toMatch(/^Back to the workshop notes index/);
    expect(f.quality!.reasons).toEqual({ 'too short': 1, 'too many digits': 1, 'almost no ordinary function words': 1 });
    expect(d.pii).toMatchObject({ email: 3, phone: 3, ip: 1, iban: 1, creditCard: 1, secret: 1 });
    expect(d.languages.de).toBe(1);
    expect(r.mix!.achievedRatio).toBeCloseTo(0.7, 5);
    expect(c.stderr.some((l) => l.includes('Tokenizing and packing'))).toBe(true);
    expect(c.stdout).toEqual([]); // --json: the caller prints the returned value
    const ds = openDataset(out);
    expect(ds.manifest.blockSize).toBe(512);
    expect(ds.manifest.splits.train!.rows).toBeGreaterThan(100);
  });

  it('prints a human summary without --json, and a plain error for a missing --out', async () => {
    const c = ctx([SAMPLE], { out: join(tmp(), 'ds') }, false);
    await commands[0]!.run(c);
    expect(c.stdout.join('\n')).toMatch(/domain: \d+ files, \d+ documents in, \d+ kept/);
    expect(c.stdout.join('\n')).toMatch(/warning: No tokenizer given/);
    await expect(commands[0]!.run(ctx([SAMPLE], {}))).rejects.toThrow(/Missing --out DIR/);
  });

  it('prints what import skipped, repaired, split or guessed, by file and line, in plain words', async () => {
    const dir = tmp();
    const { writeFileSync } = await import('node:fs');
    const prose = 'The café on the corner sells a crème brûlée that is worth the walk, and the owner will tell you about the lathe he keeps in the back room for turning the bowls that the desserts are served in.';
    writeFileSync(join(dir, 'latin.txt'), Buffer.from(prose, 'latin1'));
    writeFileSync(join(dir, 'rows.csv'), `id;text\n1;${prose.replace('café', 'tea room')}\n2;"unclosed\n`);
    writeFileSync(join(dir, 'empty.txt'), '');
    const c = ctx([dir], { out: join(tmp(), 'ds') }, false);
    await commands[0]!.run(c);
    const out = c.stdout.join('\n');
    expect(out).toContain(`files skipped: 1\n    ${join(dir, 'empty.txt')}: empty file (0 characters)`);
    expect(out).toContain(`${join(dir, 'latin.txt')}: decoded as Windows-1252 (not UTF-8)`);
    expect(out).toContain(`${join(dir, 'rows.csv')}:1: columns are separated by semicolons (detected from the header), not commas`);
    expect(out).toMatch(/rows\.csv:3: a quote opened at line 3 is never closed/);
  });

  it('treats a path after --sft as an input, not as the flag value', async () => {
    const dir = tmp();
    const { writeFileSync } = await import('node:fs');
    const f = join(dir, 'chat.jsonl');
    writeFileSync(f, JSON.stringify({ messages: [{ role: 'user', content: 'Speed for a pen blank?' }, { role: 'assistant', content: 'About 2000 rpm.' }] }) + '\n');
    const c = ctx([], { sft: f, out: join(dir, 'o'), tokenizer: makeTokenizerDir(tmp()), 'block-size': '64' });
    const r = (await commands[0]!.run(c)) as PrepareReport;
    expect(r.mode).toBe('sft');
    expect(r.splits.train!.docs).toBe(1);
  });
});
