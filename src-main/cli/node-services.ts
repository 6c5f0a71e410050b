/** Services for Node hosts (CLI, bridge): settings in a JSON file, jobs in child processes, no keychain. */
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServices, type Services } from '../services';
import { JsonFileStore } from '../services/settings';
import { spawnNodeJobProcess } from '../services/jobs/node-process';

export function latheHome(): string {
  return process.env['LATHE_HOME'] ?? path.join(os.homedir(), '.config', 'lathe');
}

export function packageVersion(): string {
  const pkg = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
  try {
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

export function nodeServices(): Services {
  return createServices({
    runtime: 'bridge',
    version: packageVersion(),
    store: new JsonFileStore(path.join(latheHome(), 'settings.json')),
    secretBox: null,
    spawnJob: spawnNodeJobProcess,
    modelsDir: process.env['LATHE_MODELS_DIR'] ?? path.join(latheHome(), 'models'),
  });
}
