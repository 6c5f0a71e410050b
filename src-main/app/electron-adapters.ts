/** Electron implementations of the service ports: electron-store settings and utility-process jobs. */
import { utilityProcess } from 'electron';
import Store from 'electron-store';
import path from 'node:path';
import type { KeyValueStore, Settings } from '../services/settings';
import type { JobProcess, JobToHost, SpawnJobProcess } from '../services/jobs/protocol';
import { JOB_V8_FLAGS } from '../util/v8-flags';

export function electronSettingsStore(): KeyValueStore {
  const store = new Store<{ settings: Settings }>({ name: 'settings' });
  return {
    read: () => store.get('settings'),
    write: (value) => store.set('settings', value),
  };
}

export function utilityJobSpawner(mainDir: string): SpawnJobProcess {
  return (): JobProcess => {
    const child = utilityProcess.fork(path.join(mainDir, 'job-process.js'), [], { serviceName: 'Lathe job', stdio: 'pipe', execArgv: [...JOB_V8_FLAGS] });
    let tail = '';
    child.stderr?.on('data', (chunk: Buffer) => { tail = (tail + chunk.toString('utf8')).slice(-4000); });
    return {
      send: (m) => child.postMessage(m),
      onMessage: (l) => child.on('message', (m) => l(m as JobToHost)),
      onExit: (l) => child.once('exit', (code) => l(code, null)),
      stderrTail: () => tail,
      kill: () => { child.kill(); },
    };
  };
}
