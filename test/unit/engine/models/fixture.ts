/**
 * Reader for the parity fixtures written by test/oracle/models/gen_fixtures.py (format version 1):
 *   "LATHEFIX" | u32 version | u32 N | N bytes JSON header | data (tensors at header offsets).
 * The graph-building tests compare against these tensor by tensor.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { LoraLayout } from '../../../../src-main/engine/llm/lora';

export const FIXTURE_DIR = path.resolve(__dirname, '../../../oracle/models/fixtures');
export const FIXTURE_VERSION = 1;

export interface FixtureHeader {
  arch: string;
  architecture: string;
  /** sha256 of the tiny model's model.safetensors the fixture was computed from (seed `model_seed`, f32). */
  model_sha256: string;
  model_seed: number;
  /** How the model was made: createTinyModel(arch, dir, { seed, dtype, maxShardBytes: max_shard_bytes }). */
  model: { arch: string; seed: number; dtype: 'f32' | 'f16' | 'bf16'; max_shard_bytes?: number };
  batch: number; // B
  time: number; // T
  vocab: number; // V
  torch: string;
  lora: {
    rank: number;
    alpha: number;
    rslora: boolean;
    /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
    scale: number;
    dropout: number;
    /** Module = weight name without ".weight"; A is [rank, in], B is [out, rank]. */
    targets: Array<{ module: string; in: number; out: number }>;
  };
  adamw: { lr: number; beta1: number; beta2: number; eps: number; weight_decay: number; max_grad_norm: number; steps: number };
  /** Loss after the last AdamW step. */
  final_loss: number;
  tensors: Array<{ name: string; dtype: 'f32' | 'i32'; shape: number[]; offset: number; bytes: number }>;
}

export interface FixtureTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface ModelFixture {
  header: FixtureHeader;
  tensors: Map<string, FixtureTensor>;
  /** f32 tensor by name; throws naming the fixture if absent. */
  f32(name: string): Float32Array;
  i32(name: string): Int32Array;
  shape(name: string): number[];
}

/**
 * Tensors: input_ids, labels (i32 [B, T]); loss_mask, logits_base (no LoRA), logits (with LoRA)
 * [B, T, V]; loss [1]; per target module M: lora_A.M, lora_B.M (initial), grad_A.M, grad_B.M,
 * final_A.M, final_B.M (after the AdamW steps); adamw_losses, adamw_grad_norms [steps] (loss and
 * pre-clip global gradient norm at each step, computed before that step's update).
 */
export function readModelFixture(file: string): ModelFixture {
  const buf = readFileSync(file);
  const magic = buf.subarray(0, 8).toString('latin1');
  if (magic !== 'LATHEFIX') throw new Error(`${file}: not a Lathe fixture (magic "${magic}").`);
  const version = buf.readUInt32LE(8);
  if (version !== FIXTURE_VERSION) throw new Error(`${file}: fixture version ${version}, this reader knows ${FIXTURE_VERSION}. Regenerate with gen_fixtures.py.`);
  const n = buf.readUInt32LE(12);
  const header = JSON.parse(buf.subarray(16, 16 + n).toString('utf8')) as FixtureHeader;
  const dataStart = 16 + n;
  const tensors = new Map<string, FixtureTensor>();
  for (const t of header.tensors) {
    // Copy into a fresh, aligned buffer (Node buffers may share a pool and be unaligned).
    const bytes = new Uint8Array(buf.subarray(dataStart + t.offset, dataStart + t.offset + t.bytes));
    if (bytes.byteLength !== t.bytes) throw new Error(`${file}: tensor ${t.name} is truncated.`);
    const data = t.dtype === 'f32' ? new Float32Array(bytes.buffer) : new Int32Array(bytes.buffer);
    tensors.set(t.name, { shape: t.shape, data });
  }
  const get = (name: string): FixtureTensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${file}: no tensor "${name}".`);
    return t;
  };
  return {
    header,
    tensors,
    f32: (name) => {
      const d = get(name).data;
      if (!(d instanceof Float32Array)) throw new Error(`${file}: "${name}" is not f32.`);
      return d;
    },
    i32: (name) => {
      const d = get(name).data;
      if (!(d instanceof Int32Array)) throw new Error(`${file}: "${name}" is not i32.`);
      return d;
    },
    shape: (name) => get(name).shape,
  };
}

export function fixturePath(name: string): string {
  return path.join(FIXTURE_DIR, `${name}.fixture`);
}

/** Every committed fixture: one per tiny architecture, plus bf16 (sharded) and f16 llama variants. */
export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.fixture')).map((f) => f.slice(0, -'.fixture'.length)).sort();
}

/** sha256 over a model folder's .safetensors files in sorted name order (as gen_fixtures.py hashes them). */
export function weightsSha256(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) h.update(readFileSync(path.join(dir, f)));
  return h.digest('hex');
}

/** ‖a − b‖ / ‖b‖ (the parity measure: ≤ 1e-4 for fp32 on the CPU EP). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`Length mismatch: ${a.length} vs ${b.length}.`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Fixture A/B (per module) packed into the engine's flat LoRA vector; `prefix` lora_/grad_/final_. */
export function packLora(fx: ModelFixture, lora: LoraLayout, prefix: 'lora' | 'grad' | 'final'): Float32Array {
  const p = new Float32Array(lora.size);
  for (const m of lora.modules) {
    p.set(fx.f32(`${prefix}_A.${m.module}`), m.aOffset);
    p.set(fx.f32(`${prefix}_B.${m.module}`), m.bOffset);
  }
  return p;
}
