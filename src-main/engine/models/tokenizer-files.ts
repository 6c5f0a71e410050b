/**
 * What the model loader needs to know about a folder's tokenizer files, without building a tokenizer:
 * does tokenizer.json exist, how many ids does it use, is there a chat template. (Encoding lives in
 * src-main/tokenizer/.)
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';

export interface TokenizerFilesInfo {
  /** "tokenizer.json", or null when there is none. */
  file: string | null;
  /** Largest id used by the vocab or added tokens, plus one; null without tokenizer.json. */
  vocabSize: number | null;
  /** The tokenizer model type ("BPE", "Unigram", ...). */
  modelType: string | null;
  /** Chat template found in tokenizer_config.json or chat_template.jinja. */
  hasChatTemplate: boolean;
  chatTemplateSource: 'tokenizer_config.json' | 'chat_template.jinja' | null;
  bosToken: string | null;
  eosToken: string | null;
  /** Other tokenizer files present (e.g. tokenizer.model), for hints. */
  otherFiles: string[];
  /** Set when a file exists but cannot be parsed. */
  error: string | null;
}

function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export async function inspectTokenizerFiles(dir: string): Promise<TokenizerFilesInfo> {
  const info: TokenizerFilesInfo = {
    file: null, vocabSize: null, modelType: null, hasChatTemplate: false, chatTemplateSource: null,
    bosToken: null, eosToken: null, otherFiles: [], error: null,
  };
  for (const f of ['tokenizer.model', 'vocab.json', 'merges.txt', 'spiece.model']) if (existsSync(path.join(dir, f))) info.otherFiles.push(f);
  const tj = path.join(dir, 'tokenizer.json');
  if (existsSync(tj)) {
    info.file = 'tokenizer.json';
    try {
      const t = JSON.parse(await fsp.readFile(tj, 'utf8')) as { model?: { type?: string; vocab?: unknown }; added_tokens?: Array<{ id?: number }> };
      info.modelType = t.model?.type ?? null;
      let maxId = -1;
      const vocab = t.model?.vocab;
      if (Array.isArray(vocab)) maxId = vocab.length - 1; // Unigram: [[piece, score], ...]
      else if (vocab && typeof vocab === 'object') for (const id of Object.values(vocab as Record<string, number>)) if (typeof id === 'number' && id > maxId) maxId = id;
      for (const a of t.added_tokens ?? []) if (typeof a.id === 'number' && a.id > maxId) maxId = a.id;
      info.vocabSize = maxId + 1;
    } catch (err) {
      info.error = `tokenizer.json cannot be read: ${(err as Error).message}`;
    }
  }
  const tc = path.join(dir, 'tokenizer_config.json');
  if (existsSync(tc)) {
    try {
      const c = JSON.parse(await fsp.readFile(tc, 'utf8')) as Record<string, unknown>;
      const ct = c.chat_template;
      if ((typeof ct === 'string' && ct.length > 0) || (Array.isArray(ct) && ct.length > 0)) {
        info.hasChatTemplate = true;
        info.chatTemplateSource = 'tokenizer_config.json';
      }
      info.bosToken = tokenText(c.bos_token);
      info.eosToken = tokenText(c.eos_token);
    } catch (err) {
      info.error ??= `tokenizer_config.json cannot be read: ${(err as Error).message}`;
    }
  }
  if (!info.hasChatTemplate && existsSync(path.join(dir, 'chat_template.jinja'))) {
    info.hasChatTemplate = true;
    info.chatTemplateSource = 'chat_template.jinja';
  }
  return info;
}
