/**
 * SIGTERM and SIGHUP cancel like Ctrl+C (work folders removed on the way out), and `.work-<pid>`
 * folders of processes that are gone are removed at the next start.
 */
import { describe, expect, it } from 'vitest';
import { fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { processAlive, removeStaleWorkDirs } from '../../../src-main/util/signals';
import { tempDir } from '../../helpers/services';
import { tinyModel } from '../../helpers/tiny';

describe('stale work folders', () => {
  it('removes folders of dead processes and of an earlier process with this id, keeps live ones', () => {
    const dir = tempDir();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    expect(processAlive(dead)).toBe(false);
    const live = process.ppid;
    for (const pid of [dead, live, process.pid]) mkdirSync(path.join(dir, `.work-${pid}`, 'spool'), { recursive: true });
    mkdirSync(path.join(dir, '.work-notapid'));
    expect(removeStaleWorkDirs(dir).sort()).toEqual([`.work-${dead}`, `.work-${process.pid}`].sort());
    expect(readdirSync(dir).sort()).toEqual([`.work-${live}`, '.work-notapid'].sort());
  });
});

describe('lathe prepare under SIGTERM / SIGHUP', () => {
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    it(`${signal} cancels, removes .work-<pid> and exits 130`, async () => {
      const root = tempDir();
      const corpus = path.join(root, 'corpus');
      mkdirSync(corpus);
      // enough text that cleaning is still running when the signal comes
      const para = 'The lathe spins the blank while the gouge cuts a clean bevel along the grain. '.repeat(40);
      for (let i = 0; i < 400; i++) writeFileSync(path.join(corpus, `doc${i}.txt`), `${i} ${para}\n`.repeat(20));
      const out = path.join(root, 'out');
      const child = spawn(process.execPath, ['bin/lathe.mjs', 'prepare', corpus, '--out', out, '--threads', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await new Promise<void>((resolve, reject) => {
        const t0 = Date.now();
        const poll = setInterval(() => {
          if (existsSync(out) && readdirSync(out).some((n) => n.startsWith('.work-'))) { clearInterval(poll); resolve(); }
          else if (Date.now() - t0 > 60_000) { clearInterval(poll); reject(new Error(`no work folder within 60 s: ${stderr}`)); }
        }, 10);
      });
      child.kill(signal);
      const code = await exited;
      expect(readdirSync(out).filter((n) => n.startsWith('.work-'))).toEqual([]);
      expect(code, stderr).toBe(130);
      expect(stderr).toContain('Cancelled.');
    }, 120_000);
  }
});

describe('a job process under SIGTERM', () => {
  it('cancels the running job (work folder removed), tells the host, and exits', async () => {
    const root = tempDir();
    const corpus = path.join(root, 'corpus');
    mkdirSync(corpus);
    const para = 'The lathe spins the blank while the gouge cuts a clean bevel along the grain. '.repeat(40);
    for (let i = 0; i < 400; i++) writeFileSync(path.join(corpus, `doc${i}.txt`), `${i} ${para}\n`.repeat(20));
    const out = path.join(root, 'out');
    const child = fork(path.join('src-main', 'services', 'jobs', 'job-process.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'advanced' });
    const messages: string[] = [];
    child.on('message', (m) => messages.push((m as { type: string }).type));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await new Promise<void>((r) => { const t = setInterval(() => { if (messages.includes('ready')) { clearInterval(t); r(); } }, 10); });
    child.send({ type: 'start', jobId: 'j1', request: { kind: 'prepare', params: { mode: 'pretrain', truncation: 'drop', inputs: [corpus], general: [], out, tokenizerDir: await tinyModel('llama'), blockSize: 64, ratio: 0.7, valFraction: 0.02, seed: 1 } } });
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        if (existsSync(out) && readdirSync(out).some((n) => n.startsWith('.work-'))) { clearInterval(poll); resolve(); }
        else if (Date.now() - t0 > 60_000 || messages.includes('failed') || messages.includes('done')) { clearInterval(poll); reject(new Error(`no work folder: ${messages.join(',')}`)); }
      }, 10);
    });
    child.kill('SIGTERM');
    await exited;
    expect(messages).toContain('cancelled');
    expect(readdirSync(out).filter((n) => n.startsWith('.work-'))).toEqual([]);
  }, 120_000);
});
