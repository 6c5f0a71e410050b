import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../util/progress';
import { HEADER_BYTES, ShardWriter, readHeader, readJson, rowBytes, writeFileAtomic, type ShardKind } from './shards';

export const MANIFEST = 'manifest.json';

export interface SplitInfo {
  shards: { file: string; rows: number }[];
  /** Rows (blocks of blockSize tokens). */
  rows: number;
  /** Real tokens (EOS included, padding excluded). */
  tokens: number;
  docs: number;
  /** Pretraining: valid tokens in the final row (the rest is EOS padding; a trainer may mask it). */
  lastRowTokens: number;
  /** SFT: tokens with loss (assistant tokens); preference: completion tokens of both sides. */
  lossTokens?: number;
}

/** manifest.json of a prepared dataset; written last, so its presence means the dataset is complete. */
export interface DatasetManifest {
  format: 'lathe-dataset';
  version: 1;
  kind: ShardKind;
  tokenizer: { hash: string; vocabSize: number; eosId: number };
  blockSize: number;
  /** 2 (uint16) when every id fits, else 4 (uint32). */
  tokenBytes: 2 | 4;
  splits: Record<string, SplitInfo>;
  createdAt: string;
  /** Free-form provenance (config, report summary). */
  meta?: Record<string, unknown>;
}

const MAX_SHARD_BYTES = 256 * 1024 * 1024;

/** Rolls shards of a split: `<split>-00000.bin`, `<split>-00001.bin`, ... (each ≤ 256 MiB). */
export class SplitWriter {
  private writer: ShardWriter | null = null;
  private readonly shards: { file: string; rows: number }[] = [];
  private readonly rowsPerShard: number;
  tokens = 0;
  docs = 0;
  lossTokens = 0;
  lastRowTokens = 0;
  constructor(readonly dir: string, readonly split: string, readonly kind: ShardKind, readonly blockSize: number, readonly tokenBytes: 2 | 4) {
    this.rowsPerShard = Math.max(1, Math.floor(MAX_SHARD_BYTES / rowBytes(kind, blockSize, tokenBytes)));
  }
  write(tokens: ArrayLike<number>, mask?: Uint8Array, segments?: Uint16Array): void {
    if (!this.writer || this.writer.count >= this.rowsPerShard) {
      this.closeShard();
      const name = `${this.split}-${String(this.shards.length).padStart(5, '0')}.bin`;
      this.writer = new ShardWriter(join(this.dir, name), this.kind, this.blockSize, this.tokenBytes);
    }
    this.writer.write(tokens, mask, segments);
  }
  private closeShard(): void {
    if (!this.writer) return;
    const r = this.writer.close();
    this.shards.push({ file: r.file.slice(this.dir.length + 1), rows: r.rows });
    this.writer = null;
  }
  finish(): SplitInfo {
    this.closeShard();
    const rows = this.shards.reduce((a, s) => a + s.rows, 0);
    const info: SplitInfo = { shards: this.shards, rows, tokens: this.tokens, docs: this.docs, lastRowTokens: this.lastRowTokens };
    if (this.kind !== 'pretrain') info.lossTokens = this.lossTokens;
    return info;
  }
}

/**
 * Continued-pretraining packer: documents joined with EOS, cut into rows of exactly blockSize
 * tokens. The final partial row is padded with EOS and its valid length recorded.
 */
export class BlockPacker {
  private buf: Uint32Array;
  private fill = 0;
  readonly out: SplitWriter;
  constructor(dir: string, split: string, readonly blockSize: number, tokenBytes: 2 | 4, readonly eosId: number) {
    this.buf = new Uint32Array(blockSize);
    this.out = new SplitWriter(dir, split, 'pretrain', blockSize, tokenBytes);
  }
  addDoc(ids: ArrayLike<number>): void {
    this.out.docs++;
    this.out.tokens += ids.length + 1;
    const T = this.blockSize;
    let i = 0;
    while (i < ids.length) {
      const n = Math.min(T - this.fill, ids.length - i);
      for (let k = 0; k < n; k++) this.buf[this.fill + k] = ids[i + k]!;
      this.fill += n;
      i += n;
      if (this.fill === T) { this.out.write(this.buf); this.fill = 0; }
    }
    this.buf[this.fill++] = this.eosId;
    if (this.fill === T) { this.out.write(this.buf); this.fill = 0; }
  }
  finish(): SplitInfo {
    if (this.fill > 0) {
      const valid = this.fill;
      this.buf.fill(this.eosId, valid);
      this.out.write(this.buf);
      this.out.lastRowTokens = valid;
    } else {
      this.out.lastRowTokens = this.blockSize;
    }
    return this.out.finish();
  }
}

export function writeManifest(dir: string, m: DatasetManifest): void {
  writeFileAtomic(join(dir, MANIFEST), JSON.stringify(m, null, 2) + '\n');
}

export interface SftRow { ids: Uint32Array; mask: Uint8Array; segments: Uint16Array; positions: Uint32Array }

/** Reads rows by index with one pread each; nothing is loaded up front. */
export class SplitReader {
  private readonly fds: number[] = [];
  private readonly starts: number[] = [];
  readonly rows: number;
  private readonly rb: number;
  constructor(readonly dir: string, readonly manifest: DatasetManifest, readonly split: string) {
    const info = manifest.splits[split];
    if (!info) throw new UserError('data.split', `The dataset in ${dir} has no split "${split}" (it has ${Object.keys(manifest.splits).join(', ')}).`);
    this.rb = rowBytes(manifest.kind, manifest.blockSize, manifest.tokenBytes);
    let start = 0;
    for (const s of info.shards) {
      const path = join(dir, s.file);
      const fd = openSync(path, 'r');
      const h = readHeader(fd, path);
      if (h.rows !== s.rows || h.blockSize !== manifest.blockSize || h.tokenBytes !== manifest.tokenBytes || h.kind !== manifest.kind) {
        closeSync(fd);
        throw new UserError('data.shard', `${path} does not match manifest.json (rows ${h.rows} vs ${s.rows}).`, 'The dataset folder is damaged; run `lathe prepare` again.');
      }
      this.fds.push(fd);
      this.starts.push(start);
      start += s.rows;
    }
    this.rows = start;
  }
  get blockSize(): number { return this.manifest.blockSize; }
  private raw(i: number): Buffer {
    if (!(i >= 0 && i < this.rows)) throw new RangeError(`row ${i} out of range 0..${this.rows - 1}`);
    let s = this.starts.length - 1;
    while (this.starts[s]! > i) s--;
    const buf = Buffer.allocUnsafeSlow(this.rb);
    readSync(this.fds[s]!, buf, 0, this.rb, HEADER_BYTES + (i - this.starts[s]!) * this.rb);
    return buf;
  }
  private tokens(buf: Buffer): Uint32Array {
    const T = this.manifest.blockSize;
    // buf comes from allocUnsafeSlow (own aligned ArrayBuffer), so typed views are valid.
    if (this.manifest.tokenBytes === 2) return Uint32Array.from(new Uint16Array(buf.buffer, buf.byteOffset, T));
    return new Uint32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + T * 4));
  }
  /** Pretraining row i: blockSize token ids. */
  row(i: number): Uint32Array { return this.tokens(this.raw(i)); }
  /** SFT row i: ids, loss mask, segment ids (0 = padding) and positions restarting at each segment. */
  sftRow(i: number): SftRow {
    const T = this.manifest.blockSize;
    const buf = this.raw(i);
    const ids = this.tokens(buf);
    const off = T * this.manifest.tokenBytes;
    const mask = new Uint8Array(buf.subarray(off, off + T));
    const segments = new Uint16Array(T);
    const positions = new Uint32Array(T);
    for (let k = 0, pos = 0; k < T; k++) {
      segments[k] = buf.readUInt16LE(off + T + k * 2);
      pos = k > 0 && segments[k] === segments[k - 1] ? pos + 1 : 0;
      positions[k] = pos;
    }
    return { ids, mask, segments, positions };
  }
  close(): void { for (const fd of this.fds.splice(0)) closeSync(fd); }
}

export function openDataset(dir: string): { manifest: DatasetManifest; split: (name: string) => SplitReader } {
  const manifest = readJson<DatasetManifest>(dir, MANIFEST);
  if (manifest.format !== 'lathe-dataset' || manifest.version !== 1) {
    throw new UserError('data.manifest', `${join(dir, MANIFEST)} is format ${manifest.format} v${manifest.version}; expected lathe-dataset v1.`, 'Run `lathe prepare` again.');
  }
  return { manifest, split: (name) => new SplitReader(dir, manifest, name) };
}
