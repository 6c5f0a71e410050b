/**
 * The little the template code needs from a tokenizer. src-main/tokenizer's LatheTokenizer fits it
 * through `fromLatheTokenizer`; `loadTemplateTokenizer` reads a tokenizer.json folder directly with the
 * `tokenizers` package (Hugging Face's Rust implementation) so this module also stands alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import tokenizers from 'tokenizers';
import { UserError } from '../util/progress';
import { specialTokenString } from './load';

export interface TemplateEncoding {
  ids: number[];
  tokens: string[];
  /** [start, end) in UTF-16 code units of the encoded string; inserted tokens (BOS from the post-processor) get [0, 0]. */
  offsets: Array<[number, number]>;
}

export interface TemplateTokenizer {
  /** addSpecial: let the tokenizer's post-processor add BOS/EOS as it would for plain text. */
  encode(text: string, addSpecial: boolean): Promise<TemplateEncoding>;
  isSpecial(id: number): boolean;
  tokenToId(token: string): number | undefined;
  bosToken?: string | undefined;
  eosToken?: string | undefined;
  bosId?: number | undefined;
  eosId?: number | undefined;
}

/** Code-point offsets (what the Rust binding reports) to UTF-16 offsets (what JS strings index). */
export function codePointToUtf16(text: string): (cp: number) => number {
  let hasAstral = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      hasAstral = true;
      break;
    }
  }
  if (!hasAstral) return (cp) => cp;
  const table: number[] = [];
  let u = 0;
  for (const ch of text) {
    table.push(u);
    u += ch.length;
  }
  table.push(u);
  return (cp) => table[Math.min(cp, table.length - 1)]!;
}

interface RawConfig {
  bos_token?: unknown;
  eos_token?: unknown;
  added_tokens_decoder?: Record<string, { content?: string; special?: boolean }>;
}

/** Loads tokenizer.json (+ tokenizer_config.json when present) from a model folder. */
export function loadTemplateTokenizer(dir: string): TemplateTokenizer {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) {
    throw new UserError('template-no-tokenizer', `No tokenizer.json in ${dir}.`,
      'Point Lathe at the model folder that holds tokenizer.json (and tokenizer_config.json).');
  }
  const json = JSON.parse(readFileSync(path, 'utf8')) as { added_tokens?: Array<{ id: number; content: string; special?: boolean }> };
  const rust = tokenizers.Tokenizer.fromFile(path);
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config: RawConfig = existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as RawConfig) : {};
  const special = new Set<number>();
  for (const t of json.added_tokens ?? []) if (t.special) special.add(t.id);
  for (const [id, t] of Object.entries(config.added_tokens_decoder ?? {})) if (t.special) special.add(Number(id));
  const bosToken = specialTokenString(config.bos_token);
  const eosToken = specialTokenString(config.eos_token);
  const toId = (t: string | undefined): number | undefined => (t === undefined ? undefined : (rust.tokenToId(t) ?? undefined));
  return {
    bosToken,
    eosToken,
    bosId: toId(bosToken),
    eosId: toId(eosToken),
    isSpecial: (id) => special.has(id),
    tokenToId: (token) => rust.tokenToId(token) ?? undefined,
    async encode(text, addSpecial) {
      const enc = await rust.encode(text, null, { addSpecialTokens: addSpecial });
      const map = codePointToUtf16(text);
      const mask = enc.getSpecialTokensMask();
      return {
        ids: enc.getIds(),
        tokens: enc.getTokens(),
        // Tokens the post-processor inserted cover no text; the binding reports [0, 0] for them already.
        offsets: enc.getOffsets().map(([s, e], i) => (mask[i] ? [0, 0] : [map(s!), map(e!)]) as [number, number]),
      };
    },
  };
}

/** The shape of src-main/tokenizer's LatheTokenizer that we use (kept structural: no import cycle). */
export interface LatheTokenizerLike {
  encode(text: string, opts: { addSpecialTokens?: boolean }): Promise<{ ids: number[]; tokens: string[]; offsets: Array<[number, number]> }>;
  tokenToId(token: string): number | undefined;
  specialIds: ReadonlySet<number>;
  bosToken: string | undefined;
  eosToken: string | undefined;
  bosId: number | undefined;
  eosId: number | undefined;
}

export function fromLatheTokenizer(t: LatheTokenizerLike): TemplateTokenizer {
  return {
    bosToken: t.bosToken,
    eosToken: t.eosToken,
    bosId: t.bosId,
    eosId: t.eosId,
    isSpecial: (id) => t.specialIds.has(id),
    tokenToId: (token) => t.tokenToId(token),
    async encode(text, addSpecial) {
      const e = await t.encode(text, { addSpecialTokens: addSpecial });
      return { ids: e.ids, tokens: e.tokens, offsets: e.offsets };
    },
  };
}
