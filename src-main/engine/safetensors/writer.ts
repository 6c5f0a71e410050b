/**
 * Streaming safetensors writer. The header must list every tensor before the data, so tensors are
 * declared up front and then written one at a time, in declaration order; only one tensor is in
 * memory at once. The file is written under a temporary name beside the target and renamed into place
 * on `finish()`, so a crash or a full disk never leaves a half-written model under the real name.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserError } from '../../util/progress';
import { DTYPE_BYTES, f32ToBf16Array, f32ToF16Array, type SafetensorsDtype } from './dtype';
import { numel } from './reader';

export interface TensorSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/**
 * Data for one tensor: a Float32Array is converted to the declared float dtype (F32/F16/BF16);
 * a Uint16Array is taken as raw F16/BF16 bits; a Uint8Array as raw bytes of any dtype.
 */
export type TensorData = Float32Array | Uint16Array | Uint8Array;

export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Turns ENOSPC/EACCES and friends into a message a user can act on. */
export function writeError(file: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC') return new UserError('disk-full', `The disk is full while writing ${path.basename(file)}.`, `Free some space on the drive holding ${path.dirname(file)} and try again.`);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new UserError('write-denied', `Lathe may not write ${path.basename(file)} (${code}).`, `Choose a folder you can write to, or fix the permissions of ${path.dirname(file)}.`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

export function encodeHeader(specs: readonly TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new Error(`Tensor "${s.name}" is declared twice.`);
    seen.add(s.name);
    const bytes = numel(s.shape) * DTYPE_BYTES[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data section starts 8-byte aligned (as the reference implementation does).
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

export function encodeTensor(spec: TensorSpec, data: TensorData): Uint8Array {
  const n = numel(spec.shape);
  const want = n * DTYPE_BYTES[spec.dtype];
  let bytes: Uint8Array;
  if (data instanceof Float32Array) {
    if (data.length !== n) throw new Error(`Tensor "${spec.name}" ${JSON.stringify(spec.shape)} needs ${n} values, got ${data.length}.`);
    switch (spec.dtype) {
      case 'F32': bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength); break;
      case 'F16': { const h = f32ToF16Array(data); bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength); break; }
      case 'BF16': { const h = f32ToBf16Array(data); bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength); break; }
      default: throw new Error(`Tensor "${spec.name}": cannot convert f32 values to ${spec.dtype}; pass raw bytes.`);
    }
  } else if (data instanceof Uint16Array) {
    if (spec.dtype !== 'F16' && spec.dtype !== 'BF16') throw new Error(`Tensor "${spec.name}": 16-bit data given for dtype ${spec.dtype}.`);
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else {
    bytes = data;
  }
  if (bytes.byteLength !== want) throw new Error(`Tensor "${spec.name}" (${spec.dtype} ${JSON.stringify(spec.shape)}) needs ${want} bytes, got ${bytes.byteLength}.`);
  return bytes;
}

export class SafetensorsWriter {
  private next = 0;
  private closed = false;

  private constructor(
    readonly target: string,
    private readonly tmp: string,
    private readonly handle: fsp.FileHandle,
    private readonly specs: readonly TensorSpec[],
    private position: number,
  ) {}

  static async create(target: string, specs: readonly TensorSpec[], metadata?: Record<string, string>): Promise<SafetensorsWriter> {
    const header = encodeHeader(specs, metadata);
    const tmp = tempPathFor(target);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(tmp, 'w');
    } catch (err) {
      throw writeError(target, err);
    }
    const w = new SafetensorsWriter(target, tmp, handle, specs, 0);
    await w.append(header);
    return w;
  }

  /** The next tensor expected by `write`, or undefined when all are written. */
  get pending(): TensorSpec | undefined {
    return this.specs[this.next];
  }

  /** Writes the next declared tensor; `name` must match the declaration order. */
  async write(name: string, data: TensorData): Promise<void> {
    const spec = this.specs[this.next];
    if (!spec) throw new Error(`All ${this.specs.length} tensors are written already; got "${name}".`);
    if (spec.name !== name) throw new Error(`Tensors must be written in declaration order: expected "${spec.name}", got "${name}".`);
    await this.append(encodeTensor(spec, data));
    this.next++;
  }

  /** Flushes to disk and renames into place. Throws if some declared tensor was not written. */
  async finish(): Promise<void> {
    if (this.next !== this.specs.length) {
      await this.abort();
      throw new Error(`Only ${this.next} of ${this.specs.length} tensors were written to ${this.target}; next was "${this.specs[this.next]!.name}".`);
    }
    try {
      await this.handle.sync();
      await this.handle.close();
      this.closed = true;
      await fsp.rename(this.tmp, this.target);
    } catch (err) {
      await this.abort();
      throw writeError(this.target, err);
    }
  }

  /** Drops the temporary file; the target is left untouched. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await fsp.rm(this.tmp, { force: true });
  }

  private async append(bytes: Uint8Array): Promise<void> {
    try {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, this.position + done);
        done += bytesWritten;
      }
      this.position += bytes.byteLength;
    } catch (err) {
      await this.abort();
      throw writeError(this.target, err);
    }
  }
}

/** One-shot write of a list of in-memory tensors (small files, tests). */
export async function writeSafetensors(
  target: string,
  tensors: ReadonlyArray<TensorSpec & { data: TensorData }>,
  metadata?: Record<string, string>,
): Promise<void> {
  const w = await SafetensorsWriter.create(target, tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })), metadata);
  for (const t of tensors) await w.write(t.name, t.data);
  await w.finish();
}
