/**
 * What a drop on a path field gives. Electron: the real path of each dropped item (the preload's
 * pathForFile, webUtils.getPathForFile). A plain browser hides where dropped files live; some file managers
 * also put file:// addresses in the drop, which are used; otherwise the note says only the name came through.
 */
export interface DropData {
  files: ArrayLike<File> | null | undefined;
  getData?(format: string): string;
}

export function droppedPaths(dt: DropData | null | undefined, pathForFile?: (f: File) => string): { paths: string[]; note: string } {
  if (!dt) return { paths: [], note: '' };
  const files = Array.from(dt.files ?? []);
  const real = files.map((f) => { try { return pathForFile?.(f) ?? ''; } catch { return ''; } }).filter((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p));
  if (real.length) return { paths: real, note: '' };
  const uris = fileUris(dt.getData?.('text/uri-list') ?? '') ;
  if (uris.length) return { paths: uris, note: '' };
  const text = (dt.getData?.('text/plain') ?? '').trim();
  if (text.startsWith('/') && !text.includes('\n')) return { paths: [text], note: '' };
  if (files.length) {
    const names = files.slice(0, 3).map((f) => `"${f.name}"`).join(', ');
    return { paths: [], note: `The browser only tells Lathe the name (${names}), not where it is. Use "Browse…" or type the full path.` };
  }
  return { paths: [], note: 'Nothing Lathe can use was dropped. Use "Browse…" or type the full path.' };
}

/** file:// lines of a text/uri-list as local paths (comments and other schemes left out). */
export function fileUris(list: string): string[] {
  const out: string[] = [];
  for (const line of list.split(/\r?\n/)) {
    const l = line.trim();
    if (!l || l.startsWith('#') || !l.toLowerCase().startsWith('file://')) continue;
    try {
      const u = new URL(l);
      if (u.host && u.host !== 'localhost') continue;
      const p = decodeURIComponent(u.pathname);
      out.push(/^\/[A-Za-z]:\//.test(p) ? p.slice(1) : p);
    } catch {
      // not a URL
    }
  }
  return out;
}
