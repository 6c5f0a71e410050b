/**
 * Settings: a small validated key/value document. In the desktop app it lives in electron-store
 * (src-main/app/stores.ts adapts it); the bridge and the CLI use a JSON file with atomic writes.
 * Secrets never go here in plain text (see secrets.ts).
 */
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { Theme } from '../contract';
import { writeFileAtomicSync } from '../util/atomic';

export const SettingsSchema = z.object({
  /** Colour theme of the window; 'system' follows the OS. */
  theme: Theme.default('system'),
  /** Most recently opened project folders, newest first (at most 10). */
  recentProjects: z.array(z.string()).default([]),
  /** Folders chosen in the picker, newest first (at most 10; services/picker.ts). */
  recentFolders: z.array(z.string()).default([]),
  /** Hub token encrypted by the OS keychain (safeStorage), base64; never the token itself. */
  hubTokenEncrypted: z.string().optional(),
  /** The Hugging Face Hub's address (a mirror); HF_ENDPOINT wins; default https://huggingface.co. */
  hubEndpoint: z.string().max(2000).optional(),
});
export type Settings = z.infer<typeof SettingsSchema>;

export interface KeyValueStore {
  read(): unknown;
  write(value: Settings): void;
}

export class SettingsService {
  private cache: Settings;
  constructor(private readonly store: KeyValueStore) {
    const parsed = SettingsSchema.safeParse(store.read() ?? {});
    // A settings file damaged by hand or by an old version must not stop the app: start from defaults.
    this.cache = parsed.success ? parsed.data : SettingsSchema.parse({});
  }
  get(): Settings {
    return structuredClone(this.cache);
  }
  update(patch: Partial<Settings>): Settings {
    const next = SettingsSchema.parse({ ...this.cache, ...patch });
    this.store.write(next);
    this.cache = next;
    return this.get();
  }
}

/** JSON file store used outside Electron. */
export class JsonFileStore implements KeyValueStore {
  constructor(private readonly file: string) {}
  read(): unknown {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8'));
    } catch {
      return {};
    }
  }
  write(value: Settings): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, JSON.stringify(value, null, 2) + '\n');
  }
}

export class MemoryStore implements KeyValueStore {
  private value: unknown = {};
  read(): unknown {
    return this.value;
  }
  write(value: Settings): void {
    this.value = structuredClone(value);
  }
}
