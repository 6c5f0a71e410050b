import { fmix, hash32, rng } from './hash';
import { CLASS, FIRST_WORD_CLASS, LAST_WORD_CLASS } from './quality';

/**
 * MinHash signatures (the pure, per-document half of near-dedup: worker threads compute them in
 * parallel; NearDedup's index, which depends on document order, stays in one thread).
 */
export class MinHasher {
  readonly seedA: number;
  private readonly ring: Int32Array;
  private readonly dense: Uint32Array;
  /** Scratch signature for callers that do not bring their own. */
  readonly sig: Uint32Array;

  constructor(readonly numPerm: number, readonly shingleWords: number, seed = 1) {
    this.seedA = Math.floor(rng(seed)() * 0xffffffff) | 0;
    this.ring = new Int32Array(shingleWords);
    this.dense = new Uint32Array(numPerm);
    this.sig = new Uint32Array(numPerm);
  }

  /** Signature of `text` into `sig` (numPerm values); returns false if the text has no words. */
  sign(text: string, sig: Uint32Array = this.sig): boolean {
    const P = this.numPerm;
    sig.fill(0xffffffff);
    const k = this.shingleWords;
    const ring = this.ring;
    let nWords = 0;
    let pos = 0;
    let any = false;
    const s = text;
    let i = 0;
    const n = s.length;
    while (i < n) {
      let c = s.charCodeAt(i);
      while (i < n && !isWordChar(c)) c = s.charCodeAt(++i);
      if (i >= n) break;
      let h = 0x811c9dc5 | 0;
      while (i < n && isWordChar(c)) {
        if (c >= 65 && c <= 90) c += 32; // case-insensitive
        h = Math.imul(h ^ c, 0x01000193);
        c = s.charCodeAt(++i);
      }
      ring[pos] = h;
      if (++pos === k) pos = 0;
      nWords++;
      if (nWords >= k) {
        // Oldest to newest: ring[pos], ring[pos+1], ... (wrapping).
        let sh = this.seedA;
        for (let j = 0, idx = pos; j < k; j++) {
          sh = Math.imul(sh ^ ring[idx]!, 0x5bd1e995) ^ (sh >>> 13);
          if (++idx === k) idx = 0;
        }
        const v = fmix(sh) >>> 0;
        const bin = Math.floor((v / 4294967296) * P);
        if (v < sig[bin]!) sig[bin] = v;
        any = true;
      }
    }
    // Shorter than one shingle: the whole text is the shingle.
    if (nWords > 0 && nWords < k) {
      const v = hash32(text.toLowerCase(), 0, text.length, this.seedA) >>> 0;
      sig[Math.floor((v / 4294967296) * P)] = v;
      any = true;
    }
    if (!any) return false;
    // Densify: an empty bin takes the next non-empty bin's value mixed with the distance.
    for (let b = 0; b < P; b++) {
      if (sig[b] !== 0xffffffff) continue;
      let d = 1;
      while (sig[(b + d) % P] === 0xffffffff && d < P) d++;
      this.dense[b] = fmix((sig[(b + d) % P]! ^ Math.imul(d, 0x9e3779b1)) | 0) >>> 0;
    }
    for (let b = 0; b < P; b++) if (sig[b] === 0xffffffff) sig[b] = this.dense[b]!;
    return true;
  }

}

/**
 * Near-duplicate detection: MinHash signatures over word n-gram shingles, banded LSH to find
 * candidates, then the signature agreement (an estimate of Jaccard similarity) checked against the
 * threshold. Streaming: each document is compared with the documents kept before it.
 *
 * Signatures use one-permutation hashing (Li, Owen & Zhang 2012): each shingle hash goes to one of
 * numPerm bins by its high bits and only the bin minimum is kept, so a shingle costs O(1) instead
 * of O(numPerm). Empty bins (short documents) borrow from the next non-empty bin to the right,
 * mixed with the distance ("rotation" densification, Shrivastava & Li 2014), identically for every
 * document, so equal bins still estimate Jaccard similarity.
 *
 * Memory per kept document: numPerm × 4 bytes (signature) + bands × 12 bytes (LSH entries).
 */
export class NearDedup {
  readonly hasher: MinHasher;
  private readonly rows: number;
  private sigs: Uint32Array;
  private count = 0;
  // LSH: open-addressing table from (band, bucket) key -> head entry; entries chain kept docs.
  private keys: Uint32Array;
  private heads: Int32Array;
  private tableUsed = 0;
  private entryDoc: Int32Array;
  private entryNext: Int32Array;
  private entries = 0;
  private sig: Uint32Array;
  private readonly bandKeys: Uint32Array;

  constructor(
    readonly numPerm: number,
    readonly bands: number,
    readonly threshold: number,
    readonly shingleWords: number,
    seed = 1,
    readonly maxBytes = Infinity,
  ) {
    this.rows = numPerm / bands;
    this.hasher = new MinHasher(numPerm, shingleWords, seed);
    this.sigs = new Uint32Array(numPerm * 1024);
    this.keys = new Uint32Array(1 << 16);
    this.heads = new Int32Array(1 << 16);
    this.entryDoc = new Int32Array(1 << 14);
    this.entryNext = new Int32Array(1 << 14);
    this.sig = this.hasher.sig;
    this.bandKeys = new Uint32Array(bands);
  }

  /**
   * Returns the estimated Jaccard similarity to the most similar kept document if it is at or above
   * the threshold (the caller drops the document), else -1 and the document is remembered as kept.
   */
  check(text: string): number {
    if (!this.hasher.sign(text)) return -1;
    return this.checkSignature(this.hasher.sig);
  }

  /** As check(), for a signature computed elsewhere (MinHasher.sign with the same settings and seed). */
  checkSignature(sig: Uint32Array): number {
    this.sig = sig;
    const R = this.rows, P = this.numPerm;
    let best = -1;
    for (let band = 0; band < this.bands; band++) {
      let h = Math.imul(band + 1, 0x9e3779b1);
      for (let r = 0; r < R; r++) h = Math.imul(h ^ sig[band * R + r]!, 0x01000193) ^ (h >>> 15);
      const key = (fmix(h) >>> 0) || 1;
      this.bandKeys[band] = key;
      for (let e = this.lookup(key); e >= 0; e = this.entryNext[e]!) {
        const doc = this.entryDoc[e]!;
        const off = doc * P;
        // Stop comparing once too many positions differ to reach the threshold (most candidates).
        let miss = 0, p = 0;
        for (; p < P; p++) if (this.sigs[off + p] !== sig[p] && (P - ++miss) / P < this.threshold) break;
        if (p < P) continue;
        const j = (P - miss) / P;
        if (j >= this.threshold && j > best) best = j;
      }
      if (best >= this.threshold) return best;
    }
    this.keep();
    return -1;
  }

  private lookup(key: number): number {
    const mask = this.keys.length - 1;
    for (let i = key & mask; ; i = (i + 1) & mask) {
      const k = this.keys[i]!;
      if (k === 0) return -1;
      if (k === key) return this.heads[i]!;
    }
  }

  /** True once the index reached maxBytes: documents are still checked, no longer added. */
  full = false;

  private keep(): void {
    if (this.full || this.bytes >= this.maxBytes) { this.full = true; return; }
    const doc = this.count++;
    const P = this.numPerm;
    if ((doc + 1) * P > this.sigs.length) {
      const bigger = new Uint32Array(this.sigs.length * 2);
      bigger.set(this.sigs);
      this.sigs = bigger;
    }
    this.sigs.set(this.sig, doc * P);
    for (let band = 0; band < this.bands; band++) this.insert(this.bandKeys[band]!, doc);
  }

  private insert(key: number, doc: number): void {
    if ((this.tableUsed + 1) * 2 > this.keys.length) this.growTable();
    if (this.entries >= this.entryDoc.length) {
      const d = new Int32Array(this.entryDoc.length * 2); d.set(this.entryDoc); this.entryDoc = d;
      const n = new Int32Array(this.entryNext.length * 2); n.set(this.entryNext); this.entryNext = n;
    }
    const e = this.entries++;
    this.entryDoc[e] = doc;
    const mask = this.keys.length - 1;
    for (let i = key & mask; ; i = (i + 1) & mask) {
      const k = this.keys[i]!;
      if (k === key) { this.entryNext[e] = this.heads[i]!; this.heads[i] = e; return; }
      if (k === 0) { this.keys[i] = key; this.heads[i] = e; this.entryNext[e] = -1; this.tableUsed++; return; }
    }
  }

  private growTable(): void {
    const ok = this.keys, oh = this.heads;
    this.keys = new Uint32Array(ok.length * 2);
    this.heads = new Int32Array(ok.length * 2);
    const mask = this.keys.length - 1;
    for (let j = 0; j < ok.length; j++) {
      const key = ok[j]!;
      if (key === 0) continue;
      let i = key & mask;
      while (this.keys[i] !== 0) i = (i + 1) & mask;
      this.keys[i] = key;
      this.heads[i] = oh[j]!;
    }
  }

  get keptDocs(): number { return this.count; }
  get bytes(): number { return this.sigs.byteLength + this.keys.byteLength * 2 + this.entryDoc.byteLength * 2; }
}

/** Same word characters as the quality filter, apostrophes excluded (don't = don t, as most shinglers do). */
const WORD = new Uint8Array(65536);
for (let c = 0; c < 65536; c++) WORD[c] = CLASS[c]! >= FIRST_WORD_CLASS && CLASS[c]! <= LAST_WORD_CLASS && c !== 39 ? 1 : 0;
function isWordChar(c: number): boolean {
  return WORD[c] === 1;
}
