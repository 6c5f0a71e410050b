/** Job processes as Node child processes (CLI, bridge, tests). The Electron app uses utilityProcess instead. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';
import type { JobProcess, JobToHost, SpawnJobProcess } from './protocol';
import { JOB_V8_FLAGS } from '../../util/v8-flags';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The job-process entry next to this file: the .ts source under tsx, or a bundled .js. */
function entryPath(): string {
  const ts = path.join(here, 'job-process.ts');
  return existsSync(ts) ? ts : path.join(here, 'job-process.js');
}

export const spawnNodeJobProcess: SpawnJobProcess = (): JobProcess => {
  const entry = entryPath();
  const child = fork(entry, [], {
    // tsx by its resolved URL: a bare 'tsx' would resolve from the current folder, so `lathe` run from
    // outside the repository (e.g. `npm run demo` writing ./lathe-demo elsewhere) could not start a job.
    execArgv: [...JOB_V8_FLAGS, ...(entry.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [])],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    serialization: 'advanced',
  });
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
    process.stderr.write(chunk);
  });
  return {
    send: (m) => { if (child.connected) child.send(m); },
    onMessage: (l) => child.on('message', (m) => l(m as JobToHost)),
    onExit: (l) => child.once('exit', (code, signal) => l(code, signal)),
    stderrTail: () => tail,
    kill: () => { child.kill('SIGKILL'); },
  };
};
