/**
 * The checkpoint manager. A checkpoint is a folder
 *
 *   checkpoints/step-000120/
 *     tensors.safetensors   trainable tensors (adapter, new embedding rows) + optimizer moments, f32
 *     state.json            { format, version, step, rng, dataPosition, valLoss, config, ... }
 *
 * written to a temporary folder and renamed into place, so a crash never leaves a half checkpoint under a
 * real name. Retention: the last `keepLast` plus the best by validation loss.
 */
import { promises as fsp, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SafetensorsReader, writeSafetensors } from '../safetensors';
import { UserError } from '../../util/progress';

export const CHECKPOINT_FORMAT = 'lathe-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointState {
  step: number;
  /** Serialized RNG state(s): whatever the trainer needs to continue bit-identically. */
  rng: Record<string, number[] | number>;
  /** Where the data iterator stands (e.g. epoch, index into the shuffled order). */
  dataPosition: Record<string, number>;
  valLoss: number | null;
  /** The full training config, so a resume can be checked against it. */
  config: unknown;
  /** Anything else the trainer wants back. */
  extra?: Record<string, unknown>;
}

export interface DamagedCheckpoint {
  dir: string;
  step: number;
  reason: string;
}

export interface Checkpoint {
  dir: string;
  state: CheckpointState;
  tensors: Map<string, Float32Array>;
}

interface StateFile extends CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  savedAt: string;
}

const NAME = /^step-(\d{6,})$/;

export class CheckpointManager {
  constructor(readonly root: string, readonly keepLast = 3) {}

  /** Completed checkpoints, oldest first. */
  list(): { dir: string; step: number }[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root)
      .map((n) => ({ n, m: NAME.exec(n) }))
      .filter((x): x is { n: string; m: RegExpExecArray } => x.m !== null && existsSync(path.join(this.root, x.n, 'state.json')))
      .map(({ n, m }) => ({ dir: path.join(this.root, n), step: Number(m[1]) }))
      .sort((a, b) => a.step - b.step);
  }

  async save(state: CheckpointState, tensors: Map<string, Float32Array>): Promise<string> {
    await fsp.mkdir(this.root, { recursive: true });
    const final = path.join(this.root, `step-${String(state.step).padStart(6, '0')}`);
    const tmp = path.join(this.root, `.tmp-${randomBytes(4).toString('hex')}`);
    await fsp.mkdir(tmp);
    try {
      await writeSafetensors(
        path.join(tmp, 'tensors.safetensors'),
        [...tensors].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: [data.length], data })),
        { format: CHECKPOINT_FORMAT },
      );
      const file: StateFile = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, savedAt: new Date().toISOString(), ...state };
      await fsp.writeFile(path.join(tmp, 'state.json'), JSON.stringify(file, null, 2) + '\n');
      await fsp.rm(final, { recursive: true, force: true });
      await fsp.rename(tmp, final);
    } catch (err) {
      await fsp.rm(tmp, { recursive: true, force: true });
      throw err;
    }
    await this.prune();
    return final;
  }

  async load(dir: string): Promise<Checkpoint> {
    let raw: StateFile;
    try {
      raw = JSON.parse(await fsp.readFile(path.join(dir, 'state.json'), 'utf8')) as StateFile;
    } catch {
      throw new UserError('checkpoint.unreadable', `The checkpoint in ${dir} cannot be read.`, 'Resume from an earlier checkpoint instead.');
    }
    if (raw.format !== CHECKPOINT_FORMAT || raw.version > CHECKPOINT_VERSION) {
      throw new UserError('checkpoint.format', `${dir} is not a checkpoint this Lathe can read (format ${raw.format} v${raw.version}).`, 'Update Lathe, or start a new run.');
    }
    const reader = await SafetensorsReader.open(path.join(dir, 'tensors.safetensors'));
    const tensors = new Map<string, Float32Array>();
    try {
      for (const name of reader.tensors.keys()) tensors.set(name, await reader.readF32(name));
    } finally {
      await reader.close();
    }
    const { format: _f, version: _v, savedAt: _s, ...state } = raw;
    return { dir, state, tensors };
  }

  async latest(): Promise<Checkpoint | null> {
    return (await this.latestUsable()).checkpoint;
  }

  /**
   * The newest checkpoint that loads, and the newer ones that did not (truncated or unreadable files)
   * with the reason: the trainer reports them rather than skipping them silently.
   */
  async latestUsable(): Promise<{ checkpoint: Checkpoint | null; damaged: DamagedCheckpoint[] }> {
    const all = this.list();
    const damaged: DamagedCheckpoint[] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      try {
        return { checkpoint: await this.load(all[i]!.dir), damaged };
      } catch (err) {
        damaged.push({ dir: all[i]!.dir, step: all[i]!.step, reason: err instanceof Error ? err.message : String(err) });
      }
    }
    return { checkpoint: null, damaged };
  }

  /**
   * Moves a damaged checkpoint aside (step-000010 -> step-000010.damaged): kept for inspection, never
   * resumed from or counted again. Returns the new path.
   */
  async setAside(dir: string): Promise<string> {
    let target = `${dir}.damaged`;
    for (let n = 2; existsSync(target); n++) target = `${dir}.damaged-${n}`;
    await fsp.rename(dir, target);
    return target;
  }

  async best(): Promise<{ dir: string; step: number; valLoss: number } | null> {
    let best: { dir: string; step: number; valLoss: number } | null = null;
    for (const c of this.list()) {
      const s = JSON.parse(await fsp.readFile(path.join(c.dir, 'state.json'), 'utf8')) as StateFile;
      if (s.valLoss !== null && Number.isFinite(s.valLoss) && (best === null || s.valLoss < best.valLoss)) {
        best = { dir: c.dir, step: c.step, valLoss: s.valLoss };
      }
    }
    return best;
  }

  /** Keep the newest `keepLast` and the best-by-validation; remove the rest and stray temp folders. */
  private async prune(): Promise<void> {
    const all = this.list();
    const keep = new Set(all.slice(-this.keepLast).map((c) => c.dir));
    const best = await this.best();
    if (best) keep.add(best.dir);
    for (const c of all) if (!keep.has(c.dir)) await fsp.rm(c.dir, { recursive: true, force: true });
    for (const n of readdirSync(this.root)) if (n.startsWith('.tmp-')) await fsp.rm(path.join(this.root, n), { recursive: true, force: true });
  }
}
