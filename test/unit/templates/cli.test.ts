import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands } from '../../../src-main/cli/commands/template';
import { parseArgs } from '../../../src-main/cli/args';
import { NOW, TOKENIZERS } from './fixtures';

async function run(argv: string[]): Promise<{ result: unknown; out: string[] }> {
  const { positional, flags } = parseArgs(argv);
  const cmd = commands.find((c) => c.path.every((p, i) => positional[i] === p))!;
  const out: string[] = [];
  const result = await cmd.run({
    args: positional.slice(cmd.path.length), flags, json: flags.json === true,
    out: (s) => out.push(s), err: (s) => out.push(s), signal: new AbortController().signal,
  });
  return { result, out };
}

const dir = mkdtempSync(join(tmpdir(), 'lathe-cli-'));
const convPath = join(dir, 'chat.json');
writeFileSync(convPath, JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }], enable_thinking: false }));

describe('lathe template', () => {
  it('list', async () => {
    const { result } = await run(['template', 'list', '--json']);
    expect((result as Array<{ name: string }>).map((b) => b.name)).toContain('llama3');
  });

  it('render --builtin with the generation prompt', async () => {
    const { result, out } = await run(['template', 'render', convPath, '--builtin', 'chatml', '--generation-prompt']);
    expect((result as { text: string }).text).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>assistant\n');
    expect(out.join('\n')).toContain('<|im_start|>assistant\nHello');
  });

  it('render passes extra keys of the conversation file as template arguments', async () => {
    const { result } = await run(['template', 'render', convPath, '--builtin', 'smollm3', '--now', NOW.toISOString(), '--json']);
    expect((result as { text: string }).text).toContain('Reasoning Mode: /no_think');
    expect((result as { text: string }).text).toContain('Today Date: 05 March 2026');
  });

  it('inspect --model with a comparison', async () => {
    const { result } = await run(['template', 'inspect', convPath, '--model', join(TOKENIZERS, 'chatml'), '--compare-builtin', 'qwen2.5', '--json']);
    const r = result as { counts: { trained: number }; tokens: Array<{ token: string; train: number }>; diff: { identical: boolean } };
    const trained = r.tokens.filter((t) => t.train).map((t) => t.token);
    expect(trained.pop()).toBe('<|im_end|>');
    expect(trained.join('')).toBe('Hello');
    expect(r.counts.trained).toBe(trained.length + 1);
    expect(r.diff.identical).toBe(false);
  });

  it('lint with a tokenizer', async () => {
    const { result, out } = await run(['template', 'lint', '--builtin', 'chatml', '--tokenizer', join(TOKENIZERS, 'llama3')]);
    expect((result as { errors: number }).errors).toBe(1);
    expect(out.join('\n')).toMatch(/ERROR \[special-not-in-vocab\].*\n {2}Fix:/);
  });

  it('render --template FILE takes special tokens from --tokenizer', async () => {
    const tpl = join(dir, 'mine.jinja');
    writeFileSync(tpl, "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}");
    const { result } = await run(['template', 'render', convPath, '--template', tpl, '--tokenizer', join(TOKENIZERS, 'llama2'), '--json']);
    expect((result as { text: string }).text).toBe('<s>Hi</s>Hello</s>');
  });

  it('explains a missing template source', async () => {
    await expect(run(['template', 'render', convPath])).rejects.toThrow(/exactly one of --model DIR, --template FILE or --builtin NAME/);
  });
});
