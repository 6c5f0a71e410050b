import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lintTemplate, specialTokensInSource } from '../../../src-main/templates/lint';
import { loadBuiltin, loadTemplateFromFolder, type ChatTemplate } from '../../../src-main/templates/load';
import { loadTemplateTokenizer } from '../../../src-main/templates/tokenizer';
import { conversation, NOW, ORACLE, TOKENIZERS } from './fixtures';

const tok = (fam: string) => loadTemplateTokenizer(join(TOKENIZERS, fam));
const inline = (source: string, specialTokens: Record<string, string> = { eos_token: '<|im_end|>' }): ChatTemplate => ({ source, origin: 'test', specialTokens });
const codes = (issues: Array<{ code: string; severity: string }>) => issues.map((i) => `${i.severity}:${i.code}`);

describe('template linter', () => {
  it('finds nothing wrong with a matching template and tokenizer', async () => {
    const dir = join(TOKENIZERS, 'chatml');
    expect(await lintTemplate(loadTemplateFromFolder(dir), tok('chatml'), undefined, { now: NOW })).toEqual([]);
  });

  it('flags replies that never end with an end-of-turn token', async () => {
    const t = inline("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}\n{% endfor %}");
    const issues = await lintTemplate(t, tok('chatml'));
    const i = issues.find((x) => x.code === 'no-end-of-turn')!;
    expect(i.severity).toBe('error');
    expect(i.message).toMatch(/never learns to stop/);
    expect(i.fix).toMatch(/eos_token/);
  });

  it('flags BOS written by the template and added by the tokenizer', async () => {
    const issues = await lintTemplate(loadTemplateFromFolder(join(TOKENIZERS, 'llama3')), tok('llama3'), undefined, { now: NOW });
    expect(codes(issues)).toEqual(['warning:bos-doubled']);
  });

  it('flags a BOS the tokenizer expects but the template leaves out', async () => {
    expect(codes(await lintTemplate(loadBuiltin('zephyr'), tok('llama2')))).toContain('info:bos-missing');
  });

  it('flags template tokens missing from the vocab, as an error for the stop token', async () => {
    const issues = await lintTemplate(loadBuiltin('chatml'), tok('llama3'));
    const missing = issues.filter((i) => i.code === 'special-not-in-vocab');
    expect(missing.map((i) => [i.severity, i.message.match(/"(<[^"]+>)"/)![1]])).toEqual([
      ['warning', '<|im_start|>'],
      ['error', '<|im_end|>'],
    ]);
  });

  it('says when replies end with a token other than eos_token', async () => {
    const issues = await lintTemplate(loadTemplateFromFolder(join(TOKENIZERS, 'gemma')), tok('gemma'));
    const i = issues.find((x) => x.code === 'eos-differs')!;
    expect(i.message).toContain('<end_of_turn>');
  });

  it('shows the message of a template that refuses roles', async () => {
    const issues = await lintTemplate(loadBuiltin('gemma'), undefined, conversation('bad_roles'));
    expect(issues).toEqual([expect.objectContaining({ code: 'role-rejected', severity: 'error', message: 'The template refuses this conversation: "Conversation roles must alternate user/assistant/user/assistant/...".' })]);
    const noSystem = inline("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}");
    const sys = (await lintTemplate(noSystem, undefined, conversation('single'))).find((i) => i.code === 'role-rejected')!;
    expect(sys.severity).toBe('warning');
    expect(sys.message).toContain('System role not supported');
  });

  it('flags a generation prompt that differs from the training layout', async () => {
    const issues = await lintTemplate(loadBuiltin('mistral'), undefined, conversation('system_multi'));
    expect(codes(issues)).toContain('warning:generation-prompt-mismatch');
    const chatmlLike = inline("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}");
    const i = (await lintTemplate(chatmlLike, undefined, conversation('single'))).find((x) => x.code === 'generation-prompt-mismatch')!;
    expect(i.message).toContain('reads " " where training shows "\\nHi there');
  });

  it('flags blank lines between turns', async () => {
    const t = inline("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\n{% endfor %}");
    expect(codes(await lintTemplate(t))).toContain('warning:stray-whitespace');
    const leading = inline("\n{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}");
    expect((await lintTemplate(leading)).find((i) => i.code === 'stray-whitespace')!.message).toMatch(/starts with whitespace/);
  });

  it('warns about replies it cannot place instead of training them wrongly', async () => {
    // No end-of-turn token anywhere and a suffix only printed at the very end: nothing to anchor the reply's end on.
    const t = inline("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if not add_generation_prompt %}END{% endif %}");
    const issues = await lintTemplate(t, undefined, conversation('system_multi'));
    expect(issues.filter((i) => i.code === 'unlocated-turn').map((i) => i.message_index)).toEqual([2]);
    // The Qwen 3 style template (thinking removed from old replies) is placed fine.
    const qwen3 = inline(readFileSync(join(ORACLE, 'extra', 'qwen3.jinja'), 'utf8'));
    expect((await lintTemplate(qwen3, undefined, conversation('thinking'))).map((i) => i.code)).not.toContain('unlocated-turn');
  });

  it('notes (not errors) GLM-4 replies that end at the next role tag and reasoning templates\' <think> prompt', async () => {
    const glm = { source: readFileSync(join(ORACLE, 'extra', 'glm4.jinja'), 'utf8'), origin: 'glm4', specialTokens: { eos_token: '<|endoftext|>' } };
    const g = await lintTemplate(glm, undefined, undefined, { now: NOW });
    expect(g.filter((i) => i.severity === 'error')).toEqual([]);
    expect(g.find((i) => i.code === 'no-end-of-turn')!.message).toMatch(/next role tag "<\|user\|>" ends it and is trained/);
    const qwq = { source: readFileSync(join(ORACLE, 'extra', 'qwq.jinja'), 'utf8'), origin: 'qwq', specialTokens: { eos_token: '<|im_end|>' } };
    const q = await lintTemplate(qwq, undefined, undefined, { now: NOW });
    expect(q).toEqual([expect.objectContaining({ code: 'generation-prompt-mismatch', severity: 'info' })]);
  });

  it('reports syntax errors', async () => {
    expect(codes(await lintTemplate(inline('{% for %}')))).toEqual(['error:template-error']);
  });

  it('finds special-token-like strings in template sources', () => {
    expect(specialTokensInSource("{{ '<|im_start|>' + x }}[INST] {{ bos_token }}<s> <not a token>").sort()).toEqual(['<s>', '<|im_start|>', '[INST]']);
  });
});
