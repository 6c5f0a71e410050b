/** Which files of a Hub repository Lathe downloads (src-main/hub/files.ts). */
import { describe, expect, it } from 'vitest';
import { pickFiles } from '../../../src-main/hub/files';
import type { HubModelInfo } from '../../../src-main/hub/client';
import { UserError } from '../../../src-main/util/progress';

const SHA = 'a'.repeat(64);
function info(files: (string | [string, number, boolean])[]): HubModelInfo {
  return {
    id: 'o/m', sha: 'b'.repeat(40),
    siblings: files.map((f) => {
      const [name, size, lfs] = typeof f === 'string' ? [f, 10, f.endsWith('.safetensors')] : f;
      return { rfilename: name, size, ...(lfs ? { lfs: { sha256: SHA, size } } : {}) };
    }),
  };
}

describe('pickFiles', () => {
  it('keeps config, tokenizer, template and safetensors; leaves other formats and sub-folders', () => {
    const { files, skipped } = pickFiles(info([
      'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'merges.txt', 'vocab.json',
      'chat_template.jinja', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json',
      'pytorch_model.bin', 'model.gguf', 'onnx/model.onnx', 'original/consolidated.00.pth', 'README.md', '.gitattributes', 'flax_model.msgpack',
    ]));
    expect(files.map((f) => f.name).sort()).toEqual([
      'chat_template.jinja', 'config.json', 'generation_config.json', 'merges.txt', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
      'model.safetensors.index.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json',
    ]);
    expect(skipped).toContain('pytorch_model.bin');
    expect(skipped).toContain('onnx/model.onnx');
    expect(files.find((f) => f.name.endsWith('.safetensors'))!.sha256).toBe(SHA);
    expect(files.find((f) => f.name === 'config.json')!.sha256).toBeNull();
  });

  it("leaves Mistral's consolidated copy of the weights beside sharded ones", () => {
    const { files } = pickFiles(info(['config.json', 'consolidated.safetensors', 'model-00001-of-00001.safetensors', 'model.safetensors.index.json']));
    expect(files.map((f) => f.name)).not.toContain('consolidated.safetensors');
  });

  it('refuses a repository without safetensors, naming what it has, and one without config.json', () => {
    const e = (() => { try { pickFiles(info(['config.json', 'pytorch_model.bin', 'model.gguf'])); } catch (x) { return x as UserError; } return null; })();
    expect(e).toBeInstanceOf(UserError);
    expect(e!.code).toBe('hub.noSafetensors');
    expect(e!.message).toContain('.bin, .gguf');
    expect(() => pickFiles(info(['model.safetensors']))).toThrow(/no config\.json/);
  });

  it('never keeps a name that could leave the model folder', () => {
    const { files } = pickFiles(info(['config.json', 'model.safetensors', '../evil.safetensors', '..', '.hidden.safetensors']));
    expect(files.map((f) => f.name).sort()).toEqual(['config.json', 'model.safetensors']);
  });
});
