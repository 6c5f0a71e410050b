/**
 * Streaming safetensors reader: parses the header, then reads one tensor at a time by offset, so a
 * model is never held in memory twice. Layout: u64 LE header length N | N bytes JSON header | data.
 * Header entries: { "name": { dtype, shape, data_offsets: [begin, end] } } relative to the data start,
 * plus an optional "__metadata__": { string: string }.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../util/progress';
import {
  DTYPE_BYTES, isSafetensorsDtype, bf16ToF32Array, f16ToF32Array, f32ToF16Array, bf16ToF16Array,
  type SafetensorsDtype,
} from './dtype';

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Offset of the first byte of this tensor from the start of the FILE (for ONNX external data). */
  fileOffset: number;
  byteLength: number;
  /** The file the tensor lives in (absolute path). */
  file: string;
}

/** Header sizes above this are not a model (the largest real headers are a few MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function corrupt(file: string, what: string): UserError {
  return new UserError(
    'safetensors-corrupt',
    `${path.basename(file)} is not a valid safetensors file: ${what}.`,
    `The file at ${file} is damaged or not a safetensors file. Download or export the model again.`,
  );
}

/** Low-precision float dtypes of quantized checkpoints (FP8 E4M3/E5M2, scale-only E8M0, FP6, FP4). */
const QUANTIZED_DTYPE = /^(F8_|F6_|F4)/;

function quantizedDtype(file: string, name: string, dtype: string): UserError {
  const kind = dtype.startsWith('F8_') ? 'FP8' : dtype.startsWith('F6') ? 'FP6' : 'FP4';
  return new UserError(
    'model-quantized',
    `${path.basename(file)} is an ${kind}-quantized checkpoint (tensor "${name}" is stored as ${dtype}); Lathe cannot train from ${kind} weights. The file is not damaged.`,
    `Use the bf16/f16 original of this model instead (the repository the ${kind} version was made from, usually the same name without "${kind}").`,
  );
}

/** The start of a Git LFS pointer file, which a clone without git-lfs leaves in place of the weights. */
const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

function lfsPointer(file: string, text: string): UserError {
  const size = /\nsize (\d+)/.exec(text)?.[1];
  return new UserError(
    'model-lfs-pointer',
    `${path.basename(file)} is a Git LFS pointer (a small text file), not the weights${size ? ` (the real file is ${Number(size).toLocaleString('en-US')} bytes)` : ''}.`,
    `Run \`git lfs pull\` in ${path.dirname(file)}, or download ${path.basename(file)} from the model's page into that folder.`,
  );
}

/** Parses and validates a header; `fileSize` is used to detect truncated files. */
export function parseSafetensorsHeader(
  file: string, headerJson: string, dataOffset: number, fileSize: number,
): { tensors: Map<string, TensorEntry>; metadata: Record<string, string> } {
  let raw: unknown;
  try {
    raw = JSON.parse(headerJson);
  } catch (err) {
    throw corrupt(file, `its header is not JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt(file, 'its header is not a JSON object');
  const tensors = new Map<string, TensorEntry>();
  const metadata: Record<string, string> = {};
  const spans: Array<[number, number, string]> = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null) throw corrupt(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw corrupt(file, `metadata "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e?.dtype === 'string' && QUANTIZED_DTYPE.test(e.dtype)) throw quantizedDtype(file, name, e.dtype);
    if (!isSafetensorsDtype(e?.dtype)) throw corrupt(file, `tensor "${name}" has unknown dtype ${JSON.stringify(e?.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw corrupt(file, `tensor "${name}" has an invalid shape ${JSON.stringify(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[0] > off[1]) {
      throw corrupt(file, `tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const shape = e.shape as number[];
    const byteLength = numel(shape) * DTYPE_BYTES[e.dtype];
    if (off[1] - off[0] !== byteLength) {
      throw corrupt(file, `tensor "${name}" (${e.dtype} ${JSON.stringify(shape)}) needs ${byteLength} bytes but its offsets span ${off[1] - off[0]}`);
    }
    tensors.set(name, { name, dtype: e.dtype, shape, fileOffset: dataOffset + off[0], byteLength, file });
    spans.push([off[0], off[1], name]);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) throw corrupt(file, `tensors "${spans[i - 1]![2]}" and "${spans[i]![2]}" overlap`);
  }
  // Truncation: the first tensor (in file order) whose bytes run past the end of the file.
  const available = fileSize - dataOffset;
  for (const [, end, name] of spans) {
    if (end > available) {
      throw new UserError(
        'safetensors-truncated',
        `${path.basename(file)} is truncated: tensor "${name}" needs bytes up to ${dataOffset + end} but the file has only ${fileSize} bytes.`,
        'The download or copy probably stopped early. Download this file again (its size must match the source).',
      );
    }
  }
  return { tensors, metadata };
}

export class SafetensorsReader {
  private constructor(
    readonly file: string,
    private handle: fsp.FileHandle | undefined,
    readonly tensors: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
    /** Absolute offset of the data section. */
    readonly dataOffset: number,
    readonly fileSize: number,
  ) {}

  static async open(file: string): Promise<SafetensorsReader> {
    const abs = path.resolve(file);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(abs, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(
        code === 'ENOENT' ? 'safetensors-missing' : 'safetensors-unreadable',
        code === 'ENOENT' ? `The weights file ${path.basename(abs)} does not exist.` : `Cannot read ${path.basename(abs)} (${code ?? (err as Error).message}).`,
        `Looked for ${abs}. Check the model folder is complete and readable.`,
      );
    }
    try {
      const size = (await handle.stat()).size;
      const head = new Uint8Array(Math.min(size, 512));
      await readFully(handle, head, 0);
      const headText = new TextDecoder().decode(head);
      if (headText.startsWith(LFS_POINTER)) throw lfsPointer(abs, headText);
      if (size < 8) throw corrupt(abs, `it has only ${size} bytes`);
      const lenBuf = head.slice(0, 8);
      const n = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
      if (n > MAX_HEADER_BYTES) throw corrupt(abs, `its header claims ${n} bytes`);
      if (8 + n > size) {
        throw new UserError(
          'safetensors-truncated',
          `${path.basename(abs)} is truncated: its header needs ${8 + n} bytes but the file has only ${size}.`,
          'The download or copy probably stopped early. Download this file again.',
        );
      }
      const headerBytes = new Uint8Array(n);
      await readFully(handle, headerBytes, 8);
      const { tensors, metadata } = parseSafetensorsHeader(abs, new TextDecoder().decode(headerBytes), 8 + n, size);
      return new SafetensorsReader(abs, handle, tensors, metadata, 8 + n, size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  entry(name: string): TensorEntry {
    const e = this.tensors.get(name);
    if (!e) throw new Error(`Tensor "${name}" is not in ${this.file}.`);
    return e;
  }

  /** The tensor's bytes as stored (a fresh, aligned buffer). */
  async readRaw(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    if (!this.handle) throw new Error(`${this.file} is closed.`);
    const buf = new Uint8Array(new ArrayBuffer(e.byteLength));
    await readFully(this.handle, buf, e.fileOffset);
    return buf;
  }

  /** Float tensors (F32/F16/BF16/F64) as f32. */
  async readF32(name: string): Promise<Float32Array> {
    const e = this.entry(name);
    if (e.dtype === 'BF16' || e.dtype === 'F16') {
      // Widen in place: read the 16-bit values into the upper half of the f32 result and convert
      // front to back (write i touches bytes [4i, 4i+4), never past the unread input at 2n + 2i + 2),
      // so a big embedding needs one buffer, not two.
      if (!this.handle) throw new Error(`${this.file} is closed.`);
      const n = e.byteLength / 2;
      const out = new Float32Array(n);
      const half = new Uint16Array(out.buffer, 2 * n, n);
      await readFully(this.handle, new Uint8Array(out.buffer, 2 * n, 2 * n), e.fileOffset);
      if (e.dtype === 'BF16') {
        const o = new Int32Array(out.buffer);
        for (let i = 0; i < n; i++) o[i] = half[i]! << 16;
      } else {
        f16ToF32Array(half, out);
      }
      return out;
    }
    const raw = await this.readRaw(name);
    return toF32(raw, e);
  }

  /** Float tensors as f16 bits (bf16 and f32 are rounded to nearest even; beyond ±65504 becomes ±inf). */
  async readF16(name: string): Promise<Uint16Array> {
    const e = this.entry(name);
    const raw = await this.readRaw(name);
    switch (e.dtype) {
      case 'F16': return new Uint16Array(raw.buffer, 0, raw.byteLength / 2);
      case 'BF16': return bf16ToF16Array(new Uint16Array(raw.buffer, 0, raw.byteLength / 2));
      default: return f32ToF16Array(toF32(raw, e));
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }
}

function toF32(raw: Uint8Array, e: TensorEntry): Float32Array {
  const n = raw.byteLength / DTYPE_BYTES[e.dtype];
  switch (e.dtype) {
    case 'F32': return new Float32Array(raw.buffer, 0, n);
    case 'F16': return f16ToF32Array(new Uint16Array(raw.buffer, 0, n));
    case 'BF16': return bf16ToF32Array(new Uint16Array(raw.buffer, 0, n));
    case 'F64': return Float32Array.from(new Float64Array(raw.buffer, 0, n));
    default:
      throw new Error(`Tensor "${e.name}" in ${e.file} is ${e.dtype}, not a float type; read it with readRaw.`);
  }
}

async function readFully(handle: fsp.FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    // Reads of >2 GiB must be split: the kernel returns at most ~2 GiB per read.
    const want = Math.min(buf.byteLength - done, 1 << 30);
    const { bytesRead } = await handle.read(buf, done, want, position + done);
    if (bytesRead === 0) throw new Error(`Unexpected end of file at byte ${position + done}.`);
    done += bytesRead;
  }
}
