/** Shared fixture access for the tokenizer tests. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';

export const ORACLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'oracle', 'tokenizer');
export const FIXTURES = ['llama3', 'gpt2', 'llama2', 'mistral', 'qwen2', 'smollm'] as const;
export type FixtureName = (typeof FIXTURES)[number];

export function fixtureDir(name: FixtureName): string {
  return join(ORACLE, name);
}

/** Texts of a corpus file (paragraphs separated by blank lines). */
export function corpus(name: 'general-train' | 'general-heldout' | 'domain-train' | 'domain-heldout'): string[] {
  return readFileSync(join(ORACLE, 'corpus', `${name}.txt`), 'utf8').split(/\n\s*\n/).map((s) => s.trim()).filter((s) => s.length > 0);
}

export interface ExpectedRow {
  text: string;
  ids: number[];
  tokens: string[];
  decoded: string;
}

export function expectedRows(name: FixtureName): ExpectedRow[] {
  return (JSON.parse(readFileSync(join(fixtureDir(name), 'expected.json'), 'utf8')) as { rows: ExpectedRow[] }).rows;
}

/** transformers.js' independent implementation over the same JSON objects. */
export function jsTokenizer(tokenizerJson: unknown, config: unknown): JsTokenizer {
  return new JsTokenizer(structuredClone(tokenizerJson) as object, structuredClone(config ?? {}) as object);
}

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}
