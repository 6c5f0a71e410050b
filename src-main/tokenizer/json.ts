/**
 * The shapes of Hugging Face `tokenizer.json` / `tokenizer_config.json` that Lathe reads and writes,
 * and the checks that turn a file we cannot handle into a UserError naming what was found.
 * Only BPE models are supported: they are what every current decoder-only LLM ships (GPT-2, Llama 2/3,
 * Mistral, Qwen, SmolLM), and the domain-extension algorithm (appending merges) only makes sense for BPE.
 */
import { UserError } from '../util/progress';

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

export interface BpeModelJson {
  type: 'BPE';
  dropout?: number | null;
  unk_token?: string | null;
  continuing_subword_prefix?: string | null;
  end_of_word_suffix?: string | null;
  fuse_unk?: boolean;
  byte_fallback?: boolean;
  ignore_merges?: boolean;
  vocab: Record<string, number>;
  /** Older files: "a b" strings; tokenizers >= 0.20 writes [a, b] pairs. */
  merges: Array<string | [string, string]>;
}

/** Component configs are passed through untouched; we only look at `type` and a few fields. */
export interface ComponentJson {
  type: string;
  [key: string]: unknown;
}

export interface TokenizerJson {
  version?: string;
  truncation?: unknown;
  padding?: unknown;
  added_tokens: AddedTokenJson[];
  normalizer: ComponentJson | null;
  pre_tokenizer: ComponentJson | null;
  post_processor: ComponentJson | null;
  decoder: ComponentJson | null;
  model: BpeModelJson;
}

/** `bos_token` etc. appear either as a plain string or as an AddedToken dict (`{"content": ...}`). */
export type SpecialTokenValue = string | { content: string; [key: string]: unknown } | null;

export interface TokenizerConfigJson {
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  bos_token?: SpecialTokenValue;
  eos_token?: SpecialTokenValue;
  pad_token?: SpecialTokenValue;
  unk_token?: SpecialTokenValue;
  model_max_length?: number;
  added_tokens_decoder?: Record<string, { content: string; special?: boolean; [key: string]: unknown }>;
  [key: string]: unknown;
}

export function specialTokenContent(v: SpecialTokenValue | undefined): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && typeof v.content === 'string') return v.content;
  return undefined;
}

/** A merge as a pair, whichever of the two on-disk forms it came in. */
export function mergePair(m: string | [string, string], index: number): [string, string] {
  if (Array.isArray(m)) {
    if (m.length !== 2 || typeof m[0] !== 'string' || typeof m[1] !== 'string') {
      throw new UserError('tokenizer-bad-merge', `Merge #${index} in tokenizer.json is ${JSON.stringify(m)}, not a pair of strings.`,
        'The tokenizer.json file looks damaged; download it again from the model page.');
    }
    return [m[0], m[1]];
  }
  const sp = m.indexOf(' ');
  if (sp <= 0 || sp !== m.lastIndexOf(' ')) {
    throw new UserError('tokenizer-bad-merge', `Merge #${index} in tokenizer.json is "${m}", not two tokens separated by one space.`,
      'The tokenizer.json file looks damaged; download it again from the model page.');
  }
  return [m.slice(0, sp), m.slice(sp + 1)];
}

const UNSUPPORTED_MODEL_HINT =
  'Lathe loads BPE tokenizers (GPT-2, Llama, Mistral, Qwen, SmolLM and similar). Pick a model whose tokenizer.json has "model": {"type": "BPE"}.';

/** Parses and checks a tokenizer.json text. Throws UserError for anything Lathe cannot handle. */
export function parseTokenizerJson(text: string, source = 'tokenizer.json'): TokenizerJson {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError('tokenizer-bad-json', `${source} is not valid JSON (${(e as Error).message}).`,
      'Download tokenizer.json again from the model page; the file may be truncated.');
  }
  if (typeof raw !== 'object' || raw === null || typeof (raw as { model?: unknown }).model !== 'object') {
    throw new UserError('tokenizer-bad-json', `${source} has no "model" section, so it is not a Hugging Face tokenizer.json.`,
      'Point Lathe at the tokenizer.json that comes with the model (next to config.json).');
  }
  const j = raw as Record<string, unknown> & { model: Record<string, unknown> };
  const type = j.model.type ?? (j.model.merges ? 'BPE' : undefined);
  if (type !== 'BPE') {
    const named = type === 'WordPiece' ? 'WordPiece (BERT-style)' : type === 'Unigram' ? 'Unigram (SentencePiece unigram, e.g. T5, XLNet)'
      : type === 'WordLevel' ? 'WordLevel' : JSON.stringify(type ?? 'missing');
    throw new UserError('tokenizer-unsupported-model', `${source} uses a ${named} tokenizer model; Lathe only supports BPE.`, UNSUPPORTED_MODEL_HINT);
  }
  const m = j.model as unknown as BpeModelJson;
  if (typeof m.vocab !== 'object' || m.vocab === null || !Array.isArray(m.merges)) {
    throw new UserError('tokenizer-bad-json', `${source}: the BPE model has no vocab object or no merges list.`,
      'Download tokenizer.json again from the model page; the file may be damaged.');
  }
  if (m.continuing_subword_prefix || m.end_of_word_suffix) {
    throw new UserError('tokenizer-unsupported-model',
      `${source}: BPE with a continuing-subword prefix or end-of-word suffix ("${m.continuing_subword_prefix ?? ''}"/"${m.end_of_word_suffix ?? ''}") is not supported.`,
      'These are used by a few older encoder models, not by current LLMs; pick another model.');
  }
  m.type = 'BPE';
  return {
    ...j,
    added_tokens: Array.isArray(j.added_tokens) ? (j.added_tokens as AddedTokenJson[]) : [],
    normalizer: (j.normalizer as ComponentJson | null) ?? null,
    pre_tokenizer: (j.pre_tokenizer as ComponentJson | null) ?? null,
    post_processor: (j.post_processor as ComponentJson | null) ?? null,
    decoder: (j.decoder as ComponentJson | null) ?? null,
    model: m,
  };
}

export function parseTokenizerConfig(text: string, source = 'tokenizer_config.json'): TokenizerConfigJson {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError('tokenizer-bad-json', `${source} is not valid JSON (${(e as Error).message}).`,
      'Download tokenizer_config.json again from the model page, or delete it to use tokenizer.json alone.');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UserError('tokenizer-bad-json', `${source} should hold a JSON object, found ${Array.isArray(raw) ? 'an array' : typeof raw}.`,
      'Download tokenizer_config.json again from the model page.');
  }
  return raw as TokenizerConfigJson;
}

/** Finds the metaspace replacement character (normally "▁") if the tokenizer uses one. */
export function metaspaceReplacement(j: TokenizerJson): string | undefined {
  const visit = (c: ComponentJson | null | undefined): string | undefined => {
    if (!c) return undefined;
    if (c.type === 'Metaspace') return (c.replacement as string | undefined) ?? (c.str_rep as string | undefined) ?? '▁';
    if (c.type === 'Replace' && typeof c.content === 'string' && [...c.content].length === 1 && c.content !== ' ') {
      const pat = c.pattern as { String?: string } | undefined;
      if (pat?.String === ' ') return c.content;
    }
    const kids = (c.normalizers ?? c.pretokenizers) as ComponentJson[] | undefined;
    if (Array.isArray(kids)) for (const k of kids) { const r = visit(k); if (r) return r; }
    return undefined;
  };
  return visit(j.pre_tokenizer) ?? visit(j.normalizer);
}

/** True when the pre-tokenizer maps bytes to printable characters (GPT-2 style). */
export function usesByteLevel(j: TokenizerJson): boolean {
  const visit = (c: ComponentJson | null | undefined): boolean => {
    if (!c) return false;
    if (c.type === 'ByteLevel') return true;
    const kids = c.pretokenizers as ComponentJson[] | undefined;
    return Array.isArray(kids) && kids.some(visit);
  };
  return visit(j.pre_tokenizer);
}
