import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listBuiltins, loadBuiltin, loadTemplateFile, loadTemplateFromFolder, selectTemplate, specialTokenString } from '../../../src-main/templates/load';
import { compileTemplate } from '../../../src-main/templates/render';
import { UserError } from '../../../src-main/util/progress';
import { TOKENIZERS } from './fixtures';

describe('loading chat templates', () => {
  it('picks default from a named list, tool_use when tools are given', () => {
    const dir = join(TOKENIZERS, 'chatml');
    const plain = loadTemplateFromFolder(dir);
    const tools = loadTemplateFromFolder(dir, { hasTools: true });
    expect(plain.origin).toBe('tokenizer_config.json (default)');
    expect(tools.origin).toBe('tokenizer_config.json (tool_use)');
    expect(tools.source).toContain('<tools>');
    expect(plain.specialTokens).toEqual({ eos_token: '<|im_end|>', pad_token: '<|endoftext|>' });
    expect(() => loadTemplateFromFolder(dir, { name: 'nope' })).toThrow(/"default", "tool_use", not "nope"/);
  });

  it('reads special tokens given as AddedToken dicts', () => {
    const t = loadTemplateFromFolder(join(TOKENIZERS, 'llama2'));
    expect(t.specialTokens.bos_token).toBe('<s>');
    expect(specialTokenString({ __type: 'AddedToken', content: '<bos>' })).toBe('<bos>');
    expect(specialTokenString(null)).toBeUndefined();
  });

  it('prefers chat_template.jinja', () => {
    const t = loadTemplateFromFolder(join(TOKENIZERS, 'phi3'));
    expect(t.origin).toBe('chat_template.jinja');
    expect(t.specialTokens.eos_token).toBe('<|endoftext|>');
  });

  it('explains a base model without a template', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-tpl-'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
    try {
      loadTemplateFromFolder(dir);
      throw new Error('should have thrown');
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).hint).toMatch(/built-in/);
    }
  });

  it('uses additional_chat_templates/ for named templates', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-tpl-'));
    writeFileSync(join(dir, 'chat_template.jinja'), 'main');
    mkdirSync(join(dir, 'additional_chat_templates'));
    writeFileSync(join(dir, 'additional_chat_templates', 'tool_use.jinja'), 'tools');
    expect(loadTemplateFromFolder(dir).source).toBe('main');
    expect(loadTemplateFromFolder(dir, { hasTools: true }).source).toBe('tools');
    expect(loadTemplateFromFolder(dir, { name: 'tool_use' }).source).toBe('tools');
  });

  it('loads a .jinja file or a tokenizer_config.json', () => {
    const t = loadTemplateFile(join(TOKENIZERS, 'llama3', 'tokenizer_config.json'));
    expect(t.specialTokens.bos_token).toBe('<|begin_of_text|>');
    expect(t.source).toContain('<|start_header_id|>');
    expect(selectTemplate('x').source).toBe('x');
  });

  it('lists and loads every built-in, each of which compiles and renders a chat', () => {
    const all = listBuiltins();
    expect(all.map((b) => b.name).sort()).toEqual(['alpaca', 'chatml', 'gemma', 'llama2', 'llama3', 'mistral', 'phi3', 'qwen2.5', 'smollm3', 'zephyr']);
    for (const meta of all) {
      const t = loadBuiltin(meta.name);
      expect(t.builtin?.endOfTurn).toBeTruthy();
      const text = compileTemplate(t.source).render({
        messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }],
        specialTokens: t.specialTokens,
      }).text;
      expect(text, meta.name).toContain('Hello' + (meta.name === 'llama2' ? ' ' : '') + meta.endOfTurn);
      const gen = compileTemplate(t.source).render({ messages: [{ role: 'user', content: 'Hi' }], specialTokens: t.specialTokens, addGenerationPrompt: true, now: new Date(0) }).text;
      expect(gen.endsWith(meta.generationPrompt), meta.name).toBe(true);
    }
    expect(loadBuiltin('Qwen2.5').builtin?.name).toBe('qwen2.5');
    expect(() => loadBuiltin('vicuna')).toThrow(/no built-in template called "vicuna"/);
  });
});
