/**
 * Path confinement (issue 16): jobs and services read and write only under folders the user chose, system
 * places and secrets are refused, and runs.read answers only inside a known project.
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { dispatch } from '../../../src-main/services';
import { PathGuard } from '../../../src-main/services/paths';
import { UserError } from '../../../src-main/util/progress';
import { tempDir, testServices } from '../../helpers/services';

function code(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e instanceof UserError ? e.code : `not a UserError: ${(e as Error).message}`;
  }
}

describe('PathGuard', () => {
  it('refuses system places, secrets and folders that contain them; accepts ordinary folders', () => {
    const home = tempDir('lathe-home-');
    const g = new PathGuard({ home });
    for (const p of ['/etc/passwd', '/proc/self', '/dev/zero', '/sys', '/usr/share', '/', path.join(home, '.ssh', 'id_rsa'), path.join(home, '.config'), home]) {
      expect(code(() => g.choose(p, 'corpus', 'a corpus')), p).toBe('paths.notAllowed');
    }
    expect(code(() => g.choose('relative/dir', 'corpus', 'a corpus'))).toBe('paths.relative');
    const docs = path.join(home, 'Documents');
    mkdirSync(docs);
    expect(g.choose(docs, 'corpus', 'a corpus')).toBe(docs);
  });

  it('checks reads against chosen roots and writes against projects and exports only', () => {
    const g = new PathGuard({ home: tempDir('lathe-home-') });
    const model = tempDir('lathe-model-');
    const project = tempDir('lathe-proj-');
    g.choose(model, 'model', 'the model');
    g.choose(project, 'project', 'the project');
    expect(g.read(path.join(model, 'config.json'), 'x')).toBe(path.join(model, 'config.json'));
    expect(code(() => g.write(path.join(model, 'out'), 'x'))).toBe('paths.notAllowed'); // originals are never written
    expect(g.write(path.join(project, 'runs', 'r1'), 'x')).toBe(path.join(project, 'runs', 'r1'));
    expect(code(() => g.read(path.join(project, '..'), 'x'))).toBe('paths.notAllowed');
    expect(code(() => g.read(tempDir('lathe-other-'), 'x'))).toBe('paths.notAllowed');
  });

  it('follows symbolic links: a link inside a project does not lead out of it', () => {
    const g = new PathGuard({ home: tempDir('lathe-home-') });
    const project = tempDir('lathe-proj-');
    const outside = tempDir('lathe-outside-');
    symlinkSync(outside, path.join(project, 'link'));
    symlinkSync('/etc', path.join(project, 'etc'));
    g.choose(project, 'project', 'the project');
    expect(code(() => g.read(path.join(project, 'link', 'secret.txt'), 'x'))).toBe('paths.notAllowed');
    expect(code(() => g.read(path.join(project, 'etc', 'passwd'), 'x'))).toBe('paths.notAllowed');
  });

  it('refuses things that are neither files nor folders (a FIFO would block the reader)', () => {
    const g = new PathGuard({ home: tempDir('lathe-home-') });
    const dir = tempDir('lathe-fifo-');
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    expect(code(() => g.choose(fifo, 'corpus', 'a corpus'))).toBe('paths.notRegular');
  });
});

describe('confinement through dispatch (the gatekeeper and the bridge)', () => {
  const expectRefused = (env: { ok: boolean; error?: { code: string; message: string } }, codeWanted = 'paths.notAllowed') => {
    expect(env.ok).toBe(false);
    expect(env.error?.code).toBe(codeWanted);
  };

  it('refuses a prepare job on a system file, and one writing outside the project', async () => {
    const s = testServices();
    const res = await dispatch(s, 'app.resources', {});
    const tiny = (res as { value: { tinyModel: string; domainCorpus: string } }).value;
    const project = (await dispatch(s, 'projects.create', { parentDir: tempDir(), name: 'p' }) as { value: { path: string } }).value.path;
    const params = { inputs: ['/etc/passwd'], out: path.join(project, 'datasets', 'd'), tokenizerDir: tiny.tinyModel };
    const env = await dispatch(s, 'jobs.start', { kind: 'prepare', params });
    expectRefused(env as never);
    expect((env as { error: { message: string } }).error.message).toContain('/etc/passwd');
    expectRefused(await dispatch(s, 'jobs.start', { kind: 'prepare', params: { ...params, inputs: [tiny.domainCorpus], out: tempDir() } }) as never);
    // The bundled model is read-only: nothing is written into it.
    expectRefused(await dispatch(s, 'jobs.start', { kind: 'prepare', params: { ...params, inputs: [tiny.domainCorpus], out: path.join(tiny.tinyModel, 'd') } }) as never);
    expect(s.jobs.list()).toEqual([]);
    // The same job inside the project starts (and is cancelled at once: only the check matters here).
    const ok = await dispatch(s, 'jobs.start', { kind: 'prepare', params: { ...params, inputs: [tiny.domainCorpus] } });
    expect(ok.ok).toBe(true);
    if (ok.ok) s.jobs.cancel((ok.value as { jobId: string }).jobId);
    s.jobs.dispose();
  });

  it('answers runs.read, runs.list and datasets.list only inside a project the user opened', async () => {
    const s = testServices();
    const loose = tempDir('lathe-loose-');
    mkdirSync(path.join(loose, 'runs', 'r'), { recursive: true });
    expectRefused(await dispatch(s, 'runs.read', { runDir: path.join(loose, 'runs', 'r') }) as never);
    expectRefused(await dispatch(s, 'runs.list', { project: loose }) as never);
    expectRefused(await dispatch(s, 'runs.read', { runDir: '/etc' }) as never);
    // Opening a folder that is not a project fails and leaves it closed to writes.
    expect((await dispatch(s, 'projects.open', { path: loose })).ok).toBe(false);
    expectRefused(await dispatch(s, 'runs.list', { project: loose }) as never);
    writeFileSync(path.join(loose, 'lathe-project.json'), JSON.stringify({ format: 'lathe-project', version: 1, name: 'l', createdAt: 'x', modelPath: null }));
    expect((await dispatch(s, 'projects.open', { path: loose })).ok).toBe(true);
    expect((await dispatch(s, 'runs.list', { project: loose })).ok).toBe(true);
  });

  it('creates no project under /proc and answers at once (it used to spin forever)', async () => {
    const s = testServices();
    const t = Date.now();
    expectRefused(await dispatch(s, 'projects.create', { parentDir: '/proc', name: 'x' }) as never);
    expectRefused(await dispatch(s, 'projects.create', { parentDir: '/proc/self', name: 'x' }) as never);
    expectRefused(await dispatch(s, 'projects.open', { path: '/etc' }) as never);
    expect(Date.now() - t).toBeLessThan(5_000);
  });

  it('a project location that is a file, or cannot be created, fails in plain words', async () => {
    const s = testServices();
    const dir = tempDir();
    writeFileSync(path.join(dir, 'file'), 'x');
    const env = await dispatch(s, 'projects.create', { parentDir: path.join(dir, 'file', 'deeper'), name: 'p' });
    expect(env.ok).toBe(false);
    if (!env.ok) {
      expect(env.error.code).toBe('projects.cannotCreate');
      expect(env.error.message).toContain('is not a folder');
    }
  });
});
