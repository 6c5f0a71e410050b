/**
 * An export is built in a staging folder beside the destination (same filesystem, so the final rename is
 * atomic) and renamed into place only once it is complete and verified. Any failure removes the staging
 * folder: the user never sees a half-written model under the real name.
 */
import { existsSync, promises as fsp, readdirSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeError } from '../engine/safetensors/writer';
import { UserError } from '../util/progress';

/** Names that make up a tokenizer (copied into merged models and, with new tokens, into adapters). */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'chat_template.json',
  'tokenizer.model', 'vocab.json', 'merges.txt', 'added_tokens.json',
] as const;

export class StagingFolder {
  private constructor(readonly dir: string, readonly target: string) {}

  /** Refuses a non-empty destination unless `overwrite`; creates the parent and the staging folder. */
  static async create(target: string, overwrite: boolean): Promise<StagingFolder> {
    const abs = path.resolve(target);
    if (existsSync(abs)) {
      const st = await fsp.stat(abs);
      if (!st.isDirectory()) {
        throw new UserError('export.out-not-folder', `The destination ${abs} is a file, not a folder.`, 'Choose a new folder name for the export.');
      }
      if (readdirSync(abs).length > 0 && !overwrite) {
        throw new UserError('export.out-exists', `The destination folder ${abs} is not empty.`, 'Choose a new folder, or allow replacing it (--overwrite).');
      }
    }
    const dir = path.join(path.dirname(abs), `.${path.basename(abs)}.export-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    await removeStale(abs);
    try {
      await fsp.mkdir(path.dirname(abs), { recursive: true });
      await fsp.mkdir(dir);
    } catch (err) {
      throw writeError(dir, err);
    }
    return new StagingFolder(dir, abs);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    await this.writeText(name, JSON.stringify(value, null, 2) + '\n');
  }

  async writeText(name: string, text: string): Promise<void> {
    try {
      await fsp.writeFile(this.file(name), text);
    } catch (err) {
      throw writeError(this.file(name), err);
    }
  }

  /** Copies the named files that exist in `from`; returns those copied. */
  async copyFrom(from: string, names: readonly string[]): Promise<string[]> {
    const copied: string[] = [];
    for (const n of names) {
      const src = path.join(from, n);
      if (!existsSync(src)) continue;
      try {
        await fsp.copyFile(src, this.file(n));
      } catch (err) {
        throw writeError(this.file(n), err);
      }
      copied.push(n);
    }
    return copied;
  }

  /** Moves the finished folder into place; an old destination (allowed by `overwrite`) is replaced. */
  async publish(): Promise<void> {
    let old: string | null = null;
    try {
      if (existsSync(this.target)) {
        old = `${this.dir}.old`;
        await fsp.rename(this.target, old);
      }
      await fsp.rename(this.dir, this.target);
    } catch (err) {
      // Put the previous export back if it was moved aside.
      if (old && !existsSync(this.target)) await fsp.rename(old, this.target).catch(() => undefined);
      throw writeError(this.target, err);
    }
    if (old) await fsp.rm(old, { recursive: true, force: true });
  }

  async discard(): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

/** Staging folders of earlier exports to the same destination whose process is gone (a crash or kill). */
async function removeStale(target: string): Promise<void> {
  const parent = path.dirname(target);
  if (!existsSync(parent)) return;
  const prefix = `.${path.basename(target)}.export-`;
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    await fsp.rm(path.join(parent, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}
