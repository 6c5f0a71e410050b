/**
 * A model's weights as one name -> tensor map, whether stored as a single model.safetensors or as
 * shards listed in model.safetensors.index.json ({ metadata: { total_size }, weight_map: { name: file } }).
 * Also the matching writer, which splits tensors into shards above a size.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { UserError, throwIfCancelled, type WorkOptions } from '../../util/progress';
import { SafetensorsReader, numel, type TensorEntry } from './reader';
import { SafetensorsWriter, tempPathFor, writeError, type TensorData, type TensorSpec } from './writer';
import { DTYPE_BYTES } from './dtype';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export class ModelWeights {
  private constructor(
    readonly dir: string,
    readonly readers: SafetensorsReader[],
    private readonly byName: Map<string, SafetensorsReader>,
    /** Whether the weights came from an index (sharded). */
    readonly sharded: boolean,
  ) {}

  /** Opens every weight file of a model folder (headers only) and validates the index. */
  static async open(dir: string): Promise<ModelWeights> {
    const abs = path.resolve(dir);
    const indexPath = path.join(abs, INDEX_FILE);
    if (existsSync(indexPath)) {
      const weightMap = await readIndex(indexPath);
      const files = [...new Set(Object.values(weightMap))].sort();
      const missing = files.filter((f) => !existsSync(path.join(abs, f)));
      if (missing.length > 0) {
        throw new UserError(
          'model-shard-missing',
          `The model is split into ${files.length} files but ${missing.length} ${missing.length === 1 ? 'is' : 'are'} missing: ${missing.join(', ')}.`,
          `Download the missing file${missing.length === 1 ? '' : 's'} into ${abs} (every file listed in ${INDEX_FILE} is needed).`,
        );
      }
      const readers: SafetensorsReader[] = [];
      try {
        const byFile = new Map<string, SafetensorsReader>();
        for (const f of files) {
          const r = await SafetensorsReader.open(path.join(abs, f));
          readers.push(r);
          byFile.set(f, r);
        }
        const byName = new Map<string, SafetensorsReader>();
        for (const [name, f] of Object.entries(weightMap)) {
          const r = byFile.get(f)!;
          if (!r.tensors.has(name)) {
            throw new UserError(
              'model-shard-mismatch',
              `${INDEX_FILE} says tensor "${name}" is in ${f}, but that file does not contain it.`,
              'The shards and the index come from different versions of the model. Download the model folder again.',
            );
          }
          byName.set(name, r);
        }
        return new ModelWeights(abs, readers, byName, true);
      } catch (err) {
        await Promise.all(readers.map((r) => r.close()));
        throw err;
      }
    }
    const single = path.join(abs, SINGLE_FILE);
    if (!existsSync(single)) {
      const others = existsSync(abs) ? (await fsp.readdir(abs)).filter((f) => /\.(bin|pt|pth|gguf|ckpt)$/.test(f)) : [];
      throw new UserError(
        'model-weights-missing',
        others.length > 0
          ? `No safetensors weights in ${path.basename(abs)}: found only ${others.join(', ')}, which Lathe cannot read.`
          : `No weights in ${path.basename(abs)}: neither ${SINGLE_FILE} nor ${INDEX_FILE} is there.`,
        others.length > 0
          ? 'Use the safetensors version of this model (most Hugging Face models offer one).'
          : `Choose the folder that holds config.json and ${SINGLE_FILE} (Looked in ${abs}).`,
      );
    }
    const r = await SafetensorsReader.open(single);
    const byName = new Map<string, SafetensorsReader>();
    for (const name of r.tensors.keys()) byName.set(name, r);
    return new ModelWeights(abs, [r], byName, false);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** dtype, shape, file and absolute byte offset of a tensor. */
  entry(name: string): TensorEntry {
    const r = this.byName.get(name);
    if (!r) throw new Error(`Tensor "${name}" is not among the model's weights in ${this.dir}.`);
    return r.entry(name);
  }

  tryEntry(name: string): TensorEntry | undefined {
    return this.byName.get(name)?.entry(name);
  }

  readF32(name: string): Promise<Float32Array> {
    return this.reader(name).readF32(name);
  }

  readF16(name: string): Promise<Uint16Array> {
    return this.reader(name).readF16(name);
  }

  readRaw(name: string): Promise<Uint8Array> {
    return this.reader(name).readRaw(name);
  }

  /** Total bytes of all tensors as stored. */
  totalBytes(): number {
    let n = 0;
    for (const name of this.byName.keys()) n += this.entry(name).byteLength;
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.close()));
  }

  private reader(name: string): SafetensorsReader {
    const r = this.byName.get(name);
    if (!r) throw new Error(`Tensor "${name}" is not among the model's weights in ${this.dir}.`);
    return r;
  }
}

async function readIndex(indexPath: string): Promise<Record<string, string>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(indexPath, 'utf8'));
  } catch (err) {
    throw new UserError('model-index-invalid', `${INDEX_FILE} cannot be read: ${(err as Error).message}.`, 'Download the model folder again.');
  }
  const wm = (raw as { weight_map?: unknown })?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm) || !Object.values(wm).every((v) => typeof v === 'string' && v.length > 0)) {
    throw new UserError('model-index-invalid', `${INDEX_FILE} has no valid "weight_map" (name -> file).`, 'Download the model folder again.');
  }
  for (const f of Object.values(wm as Record<string, string>)) {
    // Shard names must stay inside the model folder.
    if (f.includes('/') || f.includes('\\') || f === '..' || f === '.') {
      throw new UserError('model-index-invalid', `${INDEX_FILE} points at "${f}", which is not a file in the model folder.`, 'Download the model folder again.');
    }
  }
  return wm as Record<string, string>;
}

export interface ShardedWriteOptions extends WorkOptions {
  /** Start a new shard when the current one would exceed this many bytes (default 5 GB, as HF). */
  maxShardBytes?: number;
  metadata?: Record<string, string>;
}

/**
 * Writes a model's tensors into `dir`: one model.safetensors, or model-0000i-of-0000n.safetensors
 * plus the index when they exceed `maxShardBytes`. `getData` is called once per tensor, in order, so
 * only one tensor needs to be in memory. Every file is written atomically; the index goes last.
 */
export async function writeModelWeights(
  dir: string,
  specs: readonly TensorSpec[],
  getData: (spec: TensorSpec) => Promise<TensorData> | TensorData,
  opts: ShardedWriteOptions = {},
): Promise<{ files: string[]; totalBytes: number }> {
  const max = opts.maxShardBytes ?? 5e9;
  const shards: TensorSpec[][] = [[]];
  let cur = 0;
  let total = 0;
  for (const s of specs) {
    const bytes = numel(s.shape) * DTYPE_BYTES[s.dtype];
    total += bytes;
    if (cur > 0 && cur + bytes > max) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1]!.push(s);
    cur += bytes;
  }
  const n = shards.length;
  const names = n === 1 ? [SINGLE_FILE] : shards.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(n)}.safetensors`);
  const metadata = { format: 'pt', ...opts.metadata };
  let done = 0;
  for (let i = 0; i < n; i++) {
    const w = await SafetensorsWriter.create(path.join(dir, names[i]!), shards[i]!, metadata);
    try {
      for (const s of shards[i]!) {
        throwIfCancelled(opts.signal);
        await w.write(s.name, await getData(s));
        done++;
        opts.onProgress?.({ fraction: done / specs.length, stage: 'Writing weights', message: `${done} of ${specs.length} tensors` });
      }
    } catch (err) {
      await w.abort();
      throw err;
    }
    await w.finish();
  }
  if (n > 1) {
    const weightMap: Record<string, string> = {};
    shards.forEach((sh, i) => sh.forEach((s) => { weightMap[s.name] = names[i]!; }));
    const target = path.join(dir, INDEX_FILE);
    const tmp = tempPathFor(target);
    try {
      await fsp.writeFile(tmp, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
      await fsp.rename(tmp, target);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw writeError(target, err);
    }
  }
  return { files: names, totalBytes: total };
}

function pad5(i: number): string {
  return String(i).padStart(5, '0');
}
