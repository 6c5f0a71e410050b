import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands } from '../../../src-main/cli/commands/tokenizer';
import type { CliContext } from '../../../src-main/cli/types';
import type { TokenizerComparison } from '../../../src-main/tokenizer/compare';
import type { ExtendServiceResult } from '../../../src-main/tokenizer/service';
import type { TrainResult } from '../../../src-main/tokenizer/train';
import { LatheTokenizer } from '../../../src-main/tokenizer/tokenizer';
import { UserError } from '../../../src-main/util/progress';
import { ORACLE, fixtureDir, jsTokenizer, readJson } from './helpers';

function run(path: string, args: string[], flags: CliContext['flags'], json = true) {
  const cmd = commands.find((c) => c.path.join(' ') === `tokenizer ${path}`)!;
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = { args, flags, json, out: (t) => out.push(t), err: (t) => err.push(t), signal: new AbortController().signal };
  return cmd.run(ctx).then((result) => ({ result, out, err }));
}

describe('lathe tokenizer train | extend | compare | inspect', () => {
  it('runs the whole flow on files, with --json results and human output', async () => {
    const work = mkdtempSync(join(tmpdir(), 'lathe-tok-cli-'));
    const cands = join(work, 'candidates.json');
    const trained = await run('train', [], { base: fixtureDir('llama2'), corpus: join(ORACLE, 'corpus', 'domain-train.txt'), out: cands, max: '200' });
    const t = trained.result as TrainResult;
    expect(t.candidates.length).toBe(200);
    expect(t.corpus.texts).toBeGreaterThan(0);
    expect((readJson(cands) as TrainResult).candidates[0]).toEqual(t.candidates[0]);
    expect(trained.err.some((l) => l.includes('Learning domain tokens'))).toBe(true);

    const outDir = join(work, 'extended');
    const ext = (await run('extend', [], { base: fixtureDir('llama2'), candidates: cands, top: '150', out: outDir })).result as ExtendServiceResult;
    expect(ext.manifest.newTokens.length).toBe(150);
    const tok = LatheTokenizer.fromDir(outDir);
    expect(tok.vocabSize).toBe(ext.manifest.newVocabSize);
    const js = jsTokenizer(readJson(join(outDir, 'tokenizer.json')), readJson(join(outDir, 'tokenizer_config.json')));
    expect(js.encode('the tailstock quill').ids).toEqual((await tok.encode('the tailstock quill')).ids);

    const cmp = (await run('compare', [], { base: fixtureDir('llama2'), extended: outDir,
      domain: join(ORACLE, 'corpus', 'domain-heldout.txt'), general: join(ORACLE, 'corpus', 'general-heldout.txt') })).result as TokenizerComparison;
    expect(cmp.domain.after.tokens).toBeLessThan(cmp.domain.before.tokens);
    expect(cmp.general.before.texts).toBeGreaterThan(0);

    const human = await run('compare', [], { base: fixtureDir('llama2'), extended: outDir, domain: join(ORACLE, 'corpus', 'domain-heldout.txt') }, false);
    expect(human.result).toBeUndefined();
    expect(human.out.join('\n')).toMatch(/Domain \(\d+ texts, \d+ words\): tokens \d+ -> \d+ \(-/);

    const ins = (await run('inspect', [outDir], { text: 'spindle' })).result as { kind: string; vocabSize: number; encoding: { tokens: string[] } };
    expect(ins.kind).toBe('byte-fallback');
    expect(ins.encoding.tokens).toEqual(['<s>', '▁spindle']);
  });

  it('reads JSONL corpora through the data importers and reports clear errors', async () => {
    const work = mkdtempSync(join(tmpdir(), 'lathe-tok-cli-'));
    const jsonl = join(work, 'c.jsonl');
    writeFileSync(jsonl, ['{"text": "The headstock spindle turns the chuck."}', '{"text": "Tighten the tailstock before turning the spindle."}'].join('\n') + '\n');
    const r = (await run('train', [], { base: fixtureDir('gpt2'), corpus: jsonl, max: '5' })).result as TrainResult;
    expect(r.corpus.texts).toBe(2);
    const fails = async (p: Promise<unknown>) => { try { await p; } catch (e) { return e as UserError; } throw new Error('expected failure'); };
    expect((await fails(run('extend', [], { base: fixtureDir('gpt2'), candidates: jsonl, out: work }))).code).toBe('cli.missing');
    expect((await fails(run('extend', [], { base: fixtureDir('gpt2'), candidates: join(work, 'none.json'), top: '3', out: work }))).code).toBe('tokenizer-no-candidates');
    const empty = join(work, 'empty.txt');
    writeFileSync(empty, '');
    expect((await fails(run('train', [], { base: fixtureDir('gpt2'), corpus: empty }))).code).toMatch(/empty/);
  });
});
