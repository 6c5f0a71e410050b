import { promises as fsp, type PathLike } from 'node:fs';
import { extname, join, sep } from 'node:path';
import iconv from 'iconv-lite';
import { READERS, SkipFile, readPlain, type ImportOptions } from './formats';
import { addNote, type ImportStats } from './stats';
import type { Doc } from '../types';
import { CancelledError, UserError, throwIfCancelled } from '../../util/progress';

export { defaultImportOptions, htmlToText, type ImportOptions } from './formats';
export { newImportStats, type ImportNote, type ImportStats } from './stats';

/** A file found by walkFiles: `path` names it for people, `fsPath` opens it (differs for non-UTF-8 names). */
export interface FoundFile { path: string; fsPath: PathLike; explicit: boolean }

/** Program code, data and media extensions: named in the skip reason, since they are not prose. */
const NOT_PROSE: Record<string, string> = Object.fromEntries([
  ...['.js', '.mjs', '.cjs', '.ts', '.tsx', '.jsx', '.py', '.rb', '.java', '.c', '.h', '.cpp', '.cs', '.go', '.rs', '.php', '.sh', '.bat', '.ps1', '.swift', '.kt', '.css', '.scss', '.sql', '.lua', '.pl'].map((e) => [e, 'program code']),
  ...['.png', '.jpg', '.jpeg', '.gif', '.webp', '.svg', '.ico', '.mp3', '.wav', '.mp4', '.mov', '.avi'].map((e) => [e, 'an image, sound or video']),
  ...['.zip', '.gz', '.tgz', '.bz2', '.xz', '.7z', '.rar', '.tar'].map((e) => [e, 'an archive: unpack it first']),
  ...['.exe', '.dll', '.so', '.dylib', '.bin', '.o', '.class', '.pyc', '.wasm'].map((e) => [e, 'a program or binary file']),
  ...['.doc', '.rtf', '.odt', '.pages', '.xls', '.xlsx', '.ppt', '.pptx', '.epub'].map((e) => [e, 'an office format that is not read: save it as .docx, .txt or .pdf']),
]);

/**
 * A file name's bytes as text: UTF-8 when valid, else Windows-1252 (so "caf\xe9.txt" reads
 * "café.txt"), with a flag so the report can say the name was not UTF-8.
 */
function nameOf(raw: Buffer): { name: string; utf8: boolean } {
  const s = raw.toString('utf8');
  if (!s.includes('\ufffd') || Buffer.from(s, 'utf8').equals(raw)) return { name: s, utf8: true };
  return { name: iconv.decode(raw, 'windows-1252'), utf8: false };
}

/**
 * Every file under `paths` (folders recursively, sorted, symlinks followed once: a loop is reported
 * and not re-entered). Unreadable entries are reported in `stats.filesSkipped`, never fatal. Names
 * are read as bytes: a name that is not UTF-8 (copied from an old disk or archive) is opened by its
 * bytes and reported under a readable form of it.
 */
export async function* walkFiles(paths: string[], stats: ImportStats): AsyncGenerator<FoundFile> {
  const seenDirs = new Set<string>();
  /** Real path as latin1 text (byte-exact, whatever the name's encoding); null when it cannot be resolved. */
  const realOf = async (fsPath: PathLike): Promise<string | null> => {
    try { return (await fsp.realpath(fsPath, { encoding: 'buffer' })).toString('latin1'); } catch { return null; }
  };
  /** `root`: the real path of the file or folder the user named; what a folder holds must stay inside it. */
  async function* visit(p: string, fsPath: PathLike, explicit: boolean, root: string | null): AsyncGenerator<FoundFile> {
    let st;
    try {
      st = await fsp.stat(fsPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ELOOP' ? 'symbolic link loop' : code === 'ENOENT' ? (explicit ? 'does not exist' : 'broken symbolic link') : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENAMETOOLONG' ? 'path too long' : (e as Error).message;
      stats.filesSkipped.push({ path: p, reason: why });
      return;
    }
    const resolved = await realOf(fsPath);
    // a symbolic link inside a chosen folder that leads out of it (to /etc, a home folder, ...) is not followed:
    // the user chose the folder, not what its links point at
    if (!explicit && root !== null && resolved !== null && resolved !== root && !resolved.startsWith(root.endsWith(sep) ? root : root + sep)) {
      stats.filesSkipped.push({ path: p, reason: `a symbolic link that leads outside the chosen folder (to ${Buffer.from(resolved, 'latin1').toString('utf8')}): not followed` });
      return;
    }
    if (st.isDirectory()) {
      const real = resolved ?? p;
      if (seenDirs.has(real)) { stats.filesSkipped.push({ path: p, reason: 'symbolic link loop (folder already visited)' }); return; }
      seenDirs.add(real);
      let names: Buffer[];
      try {
        names = (await fsp.readdir(fsPath, { encoding: 'buffer' })).sort(Buffer.compare);
      } catch (e) {
        stats.filesSkipped.push({ path: p, reason: `folder not readable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
        return;
      }
      const base = typeof fsPath === 'string' ? Buffer.from(fsPath, 'utf8') : (fsPath as Buffer);
      for (const raw of names) {
        if (raw[0] === 0x2e) continue; // hidden files (.DS_Store, .git) are never corpus
        const { name, utf8 } = nameOf(raw);
        const shown = join(p, name);
        if (utf8 && typeof fsPath === 'string') { yield* visit(shown, shown, false, root); continue; }
        const bytes = Buffer.concat([base, Buffer.from('/'), raw]);
        if (!utf8) addNote(stats, shown, 'the file name is not valid UTF-8: shown here decoded as Windows-1252; the file was read by its original name');
        yield* visit(shown, bytes, false, root);
      }
    } else if (st.isFile()) {
      yield { path: p, fsPath, explicit };
    } else {
      stats.filesSkipped.push({ path: p, reason: st.isFIFO() ? 'a named pipe, not a file' : st.isSocket() ? 'a socket, not a file' : 'a device or other special file, not a regular file' });
    }
  }
  for (const p of paths) yield* visit(p, p, true, await realOf(p));
}

/**
 * Streams documents from files and folders. Reads only; originals are never modified. A file named
 * explicitly with an unknown extension is read as text; in folders such files are skipped. Every
 * file that gives no document is reported with the reason (empty, no text, unreadable, ...), and a
 * reader failing on a file it cannot handle skips that file, never the import.
 */
export async function* importPaths(paths: string[], o: ImportOptions, stats: ImportStats, signal?: AbortSignal): AsyncGenerator<Doc> {
  for await (const f of walkFiles(paths, stats)) {
    throwIfCancelled(signal);
    const ext = extname(f.path).toLowerCase();
    const reader = READERS[ext] ?? (f.explicit ? readPlain : undefined);
    if (!reader) {
      const what = NOT_PROSE[ext];
      stats.filesSkipped.push({ path: f.path, reason: what ? `unsupported file type "${ext}" (${what})` : `unsupported file type "${ext || '(none)'}"` });
      continue;
    }
    let docs = 0;
    try {
      for await (const d of reader(f.path, o, stats, signal, f.fsPath)) {
        docs++;
        stats.docs++;
        stats.chars += d.text.length;
        yield d;
      }
      if (docs) stats.filesRead++;
      else stats.filesSkipped.push({ path: f.path, reason: 'no text found' });
    } catch (e) {
      if (e instanceof CancelledError || e instanceof UserError || (e as Error).name === 'AbortError') throw e;
      if (docs) stats.filesRead++;
      const after = docs ? `; the ${docs} document${docs === 1 ? '' : 's'} read before it are kept` : '';
      if (e instanceof SkipFile) {
        if (docs) addNote(stats, f.path, `reading stopped: ${e.message}${after}`);
        else stats.filesSkipped.push({ path: f.path, reason: e.message });
        continue;
      }
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied'
        : code === 'EISDIR' ? 'a folder, not a file'
          : code === 'EIO' ? 'read error (EIO): the disk or network drive failed'
            : `could not be read: ${(e as Error).message.slice(0, 300)}`;
      if (docs) addNote(stats, f.path, `reading stopped: ${why}${after}`);
      else stats.filesSkipped.push({ path: f.path, reason: why });
    }
  }
}
