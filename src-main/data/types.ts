/** One document flowing through the pipeline: its text and where it came from (for reports). */
export interface Doc {
  text: string;
  /** "path", "path:line" (JSONL/CSV) or "path#row" (Parquet): enough for a user to find it. */
  source: string;
}

/** A short excerpt of something a step removed or changed, shown in the wizard preview. */
export interface Example {
  source: string;
  /** Why it was removed or what was replaced, in plain words. */
  reason: string;
  /** The first characters of the text (never the whole document). */
  excerpt: string;
}

export function excerpt(text: string, max = 240): string {
  const t = text.length > max ? text.slice(0, max) + '…' : text;
  return t;
}

/** Tokenizer as the data pipeline sees it; src-main/tokenizer satisfies this (see tokenize.ts). */
export interface TokenizerAdapter {
  /** Encodes many texts at once (native tokenizers batch across threads); no special tokens added. */
  encodeBatch(texts: string[]): Promise<ArrayLike<number>[]>;
  eosId: number;
  vocabSize: number;
  /** Identifies the exact tokenizer (sha256 of tokenizer.json); stored in every manifest. */
  hash: string;
  /** Id of a special token by its text, or null (used by the ChatML fallback renderer). */
  tokenToId?(token: string): number | null;
}

/** Renders one conversation into ids and a loss mask (1 = assistant token to learn). The chat-template module satisfies this. */
export type ChatRenderer = (messages: ChatMessage[]) => RenderedChat | Promise<RenderedChat>;
export interface RenderedChat { ids: ArrayLike<number>; mask: ArrayLike<number> }

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}
