import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync, readdirSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { testServices, tempDir } from '../../helpers/services';
import { MANIFEST_NAME } from '../../../src-main/services/projects';
import { UserError } from '../../../src-main/util/progress';

describe('projects on disk', () => {
  it('creates the folder layout with a versioned manifest and remembers it', async () => {
    const s = testServices();
    const parent = tempDir();
    const p = await s.projects.create(parent, 'Lathe: turning notes');
    expect(path.basename(p.path)).toBe('Lathe- turning notes');
    for (const sub of ['datasets', 'runs', 'exports']) expect(existsSync(path.join(p.path, sub))).toBe(true);
    const manifest = JSON.parse(readFileSync(path.join(p.path, MANIFEST_NAME), 'utf8'));
    expect(manifest).toMatchObject({ format: 'lathe-project', version: 1, name: 'Lathe: turning notes', modelPath: null });
    expect((await s.projects.recent()).map((r) => r.path)).toEqual([p.path]);
    // no temp files left behind by the atomic write
    expect(readdirSync(p.path).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('opens, sets the model, and refuses damaged or newer manifests in plain words', async () => {
    const s = testServices();
    const p = await s.projects.create(tempDir(), 'p');
    const updated = await s.projects.setModel(p.path, '/models/tiny');
    expect(updated.modelPath).toBe('/models/tiny');
    expect((await s.projects.open(p.path)).modelPath).toBe('/models/tiny');

    const bad = tempDir();
    writeFileSync(path.join(bad, MANIFEST_NAME), '{ not json');
    await expect(s.projects.open(bad)).rejects.toMatchObject({ code: 'projects.corrupt' });
    writeFileSync(path.join(bad, MANIFEST_NAME), JSON.stringify({ format: 'lathe-project', version: 99 }));
    await expect(s.projects.open(bad)).rejects.toMatchObject({ code: 'projects.tooNew' });
    await expect(s.projects.open(tempDir())).rejects.toBeInstanceOf(UserError);
  });

  it('never creates a project over a non-empty folder', async () => {
    const s = testServices();
    const parent = tempDir();
    mkdirSync(path.join(parent, 'mine'));
    writeFileSync(path.join(parent, 'mine', 'thesis.docx'), 'precious');
    await expect(s.projects.create(parent, 'mine')).rejects.toMatchObject({ code: 'projects.notEmpty' });
    expect(readFileSync(path.join(parent, 'mine', 'thesis.docx'), 'utf8')).toBe('precious');
  });

  it('drops vanished projects from the recent list', async () => {
    const s = testServices();
    const p = await s.projects.create(tempDir(), 'gone');
    s.settings.update({ recentProjects: [p.path, '/nonexistent/project'] });
    expect((await s.projects.recent()).map((r) => r.path)).toEqual([p.path]);
  });
});
