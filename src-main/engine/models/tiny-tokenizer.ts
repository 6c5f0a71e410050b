/**
 * A small byte-level BPE tokenizer for tiny test/demo models, built deterministically: 3 special
 * tokens, the 256 byte tokens (GPT-2's byte -> printable char map) and merges learned by plain BPE on a
 * built-in English text, written as a standard tokenizer.json that HF tokenizers loads.
 */

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** ChatML, as SmolLM2/Qwen2 instruct models ship it. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
  + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TRAINING_TEXT = `
The quick brown fox jumps over the lazy dog. A small model learns the shape of the text it is shown:
which letters follow which, which words come together, and how sentences begin and end. Training
makes the loss fall; the held-out loss tells whether the model learned something general or only
memorized the examples. When the training loss keeps falling while the validation loss rises, the
model is overfitting, and it is time to stop. The learning rate sets how large each step is. With a
rate that is too high the loss jumps around; with one that is too low the model learns slowly.
Fine-tuning starts from a model that already knows the language and teaches it the words, the style
and the facts of a new domain. Low-rank adapters change only a few small matrices and leave the rest
of the model as it was, so the training fits on an ordinary graphics card. The user chooses a model,
imports documents, cleans them, and starts a run; the application shows the loss, the learning rate
and the time left. After training, the adapter can be merged into the model and exported, then
loaded in other tools. Questions and answers, instructions and replies, notes and reports: all of
them are text, and all of them can be learned. The weather was cold, the river was high, and the
people of the town went to the market in the morning to buy bread, cheese, apples and fish. In the
evening they read books, wrote letters to their friends, and talked about the news of the day.
Numbers such as 1, 2, 3, 10, 42, 100 and 2024 appear in text too, as do names, dates and places.
`;

/** GPT-2's reversible map from bytes to printable unicode characters. */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const map = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (keep.includes(b)) map[b] = String.fromCodePoint(b);
    else map[b] = String.fromCodePoint(256 + n++);
  }
  return map;
}

/** GPT-2's pre-tokenization regex (what the ByteLevel pre-tokenizer with use_regex applies). */
const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface TinyTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  vocabSize: number;
  ids: { endoftext: number; imStart: number; imEnd: number };
}

/** Builds the tokenizer with `vocabSize` ids in all (fewer if the text runs out of repeated pairs). */
export function buildTinyTokenizer(vocabSize = 512): TinyTokenizerFiles {
  const byteChar = bytesToUnicode();
  const enc = new TextEncoder();
  // Word -> count, words as arrays of byte-chars.
  const counts = new Map<string, number>();
  for (const m of TRAINING_TEXT.match(PRETOKENIZE) ?? []) {
    const w = [...enc.encode(m)].map((b) => byteChar[b]!).join('\u0000');
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  const words = [...counts.entries()].map(([w, c]) => ({ parts: w.split('\u0000'), count: c }));
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => { vocab[t] = i; });
  for (let b = 0; b < 256; b++) vocab[byteChar[b]!] = SPECIAL_TOKENS.length + b;
  let next = SPECIAL_TOKENS.length + 256;
  const merges: string[] = [];
  while (next < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { parts, count } of words) {
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = parts[i] + ' ' + parts[i + 1];
        pairs.set(k, (pairs.get(k) ?? 0) + count);
      }
    }
    // Most frequent pair; ties by string order so the result never depends on map iteration.
    let best: string | null = null;
    let bestCount = 1;
    for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && best !== null && k < best)) { best = k; bestCount = c; }
    if (best === null) break;
    const [a, b] = best.split(' ') as [string, string];
    const merged = a + b;
    if (vocab[merged] !== undefined) break;
    merges.push(best);
    vocab[merged] = next++;
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.parts.length; i++) {
        if (i + 1 < w.parts.length && w.parts[i] === a && w.parts[i + 1] === b) { out.push(merged); i++; } else out.push(w.parts[i]!);
      }
      w.parts = out;
    }
  }
  const added = SPECIAL_TOKENS.map((content, id) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
  const addedDecoder: Record<string, unknown> = {};
  for (const a of added) addedDecoder[String(a.id)] = { content: a.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  const tokenizerConfig = {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: '<|endoftext|>',
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 2048,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizerJson, tokenizerConfig, vocabSize: next, ids: { endoftext: 0, imStart: 1, imEnd: 2 } };
}
