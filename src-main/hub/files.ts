/**
 * Which files of a Hub repository make a model folder Lathe can train: config, tokenizer, chat template
 * and safetensors weights at the top level. Other weight formats (.bin, .gguf, ONNX, Flax) and sub-folders
 * (onnx/, original/, ...) are left on the Hub.
 */
import { UserError } from '../util/progress';
import type { HubModelInfo } from './client';

export interface WantedFile {
  name: string;
  size: number;
  /** LFS files carry the SHA-256 of their content; small files are checked by size only. */
  sha256: string | null;
}

const SMALL_FILES = new Set([
  'config.json', 'generation_config.json',
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
  'tokenizer.model', 'vocab.json', 'merges.txt', 'vocab.txt',
  'chat_template.jinja', 'chat_template.json',
  'model.safetensors.index.json',
]);

/** Plain file names only: nothing that could climb out of the model folder. */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$/;

export function pickFiles(info: HubModelInfo): { files: WantedFile[]; skipped: string[] } {
  const top = info.siblings.filter((s) => !s.rfilename.includes('/') && SAFE_NAME.test(s.rfilename));
  const names = new Set(top.map((s) => s.rfilename));
  const hasIndex = names.has('model.safetensors.index.json');
  const wanted = top.filter((s) => {
    if (SMALL_FILES.has(s.rfilename)) return true;
    if (!s.rfilename.endsWith('.safetensors')) return false;
    // Mistral's repos keep a second copy of the weights for their own tools beside the sharded ones.
    if (hasIndex && s.rfilename.startsWith('consolidated')) return false;
    return true;
  });
  if (!names.has('config.json')) {
    throw new UserError('hub.noConfig', `${info.id} has no config.json, so it is not a model folder Lathe can use.`, 'Choose a model repository (its page lists config.json among the files).');
  }
  if (!wanted.some((s) => s.rfilename.endsWith('.safetensors'))) {
    const other = [...new Set(info.siblings.map((s) => s.rfilename.match(/\.(bin|gguf|onnx|pt|pth|h5|msgpack)$/)?.[1]).filter(Boolean))];
    throw new UserError('hub.noSafetensors', `${info.id} has no .safetensors weights${other.length ? ` (only ${other.map((e) => `.${e}`).join(', ')})` : ''}; Lathe reads safetensors only.`,
      'Search for a version of this model with safetensors weights (most recent models have them).');
  }
  const files = wanted.map((s) => {
    const size = s.lfs?.size ?? s.size;
    if (size === undefined) {
      throw new UserError('hub.badResponse', `The Hub did not say how large ${s.rfilename} of ${info.id} is.`, 'Try again later.');
    }
    return { name: s.rfilename, size, sha256: s.lfs?.sha256 ?? null };
  });
  const kept = new Set(files.map((f) => f.name));
  return { files, skipped: info.siblings.map((s) => s.rfilename).filter((n) => !kept.has(n)) };
}
