import { closeSync, fsyncSync, openSync, readSync, renameSync, writeSync, readFileSync, existsSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../util/progress';

/**
 * Token shard format (little-endian), designed to be memory-mapped or read block by block:
 *   bytes 0..7   magic "LATHETOK"
 *   u32 version (1), u32 kind (0 = pretraining blocks, 1 = SFT rows, 2 = preference rows), u32 bytes per token (2 or 4),
 *   u32 block size T (tokens per row), u64 rows N, then padding to 64 bytes.
 *   Pretraining rows: N × T tokens.
 *   SFT rows: N × [T tokens, T mask bytes (1 = loss), T u16 segment ids (0 = padding)].
 *   Preference rows: laid out as SFT rows, two per pair (chosen, then rejected; one sample per row).
 * Rows start at fixed offsets, so row i is one pread at 64 + i × rowBytes.
 */
export const MAGIC = 'LATHETOK';
if (endianness() !== 'LE') throw new Error('Lathe token shards are written with typed arrays and need a little-endian CPU.');
export const SHARD_VERSION = 1;
export const HEADER_BYTES = 64;
export type ShardKind = 'pretrain' | 'sft' | 'preference';
const KIND_CODE: Record<ShardKind, number> = { pretrain: 0, sft: 1, preference: 2 };

export function rowBytes(kind: ShardKind, blockSize: number, tokenBytes: number): number {
  return kind === 'pretrain' ? blockSize * tokenBytes : blockSize * (tokenBytes + 1 + 2);
}

/** Writes rows into `<path>.tmp`, renamed to `path` on close (atomic: a reader never sees a half shard). */
export class ShardWriter {
  private fd: number;
  private rows = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = HEADER_BYTES;
  readonly tmp: string;
  constructor(readonly path: string, readonly kind: ShardKind, readonly blockSize: number, readonly tokenBytes: 2 | 4) {
    this.tmp = `${path}.tmp`;
    this.fd = openSync(this.tmp, 'w');
    writeSync(this.fd, Buffer.alloc(HEADER_BYTES), 0, HEADER_BYTES, 0);
  }
  get count(): number { return this.rows; }
  /** One row: tokens (length T), and for SFT mask (T) and segments (T). */
  write(tokens: ArrayLike<number>, mask?: Uint8Array, segments?: Uint16Array): void {
    const T = this.blockSize;
    if (tokens.length !== T) throw new Error(`row has ${tokens.length} tokens, expected ${T}`);
    // A fresh ArrayBuffer is aligned, so typed-array views can fill it (little-endian hosts only, checked above).
    const ab = new ArrayBuffer(rowBytes(this.kind, T, this.tokenBytes));
    const buf = Buffer.from(ab);
    if (this.tokenBytes === 2) new Uint16Array(ab, 0, T).set(tokens);
    else new Uint32Array(ab, 0, T).set(tokens);
    if (this.kind !== 'pretrain') {
      const off = T * this.tokenBytes;
      buf.set(mask!, off);
      // Segment ids start at off + T: 2-byte aligned only when T is even.
      if ((off + T) % 2 === 0) new Uint16Array(ab, off + T, T).set(segments!);
      else for (let i = 0; i < T; i++) buf.writeUInt16LE(segments![i]!, off + T + i * 2);
    }
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    this.rows++;
    if (this.pendingBytes >= 8 << 20) this.flush();
  }
  private flush(): void {
    if (!this.pendingBytes) return;
    const data = Buffer.concat(this.pending, this.pendingBytes);
    writeSync(this.fd, data, 0, data.length, this.offset);
    this.offset += data.length;
    this.pending = [];
    this.pendingBytes = 0;
  }
  close(): { file: string; rows: number } {
    this.flush();
    const h = Buffer.alloc(HEADER_BYTES);
    h.write(MAGIC, 0, 'latin1');
    h.writeUInt32LE(SHARD_VERSION, 8);
    h.writeUInt32LE(KIND_CODE[this.kind], 12);
    h.writeUInt32LE(this.tokenBytes, 16);
    h.writeUInt32LE(this.blockSize, 20);
    h.writeBigUInt64LE(BigInt(this.rows), 24);
    writeSync(this.fd, h, 0, HEADER_BYTES, 0);
    fsyncSync(this.fd);
    closeSync(this.fd);
    renameSync(this.tmp, this.path);
    return { file: this.path, rows: this.rows };
  }
}

export interface ShardHeader { kind: ShardKind; tokenBytes: 2 | 4; blockSize: number; rows: number }

export function readHeader(fd: number, path: string): ShardHeader {
  const h = Buffer.alloc(HEADER_BYTES);
  readSync(fd, h, 0, HEADER_BYTES, 0);
  if (h.toString('latin1', 0, 8) !== MAGIC) throw new UserError('data.shard', `${path} is not a Lathe token shard (bad magic).`, 'Run `lathe prepare` again to rebuild the dataset.');
  const version = h.readUInt32LE(8);
  if (version !== SHARD_VERSION) throw new UserError('data.shard', `${path} has shard version ${version}; this Lathe reads version ${SHARD_VERSION}.`, 'Run `lathe prepare` again with this version.');
  const code = h.readUInt32LE(12);
  const kind: ShardKind = code === 0 ? 'pretrain' : code === 2 ? 'preference' : 'sft';
  const tb = h.readUInt32LE(16);
  return { kind, tokenBytes: tb === 2 ? 2 : 4, blockSize: h.readUInt32LE(20), rows: Number(h.readBigUInt64LE(24)) };
}

/** Writes `text` to `path` atomically (tmp + fsync + rename). */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  writeSync(fd, text);
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

export function readJson<T>(dir: string, name: string): T {
  const p = join(dir, name);
  if (!existsSync(p)) throw new UserError('data.manifest', `No ${name} in ${dir}.`, 'Point at a folder written by `lathe prepare` (it may have been interrupted; run it again).');
  return JSON.parse(readFileSync(p, 'utf8')) as T;
}
