/**
 * Merge domain candidates into the base tokenizer: an extended tokenizer.json in which every existing token
 * keeps its id and every new token is a real BPE vocab entry (with its merge, appended after all base merges).
 *
 * Ids: new tokens go after the largest id in use, including added/special tokens placed at the end of the vocab
 * (Llama 3: BPE ids 0..127999, specials 128000..128255 live only in "added_tokens"). Hugging Face's Rust
 * tokenizer does not read added-token ids from the file: it gives an added token that is not in the model vocab
 * the id `model vocab size + k`. Appending new tokens after the specials would leave a gap in the model vocab,
 * and on load the specials would silently move onto the new tokens' ids. So the extended model vocab also lists
 * every added token at its own id: the Rust side then looks their ids up instead of inventing them, and
 * transformers.js (which reads the ids from the file) agrees. No merge produces those strings, and added tokens
 * are split out before BPE runs, so BPE never emits them.
 */
import { mkdirSync, readFileSync, existsSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/progress';
import type { TokenizerConfigJson, TokenizerJson } from './json';
import { LatheTokenizer } from './tokenizer';
import type { Candidate, TrainResult } from './train';

export interface NewToken {
  id: number;
  token: string;
  text: string;
  kind: 'merge' | 'char';
  merge?: [string, string];
  /** Base ids this token replaces: embedding rows to average for its initial embedding. */
  baseIds: number[];
  /** True when the user did not pick it but a picked token is merged from it. */
  intermediate: boolean;
}

export interface ExtensionManifest {
  format: 'lathe-tokenizer-extension';
  version: 1;
  baseHash: string;
  extendedHash: string;
  baseVocabSize: number;
  newVocabSize: number;
  /** Predicted tokens saved on the training corpus (sum of the chosen candidates' savings). */
  predictedSaving: number;
  newTokens: NewToken[];
}

export interface ExtendOptions {
  /** Add the top N candidates (by rank). */
  topN?: number;
  /** Or pick tokens by their model-alphabet string; the parts they are merged from are added too. */
  select?: string[];
}

export interface ExtendResult {
  tokenizer: LatheTokenizer;
  tokenizerJson: TokenizerJson;
  tokenizerConfig: TokenizerConfigJson;
  specialTokensMap: Record<string, unknown>;
  manifest: ExtensionManifest;
}

/** Picks candidates (top N or a selection closed under "is merged from") in rank order. */
export function pickCandidates(train: TrainResult, opts: ExtendOptions): { picked: Candidate[]; intermediate: Set<string> } {
  const byToken = new Map(train.candidates.map((c) => [c.token, c]));
  if (opts.select) {
    const want = new Set<string>();
    const intermediate = new Set<string>();
    const visit = (tok: string, direct: boolean): void => {
      const c = byToken.get(tok);
      if (!c) {
        if (direct) {
          throw new UserError('tokenizer-unknown-candidate', `${JSON.stringify(tok)} is not one of the ${train.candidates.length} learned candidates.`,
            'Pick tokens from the candidate list produced by `lathe tokenizer train`.');
        }
        return; // a base token
      }
      if (want.has(tok)) return;
      want.add(tok);
      if (!direct) intermediate.add(tok);
      if (c.merge) { visit(c.merge[0], false); visit(c.merge[1], false); }
    };
    for (const t of opts.select) visit(t, true);
    for (const t of opts.select) intermediate.delete(t);
    return { picked: train.candidates.filter((c) => want.has(c.token)), intermediate };
  }
  const n = opts.topN ?? 0;
  if (!Number.isInteger(n) || n < 0) {
    throw new UserError('tokenizer-bad-count', `The number of tokens to add must be a whole number of 0 or more, got ${String(opts.topN)}.`, 'Pass e.g. --top 500.');
  }
  // Every prefix of the ranking is closed under merge parts (parts are learned before what they form).
  return { picked: train.candidates.slice(0, n), intermediate: new Set() };
}

export function extendTokenizer(base: LatheTokenizer, train: TrainResult, opts: ExtendOptions): ExtendResult {
  if (train.baseHash !== base.contentHash) {
    throw new UserError('tokenizer-candidates-mismatch',
      'These candidates were learned for a different base tokenizer (its content hash differs).',
      'Run `lathe tokenizer train` again with this model\'s tokenizer.');
  }
  const { picked, intermediate } = pickCandidates(train, opts);
  const json: TokenizerJson = structuredClone(base.json);
  const vocab = json.model.vocab;
  // Give every added token a model-vocab entry at its own id (see the file comment).
  for (const t of json.added_tokens) {
    if (vocab[t.content] === undefined) vocab[t.content] = t.id;
    else if (vocab[t.content] !== t.id) {
      throw new UserError('tokenizer-added-id-mismatch', `Added token ${JSON.stringify(t.content)} has id ${t.id} but the vocab gives it ${vocab[t.content]}.`,
        'The base tokenizer.json is inconsistent; use the original file from the model page.');
    }
  }
  const pairsForm = json.model.merges.length > 0 && Array.isArray(json.model.merges[0]);
  const needPairs = !pairsForm && picked.some((c) => c.merge && (c.merge[0].includes(' ') || c.merge[1].includes(' ')));
  if (needPairs) json.model.merges = json.model.merges.map((m) => (Array.isArray(m) ? m : (m.split(' ') as [string, string])));
  const usePairs = pairsForm || needPairs || json.model.merges.length === 0;

  const newTokens: NewToken[] = [];
  let nextId = base.vocabSize;
  let predicted = 0;
  for (const c of picked) {
    if (vocab[c.token] !== undefined) {
      // Candidates never collide by construction; a hand-edited candidates file could.
      throw new UserError('tokenizer-collision', `Candidate ${JSON.stringify(c.text)} is already a token of the base tokenizer.`,
        'Use a candidate list learned by `lathe tokenizer train` for this tokenizer, unedited.');
    }
    if (c.merge) {
      for (const part of c.merge) {
        if (vocab[part] === undefined) {
          throw new UserError('tokenizer-missing-part', `Candidate ${JSON.stringify(c.text)} is merged from ${JSON.stringify(part)}, which is neither a base token nor an earlier candidate.`,
            'Use a candidate list learned by `lathe tokenizer train` for this tokenizer, unedited.');
        }
      }
      json.model.merges.push(usePairs ? [c.merge[0], c.merge[1]] : `${c.merge[0]} ${c.merge[1]}`);
    }
    const id = nextId++;
    vocab[c.token] = id;
    predicted += c.saving;
    newTokens.push({ id, token: c.token, text: c.text, kind: c.kind, ...(c.merge ? { merge: c.merge } : {}), baseIds: c.baseIds,
      intermediate: intermediate.has(c.token) });
  }
  if (picked.length > 0 && opts.select) predicted = NaN; // savings are only additive along the ranking

  // Ids of existing tokens do not move, so tokenizer_config.json's added_tokens_decoder stays valid as is.
  const tokenizerConfig: TokenizerConfigJson = structuredClone(base.config);
  const specialTokensMap: Record<string, unknown> = {};
  for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'additional_special_tokens'] as const) {
    if (base.config[k] !== undefined) specialTokensMap[k] = structuredClone(base.config[k]);
  }
  const tokenizer = new LatheTokenizer(json, tokenizerConfig, 'the extended tokenizer.json');
  for (const t of newTokens) {
    if (tokenizer.tokenToId(t.token) !== t.id) {
      throw new Error(`internal: new token ${JSON.stringify(t.token)} got id ${String(tokenizer.tokenToId(t.token))}, expected ${t.id}`);
    }
  }
  for (const [tok, id] of Object.entries(base.json.model.vocab)) {
    if (tokenizer.tokenToId(tok) !== id) throw new Error(`internal: base token ${JSON.stringify(tok)} moved from id ${id}`);
  }
  return {
    tokenizer,
    tokenizerJson: json,
    tokenizerConfig,
    specialTokensMap,
    manifest: {
      format: 'lathe-tokenizer-extension',
      version: 1,
      baseHash: base.contentHash,
      extendedHash: tokenizer.contentHash,
      baseVocabSize: base.vocabSize,
      newVocabSize: tokenizer.vocabSize,
      predictedSaving: Number.isNaN(predicted) ? -1 : predicted,
      newTokens,
    },
  };
}

export const EXTENSION_MANIFEST = 'lathe-tokenizer-extension.json';

/**
 * Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and the manifest (plus vocab.json and
 * merges.txt for byte-level models), each atomically. A SentencePiece tokenizer.model cannot carry the new
 * tokens: whoever assembles the model folder must not copy the base's tokenizer.model next to these files.
 */
export function writeExtendedTokenizer(dir: string, r: ExtendResult): string[] {
  mkdirSync(dir, { recursive: true });
  const files: Array<[string, unknown]> = [
    ['tokenizer.json', r.tokenizerJson],
    ['tokenizer_config.json', r.tokenizerConfig],
    ['special_tokens_map.json', r.specialTokensMap],
    [EXTENSION_MANIFEST, r.manifest],
  ];
  const texts: Array<[string, string]> = files.map(([name, value]) =>
    [name, JSON.stringify(value, null, name === 'tokenizer.json' ? undefined : 2) + '\n']);
  if (r.tokenizer.kind === 'byte-level') {
    // GPT-2-style models also ship vocab.json + merges.txt (slow tokenizers, some converters read them);
    // stale copies from the base would silently drop the new tokens, so write extended ones.
    const merges = r.tokenizerJson.model.merges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
    texts.push(['vocab.json', JSON.stringify(r.tokenizerJson.model.vocab) + '\n'], ['merges.txt', `#version: 0.2\n${merges.join('\n')}\n`]);
  }
  const written: string[] = [];
  for (const [name, text] of texts) {
    const path = join(dir, name);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, path);
    written.push(path);
  }
  return written;
}

export function readExtensionManifest(dir: string): ExtensionManifest {
  const path = join(dir, EXTENSION_MANIFEST);
  if (!existsSync(path)) {
    throw new UserError('tokenizer-no-manifest', `${dir} has no ${EXTENSION_MANIFEST}, so it is not a tokenizer extended by Lathe.`,
      'Point at the folder written by `lathe tokenizer extend`.');
  }
  const m = JSON.parse(readFileSync(path, 'utf8')) as ExtensionManifest;
  if (m.format !== 'lathe-tokenizer-extension' || m.version !== 1) {
    throw new UserError('tokenizer-no-manifest', `${path} has format ${JSON.stringify(m.format)} version ${String(m.version)}; expected lathe-tokenizer-extension version 1.`,
      'Re-run `lathe tokenizer extend` with this version of Lathe.');
  }
  return m;
}
