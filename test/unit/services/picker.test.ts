import { mkdirSync, writeFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PathGuard } from '../../../src-main/services/paths';
import { listFolder, rememberFolder, MAX_RECENT } from '../../../src-main/services/picker';
import { MemoryStore, SettingsService } from '../../../src-main/services/settings';
import { dispatch } from '../../../src-main/services';
import { tempDir, testServices } from '../../helpers/services';

/** A fake home with secret folders, ordinary folders, files and a link out to a secret place. */
function fakeHome() {
  const home = tempDir('lathe-picker-home-');
  for (const d of ['.ssh', '.config', 'Documents/corpus', 'models/tiny', 'Downloads']) mkdirSync(path.join(home, d), { recursive: true });
  writeFileSync(path.join(home, '.ssh', 'id_ed25519'), 'secret');
  writeFileSync(path.join(home, 'Documents', 'notes.txt'), 'hello');
  writeFileSync(path.join(home, '.hidden-file'), 'x');
  symlinkSync(path.join(home, '.ssh'), path.join(home, 'Documents', 'keys'));
  return { home, guard: new PathGuard({ home }) };
}

describe('picker listing', () => {
  it('lists folders only for a folder picker, folders and files for a file picker, sorted, hiding dotfiles and secret places', () => {
    const { home, guard } = fakeHome();
    const folders = listFolder({ dir: home, pick: 'folder' }, guard, [], null);
    expect(folders.entries.map((e) => e.name)).toEqual(['Documents', 'Downloads', 'models']);
    expect(folders.hidden).toBe(3); // .ssh, .config, .hidden-file
    // The home folder holds secret folders: walkable, not choosable.
    expect(folders.choosable).toBe(false);
    const docs = listFolder({ dir: path.join(home, 'Documents'), pick: 'file' }, guard, [], null);
    // The link to ~/.ssh is not shown (it leads into a secret place), the file is.
    expect(docs.entries.map((e) => [e.name, e.kind, e.bytes])).toEqual([['corpus', 'folder', null], ['notes.txt', 'file', 5]]);
    expect(docs.hidden).toBe(1);
    expect(listFolder({ dir: path.join(home, 'Documents'), pick: 'folder' }, guard, [], null).choosable).toBe(true);
    expect(docs.parent).toBe(home);
  });

  it('refuses to list system and secret places, by path or through a link', () => {
    const { home, guard } = fakeHome();
    for (const p of ['/etc', '/proc/self', path.join(home, '.ssh'), path.join(home, 'Documents', 'keys')]) {
      expect(() => listFolder({ dir: p, pick: 'file' }, guard, [], null)).toThrow(/will not show/);
    }
    expect(() => listFolder({ dir: 'relative', pick: 'file' }, guard, [], null)).toThrow(/not a full path/);
    expect(() => listFolder({ dir: path.join(home, 'Documents', 'notes.txt'), pick: 'file' }, guard, [], null)).toThrow(/is a file/);
    expect(() => listFolder({ dir: path.join(home, 'nope'), pick: 'file' }, guard, [], null)).toThrow(/does not exist/);
  });

  it('the root lists no system folders', () => {
    const { guard } = fakeHome();
    const root = listFolder({ dir: '/', pick: 'folder' }, guard, [], null);
    const names = root.entries.map((e) => e.name);
    for (const sys of ['etc', 'proc', 'sys', 'dev', 'usr', 'boot']) expect(names).not.toContain(sys);
    expect(root.parent).toBeNull();
    expect(root.choosable).toBe(false);
  });

  it('starting places and recent folders; recent keeps 10, newest first, files give their folder', () => {
    const { home, guard } = fakeHome();
    const start = listFolder({ dir: null, pick: 'folder' }, guard, [path.join(home, 'gone'), path.join(home, 'models')], null);
    expect(start.places.map((p) => p.label)).toEqual(['Home', 'Documents', 'Downloads', 'Computer']);
    expect(start.recent).toEqual([path.join(home, 'models')]); // a folder that no longer exists is left out
    const settings = new SettingsService(new MemoryStore());
    for (let i = 0; i < 12; i++) { mkdirSync(path.join(home, 'Documents', `f${i}`)); rememberFolder(settings, guard, path.join(home, 'Documents', `f${i}`)); }
    rememberFolder(settings, guard, path.join(home, 'Documents', 'notes.txt'));
    const recent = settings.get().recentFolders;
    expect(recent).toHaveLength(MAX_RECENT);
    expect(recent[0]).toBe(path.join(home, 'Documents'));
    expect(recent[1]).toBe(path.join(home, 'Documents', 'f11'));
    expect(() => rememberFolder(settings, guard, path.join(home, '.ssh'))).toThrow(/will not use/);
  });

  it('through dispatch: confined, and the recent list lands in settings', async () => {
    const s = testServices();
    const dir = tempDir('lathe-picker-');
    mkdirSync(path.join(dir, 'a'));
    const listed = await dispatch(s, 'files.list', { dir, pick: 'folder' });
    expect(listed).toMatchObject({ ok: true, value: { dir, entries: [{ name: 'a', kind: 'folder' }] } });
    expect(await dispatch(s, 'files.list', { dir: '/etc', pick: 'folder' })).toMatchObject({ ok: false, error: { code: 'paths.notAllowed' } });
    expect(await dispatch(s, 'files.remember', { path: path.join(dir, 'a') })).toMatchObject({ ok: true, value: { recent: [path.join(dir, 'a')] } });
    expect(await dispatch(s, 'files.native', { pick: 'folder', title: 'x' })).toEqual({ ok: true, value: { available: false, path: null } });
    s.jobs.dispose();
    await s.offload.close();
  });
});
