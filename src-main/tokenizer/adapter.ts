/**
 * LatheTokenizer as the data pipeline's TokenizerAdapter (src-main/data/types.ts), so prepared datasets record
 * this tokenizer's content hash: an extended tokenizer gets a new hash, and datasets made with the base are
 * recognised as stale.
 */
import type { TokenizerAdapter } from '../data/types';
import { UserError } from '../util/progress';
import type { LatheTokenizer } from './tokenizer';

export function asDataTokenizer(tok: LatheTokenizer): TokenizerAdapter {
  if (tok.eosId === undefined) {
    throw new UserError('tokenizer-no-eos', 'This tokenizer names no end-of-text (eos) token, which packing needs between documents.',
      'Set "eos_token" in tokenizer_config.json (for example "</s>" or "<|endoftext|>").');
  }
  return {
    eosId: tok.eosId,
    vocabSize: tok.vocabSize,
    hash: tok.contentHash,
    async encodeBatch(texts: string[]) {
      return (await tok.encodeBatch(texts, { addSpecialTokens: false })).map((e) => e.ids);
    },
  };
}
