/**
 * GGUF metadata for a model: the architecture keys llama.cpp's loader reads ({arch}.context_length, ...),
 * and the tokenizer (tokenizer.ggml.*) built from the Hugging Face tokenizer.json / tokenizer_config.json.
 *
 * Tokenizer: byte-level BPE tokenizers become tokenizer.ggml.model "gpt2" with tokens, token_type and merges.
 * llama.cpp picks its pre-tokenizer (the regex split before BPE) from tokenizer.ggml.pre, so we read the
 * tokenizer.json pre_tokenizer and name the llama.cpp pre-tokenizer that splits identically (detectPre);
 * one llama.cpp does not know is refused rather than written as a file that would tokenize differently.
 * An extended tokenizer (new merges appended, ids kept) keeps its base's pre_tokenizer, so it maps the same.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Family, ModelConfig } from '../../engine/models/config';
import { LatheTokenizer } from '../../tokenizer/tokenizer';
import type { ComponentJson } from '../../tokenizer/json';
import { UserError } from '../../util/progress';
import { GGUF_ALIGNMENT, GgufType, FILE_TYPE, type GgufQuant } from './format';
import { kv, type GgufKv } from './writer';
import { ggufArch, llamaCppWindowLayers } from './tensors';

/** ggml token types. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

// The pre-tokenizer regexes of the base families, as their tokenizer.json spells them.
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** llama.cpp pre-tokenizer names Lathe can map to, with the tokenizer.json shape each stands for. */
export const KNOWN_PRE = {
  'gpt-2': 'ByteLevel with its built-in GPT-2 regex (GPT-2, the tiny Lathe models)',
  'llama-bpe': 'Split on the Llama 3 regex, then ByteLevel (Llama 3.x, SmolLM3)',
  qwen2: 'Split on the Qwen2 regex, then ByteLevel (Qwen2, Qwen2.5, Qwen3)',
  smollm: 'Digits (each digit alone), then ByteLevel with the GPT-2 regex (SmolLM, SmolLM2)',
} as const;
export type PreName = keyof typeof KNOWN_PRE;

function isByteLevel(c: ComponentJson | undefined, useRegex: boolean): boolean {
  return !!c && c.type === 'ByteLevel' && (c['use_regex'] ?? true) === useRegex && !c['add_prefix_space'];
}

function splitRegex(c: ComponentJson | undefined): string | null {
  if (!c || c.type !== 'Split') return null;
  const p = c['pattern'] as { Regex?: string } | undefined;
  return typeof p?.Regex === 'string' ? p.Regex : null;
}

/** The llama.cpp pre-tokenizer equivalent to a byte-level tokenizer.json's pre_tokenizer, or a reason why none is. */
export function detectPre(pre: ComponentJson | null): { pre: PreName } | { reason: string } {
  if (!pre) return { reason: 'it has no pre_tokenizer' };
  if (isByteLevel(pre, true)) return { pre: 'gpt-2' };
  if (pre.type === 'Sequence' && Array.isArray(pre['pretokenizers'])) {
    const seq = pre['pretokenizers'] as ComponentJson[];
    if (seq.length === 2 && isByteLevel(seq[1], false)) {
      const re = splitRegex(seq[0]);
      if (re === LLAMA3_REGEX) return { pre: 'llama-bpe' };
      if (re === QWEN2_REGEX) return { pre: 'qwen2' };
      if (re !== null) return { reason: `its Split regex ${JSON.stringify(re.slice(0, 80))} matches no pre-tokenizer Lathe maps to llama.cpp` };
    }
    if (seq.length === 2 && seq[0]?.type === 'Digits' && seq[0]['individual_digits'] === true && isByteLevel(seq[1], true)) return { pre: 'smollm' };
  }
  return { reason: `its pre_tokenizer (${pre.type}) matches none Lathe maps to llama.cpp` };
}

/**
 * A SentencePiece-style BPE (tokenizer.json model BPE with byte_fallback, as Llama 2, Mistral, TinyLlama and Gemma
 * ship it) as llama.cpp's "llama" (SPM) tokenizer runs it: the text, with " " → "▁" and (add_space_prefix) a "▁"
 * in front of it and of the text after each special token, split into characters, then merged pairwise by the
 * highest score of the merged token, characters not in the vocabulary becoming <0xXX> byte tokens. Hugging Face's
 * BPE merges by merge rank, so each merged token's score is −(its merge's rank + 1). The shapes accepted: the
 * normalizer Prepend("▁") + Replace(" ", "▁") (Llama 2, TinyLlama) or Replace alone (Gemma: no prefix), or the
 * Metaspace pre-tokenizer without splitting (Mistral). Returns add_space_prefix, or why llama.cpp cannot follow.
 */
export function detectSpm(json: LatheTokenizer['json']): { addSpacePrefix: boolean; prefixAfterSpecial: boolean } | { reason: string } {
  const n = json.normalizer, p = json.pre_tokenizer;
  const isReplace = (c: ComponentJson | undefined): boolean => c?.type === 'Replace' && (c['pattern'] as { String?: string } | undefined)?.String === ' ' && c['content'] === '\u2581';
  const isPrepend = (c: ComponentJson | undefined): boolean => c?.type === 'Prepend' && c['prepend'] === '\u2581';
  if (n && !p) {
    const seq = n.type === 'Sequence' ? (n['normalizers'] as ComponentJson[]) : [n];
    // Hugging Face normalizes each stretch between special tokens on its own, so "▁" is prepended after each, as in llama.cpp.
    if (seq.length === 2 && isPrepend(seq[0]) && isReplace(seq[1])) return { addSpacePrefix: true, prefixAfterSpecial: true };
    if (seq.length === 1 && isReplace(seq[0])) return { addSpacePrefix: false, prefixAfterSpecial: true };
    return { reason: `its normalizer (${n.type}${n.type === 'Sequence' ? `: ${seq.map((c) => c.type).join(', ')}` : ''}) is not the SentencePiece one llama.cpp applies` };
  }
  if (!n && p?.type === 'Metaspace' && p['replacement'] === '\u2581' && p['split'] === false) {
    const scheme = p['prepend_scheme'] ?? (p['add_prefix_space'] === false ? 'never' : 'always');
    if (scheme === 'never') return { addSpacePrefix: false, prefixAfterSpecial: true };
    // "first": Hugging Face prepends "▁" at the start of the text only; llama.cpp also after every special token.
    return { addSpacePrefix: true, prefixAfterSpecial: scheme !== 'first' };
  }
  return { reason: `its normalizer/pre-tokenizer (${n?.type ?? 'none'} / ${p?.type ?? 'none'}) is not a SentencePiece shape llama.cpp applies` };
}

export interface TokenizerMeta {
  kvs: GgufKv[];
  tokenizer: LatheTokenizer;
  /** tokenizer.ggml.pre ('default' for SentencePiece-style tokenizers). */
  pre: PreName | 'default';
  chatTemplate: string | null;
  eogIds: number[];
  /** The tokenizer NFC-normalizes text first (Qwen2); llama.cpp does not, so the check compares on NFC text. */
  nfc: boolean;
  /**
   * Whether text right after a special token tokenizes alike in llama.cpp (false for Metaspace prepend_scheme
   * "first", warned about): the check's second text, with special tokens spliced in, is then left out.
   */
  specialsAlike: boolean;
  warnings: string[];
}

/** Whether a tokenizer.json normalizer applies NFC (alone or in a Sequence). */
function normalizesNfc(n: ComponentJson | null | undefined): boolean {
  if (!n) return false;
  if (n.type === 'NFC') return true;
  return n.type === 'Sequence' && Array.isArray(n['normalizers']) && (n['normalizers'] as ComponentJson[]).some(normalizesNfc);
}

function chatTemplateOf(dir: string, tok: LatheTokenizer): string | null {
  const ct = (tok.config as { chat_template?: unknown }).chat_template;
  if (typeof ct === 'string' && ct.length > 0) return ct;
  if (Array.isArray(ct)) {
    const d = ct.find((x: { name?: string; template?: string }) => x?.name === 'default') as { template?: string } | undefined;
    if (typeof d?.template === 'string') return d.template;
  }
  const f = path.join(dir, 'chat_template.jinja');
  return existsSync(f) ? readFileSync(f, 'utf8') : null;
}

/** tokenizer.ggml.* keys for a model with `vocab` embedding rows. */
export async function tokenizerMetadata(dir: string, vocab: number, cfg: ModelConfig): Promise<TokenizerMeta> {
  const tok = LatheTokenizer.fromDir(dir);
  if (tok.vocabSize > vocab) {
    throw new UserError('gguf.tokenizer-too-big', `The tokenizer in ${dir} has ${tok.vocabSize} tokens but the model only ${vocab} embedding rows.`,
      'Export with the tokenizer the run was trained with (the model\'s own, or the extended one of the run).');
  }
  if (tok.kind === 'byte-fallback') return spmMetadata(dir, tok, vocab, cfg);
  if (tok.kind !== 'byte-level') {
    throw new UserError('gguf.tokenizer-unsupported',
      'GGUF export supports byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, SmolLM) and SentencePiece-style ones with byte fallback (Llama 2, Mistral, TinyLlama, Gemma); this one is a plain BPE.',
      'Export as a merged Hugging Face model and convert it with llama.cpp\'s convert_hf_to_gguf.py, or pick a model with a byte-level tokenizer.');
  }
  const d = detectPre(tok.json.pre_tokenizer);
  if ('reason' in d) {
    throw new UserError('gguf.pre-tokenizer-unknown',
      `llama.cpp would split text differently from this tokenizer: ${d.reason}.`,
      `Lathe writes GGUF for tokenizers whose pre-tokenizer llama.cpp knows: ${Object.entries(KNOWN_PRE).map(([k, v]) => `${k} (${v})`).join('; ')}. Export as a merged Hugging Face model instead.`);
  }
  const { tokens, types } = tokenTable(tok, vocab);
  const merges = tok.merges.map(([a, b]) => `${a} ${b}`);
  const sk = await specialKeys(dir, tok, vocab, cfg);
  const kvs: GgufKv[] = [
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', d.pre),
    kv.arr('tokenizer.ggml.tokens', GgufType.STRING, tokens),
    kv.arr('tokenizer.ggml.token_type', GgufType.INT32, types),
    kv.arr('tokenizer.ggml.merges', GgufType.STRING, merges),
    ...sk.kvs,
  ];
  const { chatTemplate, eogIds } = sk;
  const nfc = normalizesNfc(tok.json.normalizer);
  const warnings = nfc ? ['This tokenizer NFC-normalizes text before splitting it; llama.cpp does not (its behaviour for every Qwen2-style GGUF), so text with decomposed accents (e.g. "e" + U+0301) tokenizes differently there. Text in the usual composed form is unaffected (the check runs on NFC text).'] : [];
  return { kvs, tokenizer: tok, pre: d.pre, chatTemplate, eogIds, nfc, specialsAlike: true, warnings };
}

/**
 * Every id's token text ("[PADn]" where the tokenizer has none: UNUSED) and its llama.cpp type: special
 * tokens (added as special, or among the tokenizer's special ids) CONTROL, other added tokens USER_DEFINED,
 * the rest NORMAL. The SentencePiece table refines it (UNKNOWN, BYTE).
 */
function tokenTable(tok: LatheTokenizer, vocab: number): { tokens: string[]; types: Int32Array } {
  const tokens: string[] = new Array(vocab);
  const types = new Int32Array(vocab);
  const added = new Map(tok.addedTokens.map((a) => [a.id, a]));
  for (let id = 0; id < vocab; id++) {
    const t = tok.idToToken(id);
    if (t === undefined) { tokens[id] = `[PAD${id}]`; types[id] = TokenType.UNUSED; continue; }
    tokens[id] = t;
    const a = added.get(id);
    types[id] = a?.special || tok.specialIds.has(id) ? TokenType.CONTROL : a ? TokenType.USER_DEFINED : TokenType.NORMAL;
  }
  return { tokens, types };
}

/** bos/eos/unk/pad ids, add_bos/add_eos (asked of the tokenizer itself), chat template, end-of-generation ids. */
async function specialKeys(dir: string, tok: LatheTokenizer, vocab: number, cfg: ModelConfig): Promise<{ kvs: GgufKv[]; chatTemplate: string | null; eogIds: number[] }> {
  const plain = (await tok.encode('a', { addSpecialTokens: false })).ids;
  const withSpecial = (await tok.encode('a', { addSpecialTokens: true })).ids;
  const addBos = tok.bosId !== undefined && withSpecial.length > plain.length && withSpecial[0] === tok.bosId;
  const addEos = tok.eosId !== undefined && withSpecial.length > plain.length && withSpecial[withSpecial.length - 1] === tok.eosId;
  const kvs: GgufKv[] = [];
  const bos = tok.bosId ?? cfg.bosTokenId ?? undefined;
  const eos = tok.eosId ?? cfg.eosTokenIds[0];
  if (bos !== undefined && bos < vocab) kvs.push(kv.u32('tokenizer.ggml.bos_token_id', bos));
  if (eos !== undefined && eos < vocab) kvs.push(kv.u32('tokenizer.ggml.eos_token_id', eos));
  if (tok.unkId !== undefined) kvs.push(kv.u32('tokenizer.ggml.unknown_token_id', tok.unkId));
  const pad = tok.padId ?? cfg.padTokenId ?? undefined;
  if (pad !== undefined && pad < vocab) kvs.push(kv.u32('tokenizer.ggml.padding_token_id', pad));
  kvs.push(kv.bool('tokenizer.ggml.add_bos_token', addBos), kv.bool('tokenizer.ggml.add_eos_token', addEos));
  const chatTemplate = chatTemplateOf(dir, tok);
  if (chatTemplate) kvs.push(kv.str('tokenizer.chat_template', chatTemplate));
  const eogIds = [...new Set([eos, ...cfg.eosTokenIds].filter((x): x is number => x !== undefined && x < vocab))];
  return { kvs, chatTemplate, eogIds };
}

/** tokenizer.ggml.model "llama" (SentencePiece) for a byte-fallback BPE: tokens, scores, token types (see detectSpm). */
async function spmMetadata(dir: string, tok: LatheTokenizer, vocab: number, cfg: ModelConfig): Promise<TokenizerMeta> {
  const d = detectSpm(tok.json);
  if ('reason' in d) {
    throw new UserError('gguf.pre-tokenizer-unknown', `llama.cpp would split text differently from this SentencePiece-style tokenizer: ${d.reason}.`,
      'Lathe writes SentencePiece-style tokenizers whose normalizer is Prepend("▁") + Replace(" ", "▁") (Llama 2), Replace alone (Gemma) or whose pre-tokenizer is Metaspace without splitting (Mistral). Export as a merged Hugging Face model instead.');
  }
  const { tokens, types } = tokenTable(tok, vocab);
  const scores = new Float32Array(vocab);
  const rank = new Map<string, number>();
  tok.merges.forEach(([a, b], r) => { if (!rank.has(a + b)) rank.set(a + b, r); });
  for (let id = 0; id < vocab; id++) {
    if (types[id] === TokenType.UNUSED) continue;
    const t = tokens[id]!;
    if (id === tok.unkId) types[id] = TokenType.UNKNOWN;
    else if (types[id] === TokenType.NORMAL && /^<0x[0-9A-F]{2}>$/.test(t)) types[id] = TokenType.BYTE;
    const r = rank.get(t);
    if (r !== undefined && types[id] === TokenType.NORMAL) scores[id] = -(r + 1);
  }
  const sk = await specialKeys(dir, tok, vocab, cfg);
  const kvs: GgufKv[] = [
    kv.str('tokenizer.ggml.model', 'llama'),
    kv.str('tokenizer.ggml.pre', 'default'),
    kv.arr('tokenizer.ggml.tokens', GgufType.STRING, tokens),
    kv.arr('tokenizer.ggml.scores', GgufType.FLOAT32, scores),
    kv.arr('tokenizer.ggml.token_type', GgufType.INT32, types),
    kv.bool('tokenizer.ggml.add_space_prefix', d.addSpacePrefix),
    ...sk.kvs,
  ];
  const warnings = d.prefixAfterSpecial ? [] : ['After a special token llama.cpp puts "▁" (a space) before the text that follows; this tokenizer (Metaspace, prepend_scheme "first") does not, so text glued to a special token, such as a chat turn, may tokenize differently there (llama.cpp\'s behaviour for every such GGUF). Plain text is unaffected (checked).'];
  return { kvs, tokenizer: tok, pre: 'default', chatTemplate: sk.chatTemplate, eogIds: sk.eogIds, nfc: false, specialsAlike: d.prefixAfterSpecial, warnings };
}

/** general.* and {arch}.* keys. */
export function architectureMetadata(cfg: ModelConfig, quant: GgufQuant, name: string): GgufKv[] {
  const arch = ggufArch(cfg);
  const a = (k: string): string => `${arch}.${k}`;
  const kvs: GgufKv[] = [
    kv.str('general.architecture', arch),
    kv.str('general.type', 'model'),
    kv.str('general.name', name),
    kv.u32('general.file_type', FILE_TYPE[quant]),
    kv.u32('general.quantization_version', 2),
    kv.u32('general.alignment', GGUF_ALIGNMENT),
    kv.u32(a('context_length'), cfg.maxPositions),
    kv.u32(a('embedding_length'), cfg.hiddenSize),
    kv.u32(a('block_count'), cfg.numLayers),
    kv.u32(a('feed_forward_length'), cfg.intermediateSize),
    kv.u32(a('attention.head_count'), cfg.numHeads),
  ];
  if (cfg.family === 'gpt2') {
    kvs.push(kv.f32(a('attention.layer_norm_epsilon'), cfg.normEps));
    return kvs;
  }
  kvs.push(
    kv.u32(a('attention.head_count_kv'), cfg.numKvHeads),
    kv.f32(a('attention.layer_norm_rms_epsilon'), cfg.normEps),
    kv.u32(a('rope.dimension_count'), cfg.rope!.rotaryDim ?? cfg.headDim),
    kv.f32(a('rope.freq_base'), cfg.rope!.theta),
  );
  if (cfg.family === 'granite') {
    // llama.cpp multiplies the embeddings by embedding_scale, each residual branch by residual_scale, scores by
    // attention.scale, and DIVIDES the logits by logit_scale (Granite's logits_scaling; Lathe's logitScale = 1/it).
    kvs.push(kv.f32(a('embedding_scale'), cfg.embedScale), kv.f32(a('residual_scale'), cfg.residualScale),
      kv.f32(a('attention.scale'), cfg.attnScale), kv.f32(a('logit_scale'), 1 / cfg.logitScale));
  }
  if (cfg.family === 'gemma2' || cfg.family === 'gemma3') {
    // Sliding windows as llama.cpp's graphs place them (checkSupported); the attention scale is folded into the
    // weights (qScaleFold), the (1 + w) of the norms too (tensors.ts).
    if (cfg.slidingWindow !== null) kvs.push(kv.u32(a('attention.sliding_window'), cfg.slidingWindow));
    if (cfg.attnSoftcap !== null) kvs.push(kv.f32(a('attn_logit_softcapping'), cfg.attnSoftcap));
    if (cfg.finalSoftcap !== null) kvs.push(kv.f32(a('final_logit_softcapping'), cfg.finalSoftcap));
    if (cfg.localRope) kvs.push(kv.f32(a('rope.freq_base_swa'), cfg.localRope.theta));
  }
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize || cfg.family === 'qwen3' || cfg.family === 'gemma2' || cfg.family === 'gemma3') {
    kvs.push(kv.u32(a('attention.key_length'), cfg.headDim), kv.u32(a('attention.value_length'), cfg.headDim));
  }
  const sc = cfg.rope!.scaling;
  if (sc?.type === 'longrope') {
    // The factors travel as rope_factors_long/short tensors; llama.cpp multiplies cos/sin by attn_factor.
    kvs.push(kv.u32(a('rope.scaling.original_context_length'), sc.originalMaxPositions), kv.f32(a('rope.scaling.attn_factor'), sc.attentionFactor));
  }
  if (cfg.family === 'phi3' && cfg.slidingWindow !== null) kvs.push(kv.u32(a('attention.sliding_window'), cfg.slidingWindow));
  if (sc?.type === 'linear') kvs.push(kv.str(a('rope.scaling.type'), 'linear'), kv.f32(a('rope.scaling.factor'), sc.factor));
  // llama3 scaling travels as the rope_freqs tensor (per-frequency divisors), as llama.cpp's converter writes it.
  return kvs;
}

/** Llama 3.1-style RoPE scaling as llama.cpp applies it: theta_i is divided by factor_i. */
export function ropeFreqFactors(cfg: ModelConfig, scaledInvFreq: Float64Array): Float32Array {
  const D = cfg.headDim;
  const out = new Float32Array(D / 2);
  for (let i = 0; i < D / 2; i++) out[i] = 1 / cfg.rope!.theta ** ((2 * i) / D) / scaledInvFreq[i]!;
  return out;
}

/**
 * The families Lathe writes as GGUF (each checked against llama.cpp by test/unit/export/gguf), with the names
 * users know them by. Any other family is refused before anything is written.
 */
export const GGUF_FAMILIES: Partial<Record<Family, string>> = {
  llama: 'Llama 2/3.x, TinyLlama, SmolLM2',
  mistral: 'Mistral (and Mistral-Nemo\'s separate head size)',
  granite: 'Granite 3.x',
  olmo2: 'OLMo 2',
  gemma2: 'Gemma 2',
  gemma3: 'Gemma 3 (text)',
  phi3: 'Phi-3.5, Phi-4-mini (without a sliding window shorter than the context)',
  qwen2: 'Qwen2/2.5',
  qwen3: 'Qwen3',
  smollm3: 'SmolLM3 (llama.cpp\'s every-4th-layer NoPE pattern)',
  gpt2: 'GPT-2',
};

/** "llama (Llama 2/3.x, ...), mistral (...), ..." for messages and hints. */
export function ggufFamiliesText(): string {
  return Object.entries(GGUF_FAMILIES).map(([f, what]) => `${f} (${what})`).join(', ');
}

/**
 * Features of Lathe's engine that none of the supported llama.cpp architectures runs; a model of a supported
 * family that somehow carries one is refused rather than written as a file llama.cpp would run differently.
 */
function unexpressedFeature(cfg: ModelConfig): string | null {
  const gemma = cfg.family === 'gemma2' || cfg.family === 'gemma3';
  const placement = cfg.family === 'olmo2' ? 'post' : gemma ? 'sandwich' : 'pre';
  if (cfg.normPlacement !== placement) return `its norms sit ${cfg.normPlacement === 'post' ? 'after' : cfg.normPlacement === 'pre' ? 'before' : 'around'} attention and MLP`;
  if (cfg.normUnitOffset !== gemma) return `its RMSNorm scales by ${cfg.normUnitOffset ? '(1 + w)' : 'w'}`;
  if (cfg.activation !== (gemma ? 'gelu_pytorch_tanh' : cfg.activation)) return `it uses ${cfg.activation}`;
  const scaled = cfg.family === 'granite'; // granite.embedding_scale / residual_scale / attention.scale / logit_scale
  const embedScale = gemma ? Math.sqrt(cfg.hiddenSize) : 1; // llama.cpp's gemma graphs scale by √C themselves
  if (!scaled && (Math.abs(cfg.embedScale - embedScale) > 1e-6 * embedScale || cfg.residualScale !== 1 || cfg.logitScale !== 1)) return 'it scales embeddings, residuals or logits';
  if (cfg.attnSoftcap !== null && cfg.family !== 'gemma2') return 'it soft-caps attention scores';
  if (cfg.finalSoftcap !== null && cfg.family !== 'gemma2') return 'it soft-caps the logits';
  // llama.cpp's gemma2 graph always caps (30 / 50 when the file has no value), so a Gemma 2 without caps cannot be said.
  if (cfg.family === 'gemma2' && (cfg.attnSoftcap === null || cfg.finalSoftcap === null)) return 'it has no attention or logit soft-cap, which llama.cpp\'s gemma2 always applies';
  // Gemma's attention scale is folded into the weights (qScaleFold).
  if (!scaled && !gemma && Math.abs(cfg.attnScale * Math.sqrt(cfg.headDim) - 1) > 1e-6) return 'its attention scale is not 1/sqrt(head size)';
  if (cfg.family === 'phi3' && cfg.slidingWindow !== null && cfg.slidingWindow < cfg.maxPositions) {
    // Measured: llama.cpp refuses a tiny Phi-3 with a 6-token window, and runs another one differently.
    return `llama.cpp's phi3 does not run its ${cfg.slidingWindow}-token sliding window as Lathe does (the context is ${cfg.maxPositions})`;
  }
  const win = llamaCppWindowLayers(cfg);
  if (win && cfg.slidingWindow !== null && cfg.slidingWindow < cfg.maxPositions && cfg.windowLayers.some((w, i) => w !== win[i])) {
    return `llama.cpp's ${cfg.family} puts the sliding window on layers ${win.map((w, i) => (w ? i : null)).filter((x) => x !== null).join(', ') || 'none'}; this model on ${cfg.windowLayers.map((w, i) => (w ? i : null)).filter((x) => x !== null).join(', ') || 'none'}`;
  }
  if (cfg.localRope && (cfg.family !== 'gemma3' || cfg.localRope.theta !== 10000 || cfg.localRope.scaling !== null)) {
    return 'its sliding-window layers use a RoPE other than llama.cpp\'s (base 10000, unscaled)';
  }
  if (cfg.family !== 'phi3' && cfg.rope?.rotaryDim !== undefined && cfg.rope.rotaryDim !== cfg.headDim) return 'RoPE rotates only part of each head';
  if (cfg.family !== 'phi3' && cfg.rope?.scaling?.type === 'longrope') return 'it uses longrope RoPE scaling';
  if (cfg.qkNorm && cfg.qkNormScope !== (cfg.family === 'olmo2' ? 'all' : 'head')) return `its q/k norms span ${cfg.qkNormScope === 'all' ? 'the whole projection' : 'each head'}`;
  return null;
}

/** Architectures whose GGUF llama.cpp runs as Lathe's engine does; the reason otherwise. */
export function checkSupported(cfg: ModelConfig): string | null {
  if (!GGUF_FAMILIES[cfg.family]) {
    return `Lathe does not write GGUF for the ${cfg.family} family (${cfg.architecture}) yet`;
  }
  const feature = unexpressedFeature(cfg);
  if (feature) return `llama.cpp's ${cfg.family} architecture cannot run this model as Lathe does: ${feature}`;
  if (cfg.family === 'smollm3') {
    // llama.cpp's smollm3 skips RoPE on every 4th layer (a fixed step); other NoPE patterns cannot be expressed.
    const ok = cfg.ropeLayers.every((r, i) => r === ((i + 1) % 4 !== 0));
    if (!ok) return `llama.cpp runs SmolLM3 with RoPE skipped on every 4th layer only; this model's NoPE layers are ${cfg.ropeLayers.map((r, i) => (r ? null : i)).filter((x) => x !== null).join(', ') || 'none'}`;
  }
  if (cfg.family === 'gpt2' && cfg.activation !== 'gelu_new' && cfg.activation !== 'gelu_pytorch_tanh') {
    return `llama.cpp runs GPT-2 with the tanh GELU; this model uses ${cfg.activation}`;
  }
  if (cfg.mlpBias && cfg.family !== 'gpt2') return 'llama.cpp does not load MLP biases for this architecture';
  if (cfg.oBias && cfg.family !== 'gpt2' && cfg.family !== 'llama' && cfg.family !== 'mistral') return 'llama.cpp does not load an attention output bias for this architecture';
  return null;
}
