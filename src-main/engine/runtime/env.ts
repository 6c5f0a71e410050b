/** Process environment the native GPU stack needs. */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Vulkan (under Dawn) wants a writable XDG_RUNTIME_DIR, or it prints errors and may fail. */
export function ensureXdgRuntimeDir(env: NodeJS.ProcessEnv = process.env): void {
  if (process.platform !== 'linux' || env.XDG_RUNTIME_DIR) return;
  const dir = join(tmpdir(), `lathe-xdg-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  env.XDG_RUNTIME_DIR = dir;
}
