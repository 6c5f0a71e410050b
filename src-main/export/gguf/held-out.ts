/**
 * The held-out text a GGUF check runs on: the run's own validation data when it can be read back as text (the
 * prepared dataset the run trained on, its val split, tokenized with this very tokenizer), else a built-in
 * English paragraph. The result says which and why, so the export report can show it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { MANIFEST, openDataset, type SplitReader } from '../../data/pack/dataset';
import type { LatheTokenizer } from '../../tokenizer/tokenizer';
import type { GgufCheck } from './types';

export const HELD_OUT_TEXT = 'In the spring the farmers of the valley planted barley and beans, and the children walked to school along '
  + 'the river. The teacher asked them to write a short letter about their week: what they had seen, what they had '
  + 'learned, and what they wanted to know next. One wrote about a heron that stood still for an hour; another counted '
  + 'the boats that passed the bridge, 12 on Monday and 7 on Tuesday. When the rain came, they read stories aloud.';

export type HeldOut = { text: string } & GgufCheck['heldOut'];

/** Characters of validation text used (the probabilities use its first 128 tokens; tokenization all of it). */
const MAX_CHARS = 2000;
/** Less validation text than this: the built-in paragraph instead. */
const MIN_CHARS = 200;
const MAX_ROWS = 64;

function builtIn(why: string): HeldOut {
  return { text: HELD_OUT_TEXT, source: 'built-in', note: `built-in English paragraph (${why})` };
}

/**
 * Whether a dataset's recorded tokenizer hash is this tokenizer's: `prepare` records either the tokenizer's
 * content hash (given a LatheTokenizer) or the sha256 of its tokenizer.json (given a folder).
 */
function sameTokenizer(hash: string, tok: LatheTokenizer, tokDir: string): boolean {
  if (hash === tok.contentHash) return true;
  try {
    return hash === createHash('sha256').update(readFileSync(path.join(tokDir, 'tokenizer.json'))).digest('hex');
  } catch {
    return false;
  }
}

/** Token ids of a split's first rows, in order (SFT padding left out). */
function firstIds(r: SplitReader, kind: string): number[] {
  const ids: number[] = [];
  for (let i = 0; i < Math.min(r.rows, MAX_ROWS) && ids.length < 4 * MAX_CHARS; i++) {
    if (kind === 'sft') {
      const row = r.sftRow(i);
      for (let k = 0; k < row.ids.length; k++) if (row.segments[k] !== 0) ids.push(row.ids[k]!);
    } else {
      for (const id of r.row(i)) ids.push(id);
    }
  }
  return ids;
}

/**
 * The validation text of `datasetDir` (documents split at EOS, special tokens dropped, joined by blank lines,
 * cut at a space near MAX_CHARS), or the built-in paragraph with the reason.
 */
export async function heldOutText(datasetDir: string | null | undefined, tok: LatheTokenizer, tokDir: string): Promise<HeldOut> {
  if (!datasetDir || !existsSync(path.join(datasetDir, MANIFEST))) {
    return builtIn(datasetDir ? `the run's dataset ${datasetDir} is not there` : 'the run names no prepared dataset');
  }
  let ds: ReturnType<typeof openDataset>;
  try {
    ds = openDataset(datasetDir);
  } catch (err) {
    return builtIn(`the run's dataset could not be read: ${(err as Error).message}`);
  }
  const { manifest } = ds;
  if (!sameTokenizer(manifest.tokenizer.hash, tok, tokDir)) return builtIn('the run\'s dataset was tokenized with another tokenizer');
  const split = ['val-domain', ...Object.keys(manifest.splits).filter((s) => s.startsWith('val') && s !== 'val-domain')]
    .find((s) => (manifest.splits[s]?.rows ?? 0) > 0);
  if (!split) return builtIn('the run\'s dataset has no validation split');
  const reader = ds.split(split);
  let ids: number[];
  try {
    ids = firstIds(reader, manifest.kind);
  } finally {
    reader.close();
  }
  const docs: number[][] = [[]];
  for (const id of ids) {
    if (id === manifest.tokenizer.eosId) { if (docs[docs.length - 1]!.length) docs.push([]); } else docs[docs.length - 1]!.push(id);
  }
  const texts: string[] = [];
  let chars = 0;
  for (const d of docs) {
    if (chars >= MAX_CHARS) break;
    const t = (await tok.decode(d, { skipSpecialTokens: true })).trim();
    if (!t) continue;
    texts.push(t);
    chars += t.length + 2;
  }
  let text = texts.join('\n\n');
  if (text.length > MAX_CHARS) {
    const cut = text.lastIndexOf(' ', MAX_CHARS);
    text = text.slice(0, cut > MAX_CHARS / 2 ? cut : MAX_CHARS);
  }
  if (text.length < MIN_CHARS) return builtIn(`the run's validation split holds only ${text.length} characters of text`);
  return { text, source: 'validation', note: `the run's validation data: split "${split}" of ${datasetDir} (${text.length} characters, ${texts.length} document${texts.length === 1 ? '' : 's'})` };
}
