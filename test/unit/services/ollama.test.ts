import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ollamaBinary, registerOllama } from '../../../src-main/services/ollama';
import { tempDir } from '../../helpers/services';

/** A stand-in `ollama` that records its arguments and working folder. */
function fakeOllama(exit = 0): { bin: string; log: string } {
  const bin = tempDir('lathe-fake-ollama-');
  const log = path.join(bin, 'calls.txt');
  writeFileSync(path.join(bin, 'ollama'), `#!/bin/sh\necho "$PWD|$*" >> '${log}'\necho "transferring model data"\necho "success"\nexit ${exit}\n`);
  chmodSync(path.join(bin, 'ollama'), 0o755);
  return { bin, log };
}

function exportDir(): string {
  const d = tempDir('lathe-ollama-export-');
  writeFileSync(path.join(d, 'Modelfile'), 'FROM ./m-F16.gguf\n');
  return d;
}

describe('Ollama service', () => {
  it('finds ollama by PATH lookup only', () => {
    const { bin } = fakeOllama();
    expect(ollamaBinary({ PATH: ['/nonexistent', bin].join(path.delimiter) })).toBe(path.join(bin, 'ollama'));
    expect(ollamaBinary({ PATH: '/nonexistent' })).toBeNull();
    expect(ollamaBinary({})).toBeNull();
  });

  it('runs exactly the shown `ollama create` command in the export folder', async () => {
    const { bin, log } = fakeOllama();
    const dir = exportDir();
    const r = await registerOllama(dir, 'My Notes Model', { PATH: bin });
    expect(r.name).toBe('my-notes-model');
    expect(r.command).toBe(`ollama create my-notes-model -f ${path.join(dir, 'Modelfile')}`);
    expect(r.output).toContain('success');
    const [cwd, args] = readFileSync(log, 'utf8').trim().split('|');
    expect(cwd).toBe(dir);
    expect(`ollama ${args}`).toBe(r.command);
  });

  it('says what to do when ollama is missing, fails, or the folder has no Modelfile', async () => {
    await expect(registerOllama(exportDir(), 'x', { PATH: '/nonexistent' })).rejects.toMatchObject({ code: 'ollama.missing' });
    const failing = fakeOllama(1);
    await expect(registerOllama(exportDir(), 'x', { PATH: failing.bin })).rejects.toMatchObject({ code: 'ollama.create-failed' });
    const empty = tempDir('lathe-ollama-empty-');
    mkdirSync(path.join(empty, 'sub'));
    await expect(registerOllama(empty, 'x', { PATH: fakeOllama().bin })).rejects.toMatchObject({ code: 'ollama.no-modelfile' });
  });
});
