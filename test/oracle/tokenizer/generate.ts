/**
 * Writes the tokenizer fixtures: small corpora from texts.ts, six small BPE tokenizers shaped like real ones
 * (Llama 3, GPT-2, Qwen2 and SmolLM byte-level; Llama 2 and Mistral SentencePiece-style with byte fallback), and for each the
 * encodings Hugging Face's Rust tokenizers gives for a set of varied strings (`expected.json`).
 *
 * The merges are learned on the general corpus by Lathe's own BPE trainer starting from a vocab of only the
 * alphabet (continued BPE from nothing is ordinary BPE); the JSON around them is built here by hand, field by
 * field as the real files have it. Run: npx tsx test/oracle/tokenizer/generate.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tokenizers from 'tokenizers';
import type { TokenizerConfigJson, TokenizerJson } from '../../../src-main/tokenizer/json';
import { LatheTokenizer } from '../../../src-main/tokenizer/tokenizer';
import { trainDomainCandidates } from '../../../src-main/tokenizer/train';
import { DOMAIN_SENTENCES, GENERAL_SENTENCES, paragraphs, varietyStrings } from './texts';

const HERE = dirname(fileURLToPath(import.meta.url));

export const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const added = (id: number, content: string, special = true) =>
  ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });

function bpeModel(vocab: Record<string, number>, extra: Partial<TokenizerJson['model']> = {}): TokenizerJson['model'] {
  return { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [], ...extra };
}

/** GPT-2's byte order: ids 0..255 are the byte-level alphabet sorted by byte value. */
function byteAlphabetVocab(): Record<string, number> {
  const vocab: Record<string, number> = {};
  const chars = tokenizers.byteLevelAlphabet();
  // byteLevelAlphabet() is unordered; order by the byte each char stands for.
  const byteOf = (c: string): number => {
    const cp = c.codePointAt(0)!;
    return cp >= 256 ? -1 : cp;
  };
  const printable = chars.filter((c) => byteOf(c) >= 0).sort((a, b) => byteOf(a) - byteOf(b));
  const shifted = chars.filter((c) => byteOf(c) < 0).sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  // Non-printable bytes 0..32, 127..160, 173 map to U+0100.. in byte order.
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const p = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = p ? String.fromCodePoint(b) : shifted[n++]!;
  }
  if (n !== shifted.length || printable.length + shifted.length !== 256) throw new Error('byte alphabet mismatch');
  table.forEach((c, b) => (vocab[c] = b));
  return vocab;
}

async function learnMerges(base: TokenizerJson, corpus: string[], count: number): Promise<TokenizerJson> {
  const tok = new LatheTokenizer(base, {});
  const res = await trainDomainCandidates(tok, corpus, { maxCandidates: count, minSaving: 2, isolateDigits: false });
  const json = structuredClone(base);
  let next = Math.max(...Object.values(json.model.vocab)) + 1;
  for (const c of res.candidates) {
    // From-scratch training may propose characters the alphabet lacks; the fixtures keep those as bytes.
    if (c.kind !== 'merge' || !c.merge || json.model.vocab[c.merge[0]] === undefined || json.model.vocab[c.merge[1]] === undefined) continue;
    json.model.vocab[c.token] = next++;
    json.model.merges.push([c.merge[0], c.merge[1]]);
  }
  return json;
}

export async function buildByteLevel(kind: 'llama3' | 'gpt2', corpus: string[]): Promise<[TokenizerJson, TokenizerConfigJson]> {
  const pre = kind === 'llama3'
    ? { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] }
    : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const base: TokenizerJson = { version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: pre,
    post_processor: null, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModel(byteAlphabetVocab(), { ignore_merges: kind === 'llama3' }) };
  const json = await learnMerges(base, corpus, kind === 'llama3' ? 600 : 450);
  const n = Math.max(...Object.values(json.model.vocab)) + 1;
  if (kind === 'llama3') {
    // Like Llama 3: specials live after the BPE vocab, in added_tokens only.
    json.added_tokens = [added(n, '<|begin_of_text|>'), added(n + 1, '<|end_of_text|>'), added(n + 2, '<|reserved_special_token_0|>'),
      added(n + 3, '<|start_header_id|>'), added(n + 4, '<|end_header_id|>'), added(n + 5, '<|eot_id|>')];
    json.post_processor = { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [n], tokens: ['<|begin_of_text|>'] } } }] };
    const decoder: Record<string, unknown> = {};
    for (const t of json.added_tokens) decoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
    return [json, { added_tokens_decoder: decoder, bos_token: '<|begin_of_text|>', clean_up_tokenization_spaces: true,
      eos_token: '<|end_of_text|>', model_input_names: ['input_ids', 'attention_mask'], model_max_length: 131072,
      tokenizer_class: 'PreTrainedTokenizerFast' } as TokenizerConfigJson];
  }
  // GPT-2 style: one <|endoftext|> at the end, merges in the old "a b" string form.
  json.added_tokens = [added(n, '<|endoftext|>')];
  json.model.merges = json.model.merges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  json.post_processor = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
  return [json, { add_prefix_space: false, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>',
    model_max_length: 1024, tokenizer_class: 'GPT2Tokenizer',
    added_tokens_decoder: { [String(n)]: { content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false, special: true } } } as TokenizerConfigJson];
}

export async function buildSpm(kind: 'llama2' | 'mistral', corpus: string[]): Promise<[TokenizerJson, TokenizerConfigJson]> {
  // Llama 2 layout: <unk> <s> </s> at 0..2, <0x00>..<0xFF> at 3..258, then "▁" and characters, then merges.
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  let next = 259;
  vocab['▁'] = next++;
  const freq = new Map<string, number>();
  for (const t of corpus) for (const ch of t) if (ch !== ' ') freq.set(ch, (freq.get(ch) ?? 0) + 1);
  // Characters seen at least 5 times join the alphabet (SentencePiece's character coverage, roughly);
  // rarer ones, and everything the general corpus never shows (µ, Ø, °, emoji, CJK), fall back to bytes.
  for (const [ch] of [...freq.entries()].filter(([, c]) => c >= 5).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) vocab[ch] = next++;
  const model = bpeModel(vocab, { unk_token: '<unk>', fuse_unk: true, byte_fallback: true });
  const common = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    decoder: kind === 'llama2'
      ? { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 }] }
      : { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    post_processor: { type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
  };
  const base: TokenizerJson = kind === 'llama2'
    ? { ...common, normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null, model }
    : { ...common, normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, model };
  const json = await learnMerges(base, corpus, 450);
  if (kind === 'llama2') json.model.merges = json.model.merges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  const tok = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  const dec: Record<string, unknown> = {};
  for (const t of json.added_tokens) dec[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  return [json, { add_bos_token: true, add_eos_token: false, added_tokens_decoder: dec, bos_token: tok('<s>'), eos_token: tok('</s>'),
    unk_token: tok('<unk>'), pad_token: null, clean_up_tokenization_spaces: false, legacy: false,
    model_max_length: 1000000000000000019884624838656, sp_model_kwargs: {}, tokenizer_class: 'LlamaTokenizer' } as TokenizerConfigJson];
}

export const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Qwen2: NFC normalizer, its own split regex (single digits), chat specials after the vocab, no bos.
 * SmolLM2: digits split one by one, then GPT-2 ByteLevel; its specials come first, inside the model vocab.
 */
export async function buildChatByteLevel(kind: 'qwen2' | 'smollm', corpus: string[]): Promise<[TokenizerJson, TokenizerConfigJson]> {
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const bytes = byteAlphabetVocab();
  const vocab: Record<string, number> = {};
  if (kind === 'smollm') specials.forEach((t, i) => (vocab[t] = i));
  const shift = kind === 'smollm' ? specials.length : 0;
  for (const [c, id] of Object.entries(bytes)) vocab[c] = id + shift;
  const base: TokenizerJson = kind === 'qwen2'
    ? { version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
      post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      model: bpeModel(vocab) }
    : { version: '1.0', truncation: null, padding: null, added_tokens: specials.map((t, i) => added(i, t)), normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Digits', individual_digits: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] },
      post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpeModel(vocab) };
  const json = await learnMerges(base, corpus, 500);
  const n = Math.max(...Object.values(json.model.vocab)) + 1;
  if (kind === 'qwen2') json.added_tokens = specials.map((t, i) => added(n + i, t));
  const dec: Record<string, unknown> = {};
  for (const t of json.added_tokens) dec[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  return [json, kind === 'qwen2'
    ? { add_prefix_space: false, added_tokens_decoder: dec, additional_special_tokens: ['<|im_start|>', '<|im_end|>'], bos_token: null,
      clean_up_tokenization_spaces: false, eos_token: '<|im_end|>', errors: 'replace', model_max_length: 32768, pad_token: '<|endoftext|>',
      split_special_tokens: false, tokenizer_class: 'Qwen2Tokenizer', unk_token: null } as TokenizerConfigJson
    : { add_prefix_space: false, added_tokens_decoder: dec, additional_special_tokens: ['<|im_start|>', '<|im_end|>'], bos_token: '<|im_start|>',
      clean_up_tokenization_spaces: false, eos_token: '<|im_end|>', model_max_length: 8192, pad_token: '<|im_end|>',
      tokenizer_class: 'GPT2Tokenizer', unk_token: '<|endoftext|>', vocab_size: 49152 } as TokenizerConfigJson];
}

export const FIXTURES = ['llama3', 'gpt2', 'llama2', 'mistral', 'qwen2', 'smollm'] as const;

/** The corpus the fixture merges are learned on. */
export function generalTrainCorpus(): string[] {
  return paragraphs(GENERAL_SENTENCES, 600, 1);
}

export async function buildFixture(name: (typeof FIXTURES)[number]): Promise<[TokenizerJson, TokenizerConfigJson]> {
  const corpus = generalTrainCorpus();
  if (name === 'llama3' || name === 'gpt2') return buildByteLevel(name, corpus);
  if (name === 'qwen2' || name === 'smollm') return buildChatByteLevel(name, corpus);
  return buildSpm(name, corpus);
}

async function main(): Promise<void> {
  const corpusDir = join(HERE, 'corpus');
  mkdirSync(corpusDir, { recursive: true });
  const generalTrain = generalTrainCorpus();
  const corpora: Record<string, string[]> = {
    'general-train': generalTrain,
    'general-heldout': paragraphs(GENERAL_SENTENCES, 60, 2),
    'domain-train': paragraphs(DOMAIN_SENTENCES, 500, 3),
    'domain-heldout': paragraphs(DOMAIN_SENTENCES, 60, 4),
  };
  for (const [name, texts] of Object.entries(corpora)) writeFileSync(join(corpusDir, `${name}.txt`), texts.join('\n\n') + '\n');

  const domainWords = ['tailstock', 'headstock', 'spindle', 'gouge', 'faceplate', 'toolrest', 'micrometer', 'µm', 'Ø 50 mm', '29.5°', '±0.01'];
  const variety = varietyStrings(7, 300, domainWords);
  for (const name of FIXTURES) {
    const [json, config] = await buildFixture(name);
    const dir = join(HERE, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json, null, 1) + '\n');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
    const tok = LatheTokenizer.fromDir(dir);
    const rows = [];
    for (const text of variety) {
      const e = await tok.encode(text, { addSpecialTokens: true });
      rows.push({ text, ids: e.ids, tokens: e.tokens, decoded: await tok.decode(e.ids, { skipSpecialTokens: true }) });
    }
    writeFileSync(join(dir, 'expected.json'), JSON.stringify({ generator: 'test/oracle/tokenizer/generate.ts', reference: 'tokenizers (Rust) npm 0.23.2', rows }, null, 0) + '\n');
    console.log(`${name}: vocab ${tok.vocabSize}, merges ${json.model.merges.length}, ${rows.length} expected rows`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
