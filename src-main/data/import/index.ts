import { promises as fsp } from 'node:fs';
import { extname, join } from 'node:path';
import { READERS, SkipFile, readPlain, type ImportOptions } from './formats';
import type { ImportStats } from './stats';
import type { Doc } from '../types';
import { throwIfCancelled } from '../../util/progress';

export { defaultImportOptions, htmlToText, type ImportOptions } from './formats';
export { newImportStats, type ImportStats } from './stats';

/**
 * Every file under `paths` (folders recursively, sorted, symlinks followed once: a loop is reported
 * and not re-entered). Unreadable entries are reported in `stats.filesSkipped`, never fatal.
 */
export async function* walkFiles(paths: string[], stats: ImportStats): AsyncGenerator<{ path: string; explicit: boolean }> {
  const seenDirs = new Set<string>();
  async function* visit(p: string, explicit: boolean): AsyncGenerator<{ path: string; explicit: boolean }> {
    let st;
    try {
      st = await fsp.stat(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ELOOP' ? 'symbolic link loop' : code === 'ENOENT' ? (explicit ? 'does not exist' : 'broken symbolic link') : code === 'EACCES' ? 'permission denied' : (e as Error).message;
      stats.filesSkipped.push({ path: p, reason: why });
      return;
    }
    if (st.isDirectory()) {
      let real: string;
      try { real = await fsp.realpath(p); } catch { real = p; }
      if (seenDirs.has(real)) { stats.filesSkipped.push({ path: p, reason: 'symbolic link loop (folder already visited)' }); return; }
      seenDirs.add(real);
      let names: string[];
      try {
        names = (await fsp.readdir(p)).sort();
      } catch (e) {
        stats.filesSkipped.push({ path: p, reason: `folder not readable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
        return;
      }
      for (const n of names) {
        if (n.startsWith('.')) continue; // hidden files (.DS_Store, .git) are never corpus
        yield* visit(join(p, n), false);
      }
    } else if (st.isFile()) {
      yield { path: p, explicit };
    } else {
      stats.filesSkipped.push({ path: p, reason: 'not a regular file' });
    }
  }
  for (const p of paths) yield* visit(p, true);
}

/**
 * Streams documents from files and folders. Reads only; originals are never modified. A file named
 * explicitly with an unknown extension is read as text; in folders such files are skipped.
 */
export async function* importPaths(paths: string[], o: ImportOptions, stats: ImportStats, signal?: AbortSignal): AsyncGenerator<Doc> {
  for await (const f of walkFiles(paths, stats)) {
    throwIfCancelled(signal);
    const ext = extname(f.path).toLowerCase();
    const reader = READERS[ext] ?? (f.explicit ? readPlain : undefined);
    if (!reader) { stats.filesSkipped.push({ path: f.path, reason: `unsupported file type "${ext || '(none)'}"` }); continue; }
    try {
      for await (const d of reader(f.path, o, stats, signal)) {
        stats.docs++;
        stats.chars += d.text.length;
        yield d;
      }
      stats.filesRead++;
    } catch (e) {
      if (e instanceof SkipFile) { stats.filesSkipped.push({ path: f.path, reason: e.message }); continue; }
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' || code === 'EIO') {
        stats.filesSkipped.push({ path: f.path, reason: code === 'EIO' ? 'read error (EIO)' : 'permission denied' });
        continue;
      }
      throw e;
    }
  }
}
