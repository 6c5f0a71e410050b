/**
 * LatheTokenizer: one Hugging Face BPE tokenizer (tokenizer.json + tokenizer_config.json), encoded and decoded
 * by Hugging Face's own Rust implementation through the `tokenizers` npm package. The Rust side is the
 * reference; this class adds what the package leaves out (tokenizer_config.json, UTF-16 offsets, special-token
 * flags, a content hash) and exposes the pieces the domain trainer needs (added-token splitting,
 * normalize + pre-tokenize, the bare BPE model).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import tokenizers from 'tokenizers';
import type { Tokenizer as RustTokenizer } from 'tokenizers';
import { UserError } from '../util/progress';
import {
  mergePair,
  metaspaceReplacement,
  parseTokenizerConfig,
  parseTokenizerJson,
  specialTokenContent,
  usesByteLevel,
  type AddedTokenJson,
  type TokenizerConfigJson,
  type TokenizerJson,
} from './json';

/** How the BPE model reaches bytes it has no token for. */
export type TokenizerKind =
  /** GPT-2, Llama 3, Qwen, SmolLM: every byte is a printable character in the vocab. */
  | 'byte-level'
  /** Llama 2, Mistral, TinyLlama: characters, with <0xNN> tokens for characters not in the vocab. */
  | 'byte-fallback'
  /** Plain character BPE: unknown characters become the unk token. */
  | 'bpe';

export interface LatheEncoding {
  ids: number[];
  tokens: string[];
  /** [start, end) in UTF-16 code units of the input string (JS string indices); [0, 0] for inserted tokens. */
  offsets: Array<[number, number]>;
  /** True for special tokens (bos/eos/pad and every added token marked special). */
  special: boolean[];
}

export interface EncodeOptions {
  /** Add bos/eos as tokenizer_config.json (or the tokenizer.json post-processor) says. Default true. */
  addSpecialTokens?: boolean;
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;
export function isByteToken(token: string): boolean {
  return BYTE_TOKEN.test(token);
}

function loadRust(json: TokenizerJson, source: string): RustTokenizer {
  try {
    const t = tokenizers.Tokenizer.fromString(JSON.stringify(json));
    // Some files carry truncation/padding settings (e.g. max_length 512): Lathe counts and packs whole texts.
    t.disableTruncation();
    t.disablePadding();
    return t;
  } catch (e) {
    throw new UserError('tokenizer-load-failed', `Hugging Face tokenizers could not load ${source}: ${(e as Error).message}`,
      'The file may be damaged or use a component this version of tokenizers does not know; try a fresh download.');
  }
}

export class LatheTokenizer {
  readonly json: TokenizerJson;
  readonly config: TokenizerConfigJson;
  readonly kind: TokenizerKind;
  /** The metaspace character ("▁") for SentencePiece-style tokenizers, else undefined. */
  readonly metaspace: string | undefined;
  /** One past the largest id used by the model vocab or an added token: the embedding rows needed. */
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  readonly unkId: number | undefined;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly unkToken: string | undefined;
  /** undefined: leave it to the tokenizer.json post-processor. */
  readonly addBos: boolean | undefined;
  readonly addEos: boolean | undefined;
  /** undefined when the config has none or the "unlimited" sentinel (1e30). */
  readonly modelMaxLength: number | undefined;
  /** sha256 of tokenizer.json (re-serialised) and the config fields that change encoding. */
  readonly contentHash: string;
  readonly addedTokens: readonly AddedTokenJson[];
  readonly specialIds: ReadonlySet<number>;
  private readonly rust: RustTokenizer;
  private bareModel: RustTokenizer | undefined;
  private readonly idToTokenTable: Map<number, string>;
  private readonly tokenToIdTable: Map<string, number>;
  private addedSplitter: RegExp | undefined;

  constructor(json: TokenizerJson, config: TokenizerConfigJson = {}, source = 'tokenizer.json') {
    this.json = json;
    this.config = config;
    this.rust = loadRust(json, source);
    const m = json.model;
    this.kind = usesByteLevel(json) ? 'byte-level' : m.byte_fallback ? 'byte-fallback' : 'bpe';
    this.metaspace = this.kind === 'byte-level' ? undefined : metaspaceReplacement(json);

    this.idToTokenTable = new Map();
    this.tokenToIdTable = new Map();
    let maxId = -1;
    for (const [tok, id] of Object.entries(m.vocab)) {
      if (!Number.isInteger(id) || id < 0) {
        throw new UserError('tokenizer-bad-json', `${source}: token ${JSON.stringify(tok)} has id ${String(id)}, not a non-negative integer.`,
          'The tokenizer.json file looks damaged; download it again.');
      }
      if (this.idToTokenTable.has(id)) {
        throw new UserError('tokenizer-bad-json', `${source}: id ${id} is used by both ${JSON.stringify(this.idToTokenTable.get(id))} and ${JSON.stringify(tok)}.`,
          'The tokenizer.json file looks damaged; download it again.');
      }
      this.idToTokenTable.set(id, tok);
      this.tokenToIdTable.set(tok, id);
      maxId = Math.max(maxId, id);
    }
    for (const t of json.added_tokens) {
      this.idToTokenTable.set(t.id, t.content);
      this.tokenToIdTable.set(t.content, t.id);
      maxId = Math.max(maxId, t.id);
    }
    this.vocabSize = maxId + 1;
    this.addedTokens = json.added_tokens;

    // The Rust side assigns added-token ids itself (from the model vocab size), ignoring the ids in the file;
    // if the two disagree, encodings would silently use other ids than the file says.
    for (const t of json.added_tokens) {
      const got = this.rust.tokenToId(t.content);
      if (got !== t.id) {
        throw new UserError('tokenizer-added-id-mismatch',
          `${source}: added token ${JSON.stringify(t.content)} is listed with id ${t.id}, but Hugging Face tokenizers gives it id ${String(got)}.`,
          'The vocab and added_tokens ids do not line up (a gap in the vocab ids?). Use the original tokenizer.json from the model page.');
      }
    }

    const lookup = (name: 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token'): [string | undefined, number | undefined] => {
      let content = specialTokenContent(config[name]);
      if (content === undefined && name === 'unk_token' && m.unk_token) content = m.unk_token;
      if (content === undefined) return [undefined, undefined];
      const id = this.tokenToIdTable.get(content);
      if (id === undefined) {
        throw new UserError('tokenizer-special-missing', `tokenizer_config.json names ${name} ${JSON.stringify(content)}, but that token is not in tokenizer.json.`,
          'The two files come from different models; use the tokenizer_config.json that ships with this tokenizer.json.');
      }
      return [content, id];
    };
    [this.bosToken, this.bosId] = lookup('bos_token');
    [this.eosToken, this.eosId] = lookup('eos_token');
    [this.padToken, this.padId] = lookup('pad_token');
    [this.unkToken, this.unkId] = lookup('unk_token');
    this.addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : undefined;
    this.addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : undefined;
    if ((this.addBos && this.bosId === undefined) || (this.addEos && this.eosId === undefined)) {
      throw new UserError('tokenizer-special-missing', `tokenizer_config.json sets add_${this.addBos && this.bosId === undefined ? 'bos' : 'eos'}_token but names no such token.`,
        'Add the bos_token/eos_token entry to tokenizer_config.json or set the flag to false.');
    }
    const mml = config.model_max_length;
    this.modelMaxLength = typeof mml === 'number' && mml > 0 && mml < 1e12 ? mml : undefined;

    const special = new Set<number>();
    for (const t of json.added_tokens) if (t.special) special.add(t.id);
    for (const [id, t] of Object.entries(config.added_tokens_decoder ?? {})) if (t.special) special.add(Number(id));
    for (const id of [this.bosId, this.eosId, this.padId, this.unkId]) if (id !== undefined) special.add(id);
    this.specialIds = special;

    const hash = createHash('sha256');
    hash.update(JSON.stringify(json));
    hash.update(JSON.stringify({ b: this.addBos, e: this.addEos, bt: this.bosToken, et: this.eosToken }));
    this.contentHash = hash.digest('hex');
  }

  /** Loads tokenizer.json (+ tokenizer_config.json and special_tokens_map.json when present) from a model folder. */
  static fromDir(dir: string): LatheTokenizer {
    const tjPath = join(dir, 'tokenizer.json');
    if (!existsSync(tjPath)) {
      const hasSpm = existsSync(join(dir, 'tokenizer.model'));
      throw new UserError('tokenizer-missing', `No tokenizer.json in ${dir}${hasSpm ? ' (only a SentencePiece tokenizer.model)' : ''}.`,
        hasSpm ? 'Download the tokenizer.json from the model page too; Lathe reads the Hugging Face JSON form, not tokenizer.model.'
          : 'Point Lathe at the model folder that holds tokenizer.json.');
    }
    const json = parseTokenizerJson(readFileSync(tjPath, 'utf8'), tjPath);
    const cfgPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(cfgPath) ? parseTokenizerConfig(readFileSync(cfgPath, 'utf8'), cfgPath) : {};
    const stmPath = join(dir, 'special_tokens_map.json');
    if (existsSync(stmPath)) {
      // special_tokens_map.json only fills gaps: tokenizer_config.json wins, as in transformers.
      const stm = parseTokenizerConfig(readFileSync(stmPath, 'utf8'), stmPath);
      for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const) {
        if (config[k] === undefined && stm[k] !== undefined) config[k] = stm[k];
      }
    }
    return new LatheTokenizer(json, config, tjPath);
  }

  static fromJson(tokenizerJsonText: string, configText?: string): LatheTokenizer {
    return new LatheTokenizer(parseTokenizerJson(tokenizerJsonText), configText ? parseTokenizerConfig(configText) : {});
  }

  tokenToId(token: string): number | undefined {
    return this.tokenToIdTable.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.idToTokenTable.get(id);
  }

  /** The model vocab (no added tokens) as token -> id. */
  get modelVocab(): Readonly<Record<string, number>> {
    return this.json.model.vocab;
  }

  get merges(): Array<[string, string]> {
    return this.json.model.merges.map((m, i) => mergePair(m, i));
  }

  async encode(text: string, opts: EncodeOptions = {}): Promise<LatheEncoding> {
    return (await this.encodeBatch([text], opts))[0]!;
  }

  async encodeBatch(texts: string[], opts: EncodeOptions = {}): Promise<LatheEncoding[]> {
    const addSpecial = opts.addSpecialTokens ?? true;
    // Explicit add_bos_token/add_eos_token in the config win over the tokenizer.json post-processor,
    // as transformers' Llama/Gemma fast tokenizers rebuild the post-processor from them.
    const manual = addSpecial && (this.addBos !== undefined || this.addEos !== undefined);
    const encs = await this.rust.encodeBatch(texts, { addSpecialTokens: addSpecial && !manual });
    return encs.map((e, k) => {
      const ids = e.getIds();
      const tokens = e.getTokens();
      const units = codepointToUnit(texts[k]!);
      const offsets = e.getOffsets().map(([s, t]) => [units[s!] ?? 0, units[t!] ?? 0] as [number, number]);
      if (manual) {
        if (this.addBos) { ids.unshift(this.bosId!); tokens.unshift(this.bosToken!); offsets.unshift([0, 0]); }
        if (this.addEos) { ids.push(this.eosId!); tokens.push(this.eosToken!); offsets.push([0, 0]); }
      }
      return { ids, tokens, offsets, special: ids.map((id) => this.specialIds.has(id)) };
    });
  }

  /** Number of tokens for each text, without bos/eos. */
  async countTokens(texts: string[]): Promise<number[]> {
    const encs = await this.rust.encodeBatch(texts, { addSpecialTokens: false });
    return encs.map((e) => e.getLength());
  }

  async decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): Promise<string> {
    return this.rust.decode(ids, opts.skipSpecialTokens ?? false);
  }

  async decodeBatch(ids: number[][], opts: { skipSpecialTokens?: boolean } = {}): Promise<string[]> {
    return this.rust.decodeBatch(ids, opts.skipSpecialTokens ?? false);
  }

  /**
   * Splits text around added tokens (special or not), as Hugging Face does before normalizing: returns the
   * plain-text pieces only. Used so that domain training never merges across or into special tokens.
   */
  splitOnAddedTokens(text: string): { pieces: string[]; removed: number } {
    if (this.addedTokens.length === 0) return { pieces: [text], removed: 0 };
    if (!this.addedSplitter) {
      const contents = [...new Set(this.addedTokens.map((t) => t.content))].filter((c) => c.length > 0);
      contents.sort((a, b) => b.length - a.length); // longest first, like HF's leftmost-longest matching
      this.addedSplitter = new RegExp(contents.map(escapeRegExp).join('|'), 'gu');
    }
    const parts = text.split(this.addedSplitter);
    return { pieces: parts.filter((s) => s.length > 0), removed: parts.length - 1 };
  }

  /** Normalizer + pre-tokenizer of the base: the "words" its BPE model sees, in the model's alphabet. */
  preTokenize(text: string): string[] {
    const norm = this.rust.getNormalizer();
    const normalized = norm ? norm.normalizeString(text) : text;
    const pre = this.rust.getPreTokenizer();
    if (!pre) return normalized.length > 0 ? [normalized] : [];
    return pre.preTokenizeString(normalized).map(([w]) => w);
  }

  /** Runs only the BPE model (no normalizer, pre-tokenizer or added tokens) on model-alphabet words. */
  async segmentWords(words: string[]): Promise<number[][]> {
    if (!this.bareModel) {
      const bare: TokenizerJson = { ...this.json, added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null };
      this.bareModel = loadRust(bare, 'the BPE model alone');
    }
    const out: number[][] = [];
    const CHUNK = 4096;
    for (let i = 0; i < words.length; i += CHUNK) {
      const encs = await this.bareModel.encodeBatch(words.slice(i, i + CHUNK), { addSpecialTokens: false });
      for (const e of encs) out.push(e.getIds());
    }
    return out;
  }
}

/** Maps a code-point index (what the Rust binding reports) to a UTF-16 index; length+1 entries. */
function codepointToUnit(s: string): number[] {
  const out: number[] = [];
  let unit = 0;
  for (const ch of s) {
    out.push(unit);
    unit += ch.length;
  }
  out.push(unit);
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}
