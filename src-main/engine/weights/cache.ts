/**
 * The weight cache: frozen weights the runtime cannot take as the model file stores them (bf16, which
 * neither onnxruntime's Node binding nor WebGPU reads; NF4 codes for QLoRA) are converted ONCE, tensor
 * by tensor, into files of a cache folder and referenced from the .onnx as external data. The protobuf
 * then holds only (location, offset, length) for every weight and stays small at any model size, and
 * JS never holds more than one tensor (NF4) or one chunk (conversions) of the model.
 *
 * Layout: <root>/weights/<key>/ with key = hash(model files' names, sizes, mtimes, cache version): a
 * model changed on disk gets a new entry. One file per tensor and conversion (`<name>.f32`, `.f16`,
 * `.nf4`), written to a temp name and renamed (atomic; concurrent runs at worst convert twice). onnxruntime
 * resolves every location against one folder (and refuses symlinks that leave it), so weights used as
 * stored (f32/f16 tensors of a mixed model) are hard links of the model's files in the entry, or copies
 * of the tensor when the cache is on another filesystem. Originals are only read.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../util/progress';
import { bf16ToF32Array, f32ToF16Array, numel, type ModelWeights, type TensorEntry } from '../safetensors';
import { ABSMAX_BLOCK, NF4_BLOCK, type Nf4Tensor } from '../quant/nf4';

/** Bump when a file's format or a conversion changes: old entries are then ignored (and clearable). */
export const WEIGHT_CACHE_VERSION = 1;
/** Elements converted per chunk: JS holds at most this many values of a tensor at a time. */
const CHUNK = 1 << 22;
/** Largest finite f16 value; bf16 values beyond it (the next is 65536) become infinities in f16. */
export const F16_MAX = 65504;

/** Where the cache lives: LATHE_CACHE_DIR, else the platform's per-user cache folder. */
export function defaultCacheRoot(): string {
  const env = process.env['LATHE_CACHE_DIR'];
  if (env) return path.resolve(env);
  if (process.platform === 'win32') return path.join(process.env['LOCALAPPDATA'] ?? path.join(os.homedir(), 'AppData', 'Local'), 'Lathe', 'Cache');
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'Lathe');
  return path.join(process.env['XDG_CACHE_HOME'] ?? path.join(os.homedir(), '.cache'), 'lathe');
}

/** An external-data reference relative to the cache entry folder. */
export interface CachedTensor {
  location: string;
  offset: number;
  length: number;
}

/** An NF4 tensor in the cache: the codes stay in the file; only the small f32 scales come back. */
export interface CachedNf4 {
  shape: number[];
  n: number;
  nb: number;
  nb2: number;
  codes: CachedTensor;
  absCodes: CachedTensor;
  scale2: Float32Array;
  offset: number;
}

const align64 = (n: number) => Math.ceil(n / 64) * 64;

/** Byte layout of a `.nf4` file: codes, absmax codes, scale2 (f32), offset (f32), each 64-byte aligned. */
function nf4Layout(shape: readonly number[]) {
  const n = numel(shape);
  const nb = Math.ceil(n / NF4_BLOCK), nb2 = Math.ceil(nb / ABSMAX_BLOCK);
  const codes = { offset: 0, length: (nb * NF4_BLOCK) / 2 };
  const absCodes = { offset: align64(codes.length), length: nb };
  const scale2 = { offset: align64(absCodes.offset + nb), length: nb2 * 4 };
  const off = { offset: align64(scale2.offset + scale2.length), length: 4 };
  return { n, nb, nb2, codes, absCodes, scale2, off, size: off.offset + 4 };
}

/** File name of a tensor's cached form: its name where safe, else a hash beside a readable part. */
function fileName(tensor: string, kind: string): string {
  const safe = tensor.replace(/[^A-Za-z0-9._-]/g, '_');
  const tag = safe === tensor ? '' : `-${createHash('sha256').update(tensor).digest('hex').slice(0, 8)}`;
  return `${safe.slice(0, 180)}${tag}.${kind}`;
}

/** Writes `size` bytes through `fill` to `target` atomically (temp file + rename); returns after the rename. */
function writeAtomically(target: string, fill: (write: (b: Uint8Array, at: number) => void) => void): void {
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    fill((b, at) => {
      for (let done = 0; done < b.byteLength;) done += writeSync(fd, b, done, b.byteLength - done, at + done);
    });
    closeSync(fd);
    renameSync(tmp, target);
  } catch (err) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw err;
  }
}

function readAt(fd: number, buf: Uint8Array, position: number): void {
  for (let done = 0; done < buf.byteLength;) {
    const n = readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) throw new Error(`Unexpected end of file at byte ${position + done}.`);
    done += n;
  }
}

function sizeIs(file: string, size: number): boolean {
  try {
    return statSync(file).size === size;
  } catch {
    return false;
  }
}

export class WeightCache {
  /** Model file -> its name inside the entry (a hard link), or null where linking failed. */
  private links = new Map<string, string | null>();
  /** Files this process wrote (conversions done now rather than found). */
  written = 0;

  private constructor(
    /** The entry folder: every external-data location is relative to it (the session's externalDataDir). */
    readonly dir: string,
    readonly weights: ModelWeights,
  ) {}

  /** The cache entry of `weights` under `root` (created if missing). */
  static open(weights: ModelWeights, root = defaultCacheRoot()): WeightCache {
    const files = weights.readers.map((r) => {
      const st = statSync(r.file);
      return { name: path.basename(r.file), size: st.size, mtimeMs: Math.round(st.mtimeMs) };
    }).sort((a, b) => (a.name < b.name ? -1 : 1));
    const key = createHash('sha256').update(JSON.stringify({ v: WEIGHT_CACHE_VERSION, files })).digest('hex').slice(0, 24);
    const dir = path.join(root, 'weights', key);
    try {
      mkdirSync(dir, { recursive: true });
      const meta = path.join(dir, 'entry.json');
      if (!existsSync(meta)) {
        const text = JSON.stringify({ version: WEIGHT_CACHE_VERSION, model: weights.dir, files }, null, 2) + '\n';
        writeAtomically(meta, (w) => w(new TextEncoder().encode(text), 0));
      }
    } catch (err) {
      throw new UserError('cache.unwritable', `Lathe could not write its weight cache in ${dir}: ${(err as Error).message}`,
        'Free some disk space or point LATHE_CACHE_DIR at a writable folder with room for the converted weights.');
    }
    return new WeightCache(dir, weights);
  }

  /** A tensor used as stored (F32/F16): the model file hard-linked into the entry, else the tensor copied. */
  stored(name: string): CachedTensor {
    const e = this.weights.entry(name);
    let link = this.links.get(e.file);
    if (link === undefined) {
      link = `model-${createHash('sha256').update(e.file).digest('hex').slice(0, 8)}-${path.basename(e.file)}`;
      const at = path.join(this.dir, link);
      try {
        if (!existsSync(at) || statSync(at).ino !== statSync(e.file).ino) {
          rmSync(at, { force: true });
          linkSync(e.file, at);
        }
      } catch {
        link = null; // another filesystem, or links not allowed: copy tensors instead
      }
      this.links.set(e.file, link);
    }
    if (link) return { location: link, offset: e.fileOffset, length: e.byteLength };
    const target = path.join(this.dir, fileName(name, 'raw'));
    if (!sizeIs(target, e.byteLength)) this.convert(e, target, 'copy');
    return { location: path.basename(target), offset: 0, length: e.byteLength };
  }

  /**
   * A BF16 tensor as f32 or f16, converted once (streamed in chunks). f16 refuses tensors holding values
   * beyond ±65504, which would become infinities: training on them would only produce non-finite losses.
   */
  converted(name: string, to: 'float32' | 'float16'): CachedTensor {
    const e = this.weights.entry(name);
    if (e.dtype !== 'BF16') throw new Error(`WeightCache.converted: ${name} is ${e.dtype}, not BF16.`);
    const n = numel(e.shape);
    const length = n * (to === 'float32' ? 4 : 2);
    const target = path.join(this.dir, fileName(name, to === 'float32' ? 'f32' : 'f16'));
    if (!sizeIs(target, length)) this.convert(e, target, to);
    return { location: path.basename(target), offset: 0, length };
  }

  /** The NF4 form of a 2-D weight: quantized by `make` the first time, read back (scales only) after. */
  async nf4(name: string, make: () => Promise<Nf4Tensor>): Promise<CachedNf4> {
    const e = this.weights.entry(name);
    const L = nf4Layout(e.shape);
    const target = path.join(this.dir, fileName(name, 'nf4'));
    const ref = (p: { offset: number; length: number }) => ({ location: path.basename(target), offset: p.offset, length: p.length });
    let scale2: Float32Array, offset: number;
    if (sizeIs(target, L.size)) {
      const fd = openSync(target, 'r');
      try {
        const s = new Uint8Array(L.off.offset + 4 - L.scale2.offset);
        readAt(fd, s, L.scale2.offset);
        scale2 = new Float32Array(s.buffer.slice(0, L.scale2.length));
        offset = new DataView(s.buffer).getFloat32(L.off.offset - L.scale2.offset, true);
      } finally {
        closeSync(fd);
      }
    } else {
      const q = await make();
      if (q.nb !== L.nb || q.nb2 !== L.nb2) throw new Error(`WeightCache.nf4: ${name} quantized to ${q.nb} blocks, expected ${L.nb}.`);
      writeAtomically(target, (w) => {
        w(q.codes, L.codes.offset);
        w(q.absCodes, L.absCodes.offset);
        w(new Uint8Array(q.scale2.buffer, q.scale2.byteOffset, q.scale2.byteLength), L.scale2.offset);
        w(new Uint8Array(Float32Array.of(q.offset).buffer), L.off.offset);
      });
      this.written++;
      scale2 = q.scale2.slice();
      offset = q.offset;
    }
    return { shape: [...e.shape], n: L.n, nb: L.nb, nb2: L.nb2, codes: ref(L.codes), absCodes: ref(L.absCodes), scale2, offset };
  }

  private convert(e: TensorEntry, target: string, to: 'float32' | 'float16' | 'copy'): void {
    const src = openSync(e.file, 'r');
    try {
      writeAtomically(target, (write) => {
        if (to === 'copy') {
          const buf = new Uint8Array(Math.min(e.byteLength, CHUNK * 4));
          for (let at = 0; at < e.byteLength; at += buf.byteLength) {
            const part = buf.subarray(0, Math.min(buf.byteLength, e.byteLength - at));
            readAt(src, part, e.fileOffset + at);
            write(part, at);
          }
          return;
        }
        const n = e.byteLength / 2;
        const raw = new Uint16Array(Math.min(n, CHUNK));
        const f32 = new Float32Array(raw.length);
        const f16 = to === 'float16' ? new Uint16Array(raw.length) : null;
        const bytes = new Uint8Array(raw.buffer);
        for (let i = 0; i < n; i += raw.length) {
          const m = Math.min(raw.length, n - i);
          readAt(src, bytes.subarray(0, 2 * m), e.fileOffset + 2 * i);
          const x = bf16ToF32Array(raw.subarray(0, m), f32.subarray(0, m));
          if (f16) {
            checkF16Range(e.name, x);
            f32ToF16Array(x, f16.subarray(0, m));
            write(new Uint8Array(f16.buffer, 0, 2 * m), 2 * i);
          } else {
            write(new Uint8Array(f32.buffer, 0, 4 * m), 4 * i);
          }
        }
      });
      this.written++;
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new UserError('cache.write', `Lathe could not write the converted weight ${e.name} to its cache (${target}): ${(err as Error).message}`,
        'Free some disk space (the cache needs about twice the model size for f32) or point LATHE_CACHE_DIR at a disk with room.');
    } finally {
      closeSync(src);
    }
  }
}

/** Refuses finite values that f16 cannot hold (they would become ±inf and every loss non-finite). */
function checkF16Range(name: string, x: Float32Array): void {
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    if (a > F16_MAX && a !== Infinity && a > worst) worst = a;
  }
  if (worst > 0) {
    throw new UserError('weights.f16Range',
      `The model's weight ${name} holds values as large as ${worst.toExponential(3)}; half precision (f16) stops at 65,504, so computing in f16 would turn them into infinities and training would only produce non-finite losses.`,
      'Train with compute set to float32 (or with QLoRA), which keep these values.');
  }
}

/** Size of the cache (what clearing would free: hard links of model files are not counted). */
export function cacheInfo(root = defaultCacheRoot()): { root: string; bytes: number; entries: { key: string; model: string | null; bytes: number; files: number }[] } {
  const base = path.join(root, 'weights');
  const entries: { key: string; model: string | null; bytes: number; files: number }[] = [];
  let keys: string[] = [];
  try {
    keys = readdirSync(base);
  } catch {
    return { root, bytes: 0, entries };
  }
  for (const key of keys.sort()) {
    const dir = path.join(base, key);
    let bytes = 0, files = 0, model: string | null = null;
    try {
      for (const f of readdirSync(dir)) {
        const st = statSync(path.join(dir, f));
        if (!st.isFile() || st.nlink > 1) continue; // a hard link shares its bytes with the model
        bytes += st.size;
        files++;
      }
      model = (JSON.parse(new TextDecoder().decode(readFileBytes(path.join(dir, 'entry.json')))) as { model?: string }).model ?? null;
    } catch { /* a half-written or foreign entry: still counted and clearable */ }
    entries.push({ key, model, bytes, files });
  }
  return { root, bytes: entries.reduce((s, e) => s + e.bytes, 0), entries };
}

function readFileBytes(file: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const buf = new Uint8Array(statSync(file).size);
    readAt(fd, buf, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Removes every cached weight (a later run converts again). Returns the bytes freed. */
export function clearCache(root = defaultCacheRoot()): { root: string; freed: number } {
  const freed = cacheInfo(root).bytes;
  // only our own folder: <root>/weights, never root itself (LATHE_CACHE_DIR may be a shared folder)
  rmSync(path.join(root, 'weights'), { recursive: true, force: true });
  return { root, freed };
}

/** Whether graphs built from `weights` need the cache (some weight is BF16, or QLoRA quantizes). */
export function needsWeightCache(weights: ModelWeights, quantize: 'none' | 'nf4' | undefined): boolean {
  return quantize === 'nf4' || weights.names().some((n) => weights.entry(n).dtype === 'BF16');
}
