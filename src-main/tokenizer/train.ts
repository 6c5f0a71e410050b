/**
 * Domain tokenizer training, as *continued* BPE on top of the base tokenizer.
 *
 * The domain corpus goes through the base's own added-token splitting, normalizer and pre-tokenizer, and each
 * word through the base's BPE model: that is exactly how the base tokenizes it. Training then repeats the BPE
 * step on those segmentations: count adjacent token pairs (weighted by word frequency), merge the most frequent.
 *
 * Why this rather than training a fresh domain BPE and diffing vocabularies: new merges are appended after all
 * base merges, so an extended tokenizer first reproduces the base segmentation and then applies the new merges
 * in order. The simulation here is therefore the extended tokenizer itself, and each candidate's `saving` is the
 * number of tokens it removes from the domain corpus, counted, given the candidates ranked before it. Every
 * merge joins two tokens that already exist (base or earlier candidates), so any top-N prefix is self-contained.
 *
 * Byte-fallback tokenizers (Llama 2 style) never merge <0xNN> byte tokens (the ByteFallback decoder could not
 * decode "<0xE2><0x82>" as one token). A character spelled in bytes becomes a `char` candidate instead: adding
 * the character itself to the vocab, which saves (bytes - 1) tokens per occurrence and makes it mergeable.
 */
import { throwIfCancelled, UserError, type WorkOptions } from '../util/progress';
import { displayToken } from './display';
import { isByteToken, type LatheTokenizer } from './tokenizer';

export interface TrainOptions extends WorkOptions {
  /** How many candidates to learn at most (the user picks N of them later). Default 2000. */
  maxCandidates?: number;
  /** Stop when the best candidate saves fewer tokens than this on the corpus. Default 2. */
  minSaving?: number;
  /**
   * Never merge digits with anything. 'auto' (default): when no base token of two or more characters holds a
   * digit, the base was trained to keep digits apart (Llama 2's SentencePiece split_digits, Qwen's regex),
   * and new tokens must not change how it reads numbers.
   */
  isolateDigits?: boolean | 'auto';
}

export interface Candidate {
  /** 1-based order of learning; savings never increase with rank. */
  rank: number;
  /** The token in the model's alphabet ("Ġlathe", "▁lathe"). */
  token: string;
  /** The same as readable text. */
  text: string;
  /** 'merge': a BPE merge of two existing tokens; 'char': a character the base only had as <0xNN> bytes. */
  kind: 'merge' | 'char';
  /** For merges: the two parts, each a base token or an earlier candidate. */
  merge?: [string, string];
  /** Tokens removed from the domain corpus by adding this one after ranks 1..rank-1. */
  saving: number;
  /** Sum of savings of ranks 1..rank: what "add the top `rank`" saves on the training corpus. */
  cumulativeSaving: number;
  /** The base token ids this token stands for (what it replaces; embedding init uses them). */
  baseIds: number[];
}

export interface SkippedCandidate {
  token: string;
  text: string;
  reason: 'exists-in-base' | 'exists-as-candidate';
  /** How many tokens merging it would have saved when it came up. */
  saving: number;
}

export interface CorpusStats {
  texts: number;
  /** Pre-tokenizer words (plain text between added tokens). */
  words: number;
  uniqueWords: number;
  /** Tokens the base tokenizer uses for the corpus (no bos/eos, added tokens not counted). */
  baseTokens: number;
  /** Occurrences of added/special tokens in the corpus: split out, never merged. */
  specialTokensSeen: number;
}

export interface TrainResult {
  format: 'lathe-domain-candidates';
  version: 1;
  /** contentHash of the base tokenizer the candidates were learned for. */
  baseHash: string;
  baseVocabSize: number;
  corpus: CorpusStats;
  candidates: Candidate[];
  skipped: SkippedCandidate[];
  /** Whether merges touching digits were ruled out (see TrainOptions.isolateDigits). */
  digitsIsolated: boolean;
}

/** Word -> count over a corpus, using the base's added-token splitting, normalizer and pre-tokenizer. */
export async function countWords(
  base: LatheTokenizer,
  texts: Iterable<string> | AsyncIterable<string>,
  opts: WorkOptions = {},
): Promise<{ counts: Map<string, number>; texts: number; words: number; specialTokensSeen: number }> {
  const counts = new Map<string, number>();
  let n = 0;
  let words = 0;
  let specials = 0;
  const ms = base.metaspace;
  for await (const text of texts) {
    if (++n % 256 === 0) {
      throwIfCancelled(opts.signal);
      opts.onProgress?.({ stage: 'Reading the domain corpus', message: `${n.toLocaleString('en')} texts` });
    }
    const { pieces, removed } = base.splitOnAddedTokens(text);
    specials += removed;
    for (const piece of pieces) {
      for (const pre of base.preTokenize(piece)) {
        // Tokenizers without a pre-tokenizer (Llama 2: normalizer only) hand the whole text to BPE as one
        // "word". Train on words cut before each metaspace run, as SentencePiece does; merges never start
        // with the metaspace on the right, so they cannot join two words in the full text either.
        for (const w of ms ? splitAtMetaspace(pre, ms) : [pre]) {
          counts.set(w, (counts.get(w) ?? 0) + 1);
          words++;
        }
      }
    }
  }
  return { counts, texts: n, words, specialTokensSeen: specials };
}

export function splitAtMetaspace(s: string, ms: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 1; i < s.length; i++) {
    if (s[i] === ms && s[i - 1] !== ms) {
      out.push(s.slice(start, i));
      start = i;
    }
  }
  if (s.length > start) out.push(s.slice(start));
  return out;
}

// Pair keys: two symbol ids packed into one number (ids stay below 2^22 = 4M).
const SHIFT = 4194304;
const pairKey = (a: number, b: number): number => a * SHIFT + b;

/** A max-heap of [count, key] with lazy deletion: stale entries are skipped when popped. */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];
  private better(i: number, j: number): boolean {
    const ci = this.counts[i]!, cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!); // ties: smaller ids first, deterministic
  }
  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.better(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  peek(): [number, number] | undefined {
    return this.counts.length ? [this.counts[0]!, this.keys[0]!] : undefined;
  }
  pop(): void {
    const last = this.counts.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.keys.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < this.counts.length && this.better(l, m)) m = l;
      if (r < this.counts.length && this.better(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}

/**
 * Learns ranked candidate tokens for `base` from a domain corpus. Throws UserError for an empty corpus.
 */
export async function trainDomainCandidates(
  base: LatheTokenizer,
  texts: Iterable<string> | AsyncIterable<string>,
  opts: TrainOptions = {},
): Promise<TrainResult> {
  const maxCandidates = opts.maxCandidates ?? 2000;
  const minSaving = Math.max(1, opts.minSaving ?? 2);
  const counted = await countWords(base, texts, opts);
  if (counted.words === 0) {
    throw new UserError('tokenizer-empty-corpus',
      counted.texts === 0 ? 'The domain corpus is empty: no texts were found.' : `The domain corpus has ${counted.texts} texts but no words outside special tokens.`,
      'Prepare a domain corpus with some text in it (a few hundred kilobytes or more gives useful tokens).');
  }
  opts.onProgress?.({ stage: 'Tokenizing with the base tokenizer', fraction: 0 });
  const uniq = [...counted.counts.keys()];
  const freq = uniq.map((w) => counted.counts.get(w)!);
  const segs = await base.segmentWords(uniq);
  throwIfCancelled(opts.signal);

  // Symbol table: base ids keep their id; pending chars and candidates get ids from vocabSize up.
  const strOf = new Map<number, string>();
  const baseIdsOf = new Map<number, number[]>();
  const str = (id: number): string => strOf.get(id) ?? base.idToToken(id) ?? '';
  const baseIds = (id: number): number[] => baseIdsOf.get(id) ?? [id];
  let nextId = base.vocabSize;
  // Symbols that may not take part in a merge: <0xNN> bytes, unk, added tokens, pending chars.
  const frozen = new Set<number>();
  for (const t of base.addedTokens) frozen.add(t.id);
  if (base.unkId !== undefined) frozen.add(base.unkId);
  if (base.json.model.unk_token) { const u = base.tokenToId(base.json.model.unk_token); if (u !== undefined) frozen.add(u); }

  // Byte-fallback: regroup runs of <0xNN> tokens into characters ("pending chars", weight = byte count).
  const weight = new Map<number, number>();
  const pendingByChar = new Map<string, number>();
  const pendingCount = new Map<number, number>();
  const isByte = (id: number): boolean => base.kind === 'byte-fallback' && isByteToken(base.idToToken(id) ?? '');
  const words: number[][] = segs.map((ids, w) => {
    if (base.kind !== 'byte-fallback' || !ids.some(isByte)) return ids;
    const out: number[] = [];
    for (let i = 0; i < ids.length;) {
      if (!isByte(ids[i]!)) { out.push(ids[i++]!); continue; }
      let j = i;
      while (j < ids.length && isByte(ids[j]!)) j++;
      const bytes = Uint8Array.from(ids.slice(i, j).map((id) => parseInt(base.idToToken(id)!.slice(3, 5), 16)));
      // Split the byte run into whole UTF-8 characters; invalid leftovers stay as frozen bytes.
      let k = 0;
      while (k < bytes.length) {
        const len = utf8Len(bytes[k]!);
        const ch = len > 0 && k + len <= bytes.length ? decodeStrict(bytes.subarray(k, k + len)) : undefined;
        if (ch === undefined) { out.push(ids[i + k]!); frozen.add(ids[i + k]!); k++; continue; }
        let pid = pendingByChar.get(ch);
        if (pid === undefined) {
          pid = nextId++;
          pendingByChar.set(ch, pid);
          strOf.set(pid, ch);
          baseIdsOf.set(pid, ids.slice(i + k, i + k + len));
          weight.set(pid, len);
          frozen.add(pid);
        }
        pendingCount.set(pid, (pendingCount.get(pid) ?? 0) + freq[w]!);
        out.push(pid);
        k += len;
      }
      i = j;
    }
    return out;
  });
  for (const ids of segs) for (const id of ids) if (isByte(id)) frozen.add(id);

  let baseTokens = 0;
  for (let w = 0; w < words.length; w++) for (const s of words[w]!) baseTokens += (weight.get(s) ?? 1) * freq[w]!;

  const ms = base.metaspace;
  const banned = new Set<number>(); // pairs whose merge would collide with an existing token
  const DIGIT = /\p{Nd}/u;
  const digitsIsolated = opts.isolateDigits === 'auto' || opts.isolateDigits === undefined
    ? !Object.keys(base.modelVocab).some((t) => [...t].length > 1 && DIGIT.test(t) && !isByteToken(t)) && base.json.model.merges.length > 0
    : opts.isolateDigits;
  const hasDigit = new Map<number, boolean>();
  const digitIn = (id: number): boolean => {
    let d = hasDigit.get(id);
    if (d === undefined) hasDigit.set(id, (d = DIGIT.test(str(id))));
    return d;
  };
  const mergeable = (a: number, b: number): boolean =>
    !frozen.has(a) && !frozen.has(b) && !(ms !== undefined && str(b).startsWith(ms)) && !banned.has(pairKey(a, b))
    && !(digitsIsolated && (digitIn(a) || digitIn(b)));

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const heap = new PairHeap();
  /** Adds (sign 1) or removes (-1) word w's pairs; with `only`, just the pairs that involve that symbol. */
  const addPairs = (w: number, sign: 1 | -1, touched: Set<number>, only?: number): void => {
    const s = words[w]!;
    const f = freq[w]! * sign;
    let tookRepeat = false;
    for (let i = 0; i + 1 < s.length; i++) {
      // In a run x x x the pair (x, x) merges once (left to right, no overlap), not twice:
      // count what a merge would really remove, so ranking by count is ranking by saving.
      const repeat = s[i] === s[i + 1];
      if (repeat && tookRepeat && s[i - 1] === s[i]) { tookRepeat = false; continue; }
      tookRepeat = repeat;
      if (only !== undefined && s[i] !== only && s[i + 1] !== only) continue;
      if (!mergeable(s[i]!, s[i + 1]!)) { tookRepeat = false; continue; }
      const k = pairKey(s[i]!, s[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(w);
      }
      touched.add(k);
    }
  };
  const pushTouched = (touched: Set<number>): void => {
    for (const k of touched) { const c = pairCount.get(k)!; if (c > 0) heap.push(c, k); }
  };
  const touched0 = new Set<number>();
  for (let w = 0; w < words.length; w++) addPairs(w, 1, touched0);
  pushTouched(touched0);

  // Pending chars do not change count (they are atomic until added), so one sorted list serves.
  const charQueue = [...pendingCount.entries()]
    .map(([id, c]) => ({ id, saving: c * (weight.get(id)! - 1) }))
    .filter((c) => c.saving > 0)
    .sort((x, y) => y.saving - x.saving || x.id - y.id);
  let charAt = 0;

  const candidates: Candidate[] = [];
  const skipped: SkippedCandidate[] = [];
  const created = new Set<string>();
  let cumulative = 0;
  while (candidates.length < maxCandidates) {
    if (candidates.length % 25 === 0) {
      throwIfCancelled(opts.signal);
      opts.onProgress?.({ stage: 'Learning domain tokens', fraction: candidates.length / maxCandidates,
        message: `${candidates.length} of at most ${maxCandidates} candidates` });
    }
    // Best live pair (drop stale heap entries).
    let top = heap.peek();
    while (top && pairCount.get(top[1]) !== top[0]) { heap.pop(); top = heap.peek(); }
    const pairSaving = top ? top[0] : 0;
    const charSaving = charAt < charQueue.length ? charQueue[charAt]!.saving : 0;
    const best = Math.max(pairSaving, charSaving);
    if (best < minSaving) break;

    if (charSaving >= pairSaving) {
      // Add a character the base only spelled in bytes; words holding it gain new pairs.
      const { id } = charQueue[charAt++]!;
      frozen.delete(id);
      weight.delete(id);
      cumulative += charSaving;
      candidates.push({ rank: candidates.length + 1, token: str(id), text: str(id), kind: 'char', saving: charSaving,
        cumulativeSaving: cumulative, baseIds: baseIds(id) });
      created.add(str(id));
      // Its pairs were never counted while it was frozen: count exactly those now.
      const touched = new Set<number>();
      for (let w = 0; w < words.length; w++) if (words[w]!.includes(id)) addPairs(w, 1, touched, id);
      pushTouched(touched);
      continue;
    }

    const key = top![1];
    heap.pop();
    const a = Math.floor(key / SHIFT), b = key % SHIFT;
    const token = str(a) + str(b);
    if (base.tokenToId(token) !== undefined || created.has(token)) {
      // Merging would produce a token the vocab already has: skip it and never count this pair again.
      skipped.push({ token, text: displayToken(token, base.kind, ms), reason: created.has(token) ? 'exists-as-candidate' : 'exists-in-base', saving: pairSaving });
      pairCount.delete(key);
      banned.add(key);
      continue;
    }
    const id = nextId++;
    strOf.set(id, token);
    baseIdsOf.set(id, [...baseIds(a), ...baseIds(b)]);
    created.add(token);
    const touched = new Set<number>();
    let saved = 0;
    for (const w of pairWords.get(key) ?? []) {
      const s = words[w]!;
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue;
      addPairs(w, -1, touched);
      // Left to right, non-overlapping: the order Hugging Face's BPE applies one merge rank in.
      const merged: number[] = [];
      for (let i = 0; i < s.length;) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { merged.push(id); i += 2; saved += freq[w]!; }
        else merged.push(s[i++]!);
      }
      words[w] = merged;
      addPairs(w, 1, touched);
    }
    pairCount.delete(key);
    pushTouched(touched);
    cumulative += saved;
    candidates.push({ rank: candidates.length + 1, token, text: displayToken(token, base.kind, ms), kind: 'merge',
      merge: [str(a), str(b)], saving: saved, cumulativeSaving: cumulative, baseIds: baseIds(id) });
  }
  opts.onProgress?.({ stage: 'Learning domain tokens', fraction: 1, message: `${candidates.length} candidates` });

  return {
    format: 'lathe-domain-candidates',
    version: 1,
    baseHash: base.contentHash,
    baseVocabSize: base.vocabSize,
    corpus: { texts: counted.texts, words: counted.words, uniqueWords: uniq.length, baseTokens, specialTokensSeen: counted.specialTokensSeen },
    candidates,
    skipped,
    digitsIsolated,
  };
}

function utf8Len(b0: number): number {
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) return 2;
  if (b0 >= 0xe0 && b0 <= 0xef) return 3;
  if (b0 >= 0xf0 && b0 <= 0xf4) return 4;
  return 0;
}

function decodeStrict(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
