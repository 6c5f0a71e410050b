/** Ollama Modelfile: templates by family, stops, names, the create command, registration through a stand-in binary. */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHATML_TEMPLATE } from '../../../../src-main/engine/models/tiny-tokenizer';
import { findOllama, modelfileText, ollamaCreateCommand, ollamaName, ollamaTemplate, registerWithOllama } from '../../../../src-main/export/gguf/modelfile';

const LLAMA3 = "{{- bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}";

describe('Ollama Modelfile', () => {
  it('converts ChatML, Llama 3 and Llama 2 templates, falls back with a warning, and leaves base models raw', () => {
    const c = ollamaTemplate(CHATML_TEMPLATE, '<|im_end|>');
    expect(c.family).toBe('chatml');
    expect(c.template).toContain('<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>');
    expect(c.template!.endsWith('<|im_start|>assistant\n')).toBe(true);
    expect(c.stops).toEqual(['<|im_start|>', '<|im_end|>']);
    const l = ollamaTemplate(LLAMA3, '<|eot_id|>');
    expect(l.family).toBe('llama3');
    expect(l.stops).toContain('<|eot_id|>');
    expect(ollamaTemplate('[INST] {{ messages[0].content }} [/INST]', '</s>').family).toBe('llama2');
    const g = ollamaTemplate('{{ messages }}', '</s>');
    expect(g.family).toBe('generic');
    expect(g.warning).toMatch(/generic/);
    expect(g.stops).toEqual(['</s>']);
    const none = ollamaTemplate(null, '<|endoftext|>');
    expect(none.template).toBeNull();

    const mf = modelfileText('m-Q4_K_M.gguf', c);
    expect(mf.split('\n')[1]).toBe('FROM ./m-Q4_K_M.gguf');
    expect(mf).toContain('TEMPLATE """{{- range .Messages }}<|im_start|>');
    expect(mf).toContain('PARAMETER stop "<|im_end|>"');
    expect(modelfileText('m.gguf', none)).not.toContain('TEMPLATE');
  });

  it('names and the exact ollama create command', () => {
    expect(ollamaName('My Model (v2)')).toBe('my-model-v2');
    expect(ollamaName('???')).toBe('lathe-model');
    expect(ollamaCreateCommand('/x/out', 'm')).toBe('ollama create m -f /x/out/Modelfile');
    expect(ollamaCreateCommand("/x/it's here", 'm')).toBe(`ollama create m -f '/x/it'\\''s here/Modelfile'`);
  });

  it('registers through the ollama binary on the PATH (a stand-in script records its arguments)', async () => {
    const bin = mkdtempSync(path.join(tmpdir(), 'lathe-ollama-'));
    const dir = mkdtempSync(path.join(tmpdir(), 'lathe-ollama-out-'));
    const log = path.join(bin, 'args.txt');
    writeFileSync(path.join(bin, 'ollama'), `#!/bin/sh\necho "$@" > ${JSON.stringify(log)}\necho "success"\n`);
    chmodSync(path.join(bin, 'ollama'), 0o755);
    expect(findOllama({ PATH: `/nonexistent${path.delimiter}${bin}` })).toBe(path.join(bin, 'ollama'));
    expect(findOllama({ PATH: '/nonexistent' })).toBeNull();
    await expect(registerWithOllama(dir, 'x', { binary: path.join(bin, 'ollama') })).rejects.toMatchObject({ code: 'ollama.no-modelfile' });
    writeFileSync(path.join(dir, 'Modelfile'), 'FROM ./x.gguf\n');
    const r = await registerWithOllama(dir, 'My Model', { binary: path.join(bin, 'ollama') });
    expect(r).toEqual({ name: 'my-model', output: 'success' });
    expect(readFileSync(log, 'utf8').trim()).toBe(`create my-model -f ${path.join(dir, 'Modelfile')}`);
    writeFileSync(path.join(bin, 'ollama'), '#!/bin/sh\necho "could not connect to ollama app" >&2\nexit 1\n');
    await expect(registerWithOllama(dir, 'm', { binary: path.join(bin, 'ollama') })).rejects.toMatchObject({ code: 'ollama.create-failed', message: expect.stringContaining('could not connect') });
  });
});
