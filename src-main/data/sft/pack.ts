import { SplitWriter, type SplitInfo } from '../pack/dataset';

export type TruncationPolicy = 'drop' | 'truncate';

/**
 * Packs rendered samples into rows of exactly blockSize tokens. Each row carries per-token loss mask
 * and segment ids (1, 2, ... per sample; 0 = padding) so attention and positions can be kept per
 * sample. Best-fit over a few open rows; a sample never spans two rows.
 */
export class SftPacker {
  private open: { ids: number[]; mask: number[]; seg: number[]; n: number }[] = [];
  readonly out: SplitWriter;
  dropped = 0;
  truncated = 0;
  constructor(dir: string, split: string, readonly blockSize: number, tokenBytes: 2 | 4, readonly padId: number, readonly policy: TruncationPolicy, readonly pack: boolean, readonly maxOpen = 16) {
    this.out = new SplitWriter(dir, split, 'sft', blockSize, tokenBytes);
  }

  /** Returns false when the sample was dropped (too long under 'drop', or no loss tokens left). */
  add(ids: ArrayLike<number>, mask: ArrayLike<number>): boolean {
    const T = this.blockSize;
    let n = ids.length;
    if (n > T) {
      if (this.policy === 'drop') { this.dropped++; return false; }
      n = T;
      this.truncated++;
    }
    let loss = 0;
    for (let i = 0; i < n; i++) loss += mask[i]! ? 1 : 0;
    if (loss === 0) { this.dropped++; return false; }
    this.out.docs++;
    this.out.tokens += n;
    this.out.lossTokens += loss;
    let bin = -1;
    if (this.pack) {
      let bestRoom = Infinity;
      for (let b = 0; b < this.open.length; b++) {
        const room = T - this.open[b]!.ids.length;
        if (room >= n && room < bestRoom) { bestRoom = room; bin = b; }
      }
    }
    if (bin < 0) {
      if (!this.pack || this.open.length >= this.maxOpen) {
        // Flush the fullest open row to make space.
        let full = 0;
        for (let b = 1; b < this.open.length; b++) if (this.open[b]!.ids.length > this.open[full]!.ids.length) full = b;
        if (this.open.length) this.flush(full);
      }
      this.open.push({ ids: [], mask: [], seg: [], n: 0 });
      bin = this.open.length - 1;
    }
    const row = this.open[bin]!;
    row.n++;
    for (let i = 0; i < n; i++) { row.ids.push(ids[i]!); row.mask.push(mask[i]! ? 1 : 0); row.seg.push(row.n); }
    if (row.ids.length === T) this.flush(bin);
    return true;
  }

  private flush(b: number): void {
    const row = this.open.splice(b, 1)[0]!;
    const T = this.blockSize;
    const ids = new Uint32Array(T).fill(this.padId);
    ids.set(row.ids);
    const mask = new Uint8Array(T);
    mask.set(row.mask);
    const seg = new Uint16Array(T);
    seg.set(row.seg);
    this.out.write(ids, mask, seg);
  }

  finish(): SplitInfo {
    while (this.open.length) this.flush(0);
    return this.out.finish();
  }
}
