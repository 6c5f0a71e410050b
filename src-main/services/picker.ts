/**
 * The file and folder picker the bridge serves in browser mode (Electron uses its native dialog, app/dialogs.ts):
 * a folder's entries, confined by paths.ts (system and secret places are neither listed nor entered), showing
 * only what the picker can choose (folders; and files for a file picker), plus starting places and the recent
 * folders kept in settings.
 */
import { readdirSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { FileEntry, FolderListing, PickKind } from '../contract/ux';
import type { PathGuard } from './paths';
import { resolveReal } from './paths';
import type { SettingsService } from './settings';
import { UserError } from '../util/progress';

/** At most this many entries per listing (a folder of 100 000 files must not freeze the page). */
export const MAX_ENTRIES = 2000;
export const MAX_RECENT = 10;

export interface ListRequest { dir: string | null; pick: PickKind; showHidden?: boolean }

export function listFolder(req: ListRequest, guard: PathGuard, recent: string[], resources: string | null): FolderListing {
  const places = startPlaces(guard, resources);
  const recentOk = recent.filter((p) => existsSync(p) && !guard.deniedInside(resolveReal(p)));
  if (req.dir === null) {
    return { dir: null, parent: null, choosable: false, entries: [], hidden: 0, truncated: false, places, recent: recentOk };
  }
  const dir = guard.browse(req.dir, 'the folder');
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new UserError('picker.missing', `${req.dir} does not exist.`, 'Go up one folder, or pick one of the places on the left.');
  }
  if (!st.isDirectory()) throw new UserError('picker.notFolder', `${req.dir} is a file, not a folder.`, 'Go to the folder that holds it.');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new UserError('picker.unreadable', `Lathe cannot read the folder ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`, 'You may not have permission to open it; choose another folder.');
  }
  const entries: FileEntry[] = [];
  let hidden = 0;
  for (const name of names) {
    if (!req.showHidden && name.startsWith('.')) { hidden++; continue; }
    const full = path.join(dir, name);
    let s;
    try {
      s = statSync(full); // follows links: a link is shown as what it leads to
    } catch {
      hidden++; // a broken link, or no permission
      continue;
    }
    if (guard.deniedInside(resolveReal(full))) { hidden++; continue; }
    if (s.isDirectory()) entries.push({ name, path: full, kind: 'folder', bytes: null });
    else if (s.isFile() && req.pick === 'file') entries.push({ name, path: full, kind: 'file', bytes: s.size });
    else hidden++;
  }
  entries.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name, 'en', { numeric: true, sensitivity: 'base' }) : a.kind === 'folder' ? -1 : 1));
  const parentDir = path.dirname(dir);
  const parent = parentDir !== dir && !guard.deniedInside(parentDir) ? parentDir : null;
  return {
    dir, parent, choosable: req.pick === 'folder' && isChoosable(guard, dir),
    entries: entries.slice(0, MAX_ENTRIES), hidden, truncated: entries.length > MAX_ENTRIES, places, recent: recentOk,
  };
}

function isChoosable(guard: PathGuard, p: string): boolean {
  try {
    guard.vet(p, 'the folder');
    return true;
  } catch {
    return false;
  }
}

function startPlaces(guard: PathGuard, resources: string | null): FolderListing['places'] {
  const out: FolderListing['places'] = [{ label: 'Home', path: guard.home }];
  for (const [label, sub] of [['Documents', 'Documents'], ['Downloads', 'Downloads'], ['Desktop', 'Desktop']] as const) {
    const p = path.join(guard.home, sub);
    if (existsSync(p)) out.push({ label, path: p });
  }
  if (resources && existsSync(resources)) out.push({ label: 'Bundled samples', path: resources });
  out.push({ label: 'Computer', path: path.parse(guard.home).root || '/' });
  return out;
}

/** Puts a chosen folder (or a chosen file's folder) first in the recent list, keeping at most MAX_RECENT. */
export function rememberFolder(settings: SettingsService, guard: PathGuard, p: string): string[] {
  const real = guard.vet(p, 'a recent folder');
  let folder = real;
  try {
    if (statSync(real).isFile()) folder = path.dirname(real);
  } catch {
    // not there (yet): kept as typed
  }
  const recent = [folder, ...settings.get().recentFolders.filter((r) => r !== folder)].slice(0, MAX_RECENT);
  settings.update({ recentFolders: recent });
  return recent;
}
