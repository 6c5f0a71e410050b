import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/progress';
import type { TokenizerAdapter } from './types';

/** Names models use for their end-of-text token, tried when tokenizer_config.json does not say. */
const EOS_CANDIDATES = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>', '<|im_end|>', '[SEP]'];

/**
 * A TokenizerAdapter over the `tokenizers` package (Hugging Face's Rust library) for a model folder
 * holding tokenizer.json (and optionally tokenizer_config.json naming eos_token).
 * TODO(wiring): src-main/tokenizer can provide its own adapter; only this interface is used here.
 */
export async function loadTokenizerDir(dir: string): Promise<TokenizerAdapter> {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) throw new UserError('data.tokenizer', `No tokenizer.json in ${dir}.`, 'Point --tokenizer at the model folder (the one with tokenizer.json).');
  const bytes = readFileSync(file);
  const { Tokenizer } = (await import('tokenizers')).default;
  const tok = Tokenizer.fromString(bytes.toString('utf8'));
  let eosName: string | undefined;
  const cfgPath = join(dir, 'tokenizer_config.json');
  if (existsSync(cfgPath)) {
    try {
      const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { eos_token?: string | { content?: string } };
      eosName = typeof cfg.eos_token === 'string' ? cfg.eos_token : cfg.eos_token?.content;
    } catch { /* a broken config falls back to the usual names */ }
  }
  let eosId: number | null = null;
  for (const name of eosName ? [eosName, ...EOS_CANDIDATES] : EOS_CANDIDATES) {
    eosId = tok.tokenToId(name);
    if (eosId !== null && eosId !== undefined) break;
  }
  if (eosId === null || eosId === undefined) {
    throw new UserError('data.tokenizer', `The tokenizer in ${dir} has no end-of-text token (looked for ${eosName ? `"${eosName}", ` : ''}${EOS_CANDIDATES.join(' ')}).`, 'Set eos_token in tokenizer_config.json.');
  }
  return {
    eosId,
    vocabSize: tok.getVocabSize(true),
    hash: createHash('sha256').update(bytes).digest('hex'),
    tokenToId: (t: string) => tok.tokenToId(t) ?? null,
    async encodeBatch(texts: string[]) {
      const encs = await tok.encodeBatch(texts, { addSpecialTokens: false });
      return encs.map((e) => e.getIds());
    },
  };
}
