import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createServices, type Services } from '../../src-main/services';
import { MemoryStore } from '../../src-main/services/settings';
import { spawnNodeJobProcess } from '../../src-main/services/jobs/node-process';
import type { SecretBox } from '../../src-main/services/secrets';

export function tempDir(prefix = 'lathe-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A stand-in keychain for tests: reversible, and visibly not plain text. */
export const fakeKeychain: SecretBox = {
  isEncryptionAvailable: () => true,
  encryptString: (s) => Buffer.from([...Buffer.from(s, 'utf8')].map((b) => b ^ 0x5a)),
  decryptString: (b) => Buffer.from([...b].map((x) => x ^ 0x5a)).toString('utf8'),
};

/** `modelsDir`: the models folder Hub downloads go to (a fresh temp folder by default). */
export function testServices(opts: { secretBox?: SecretBox | null; modelsDir?: string } = {}): Services {
  return createServices({
    runtime: 'bridge',
    version: '0.0.0-test',
    store: new MemoryStore(),
    secretBox: opts.secretBox === undefined ? null : opts.secretBox,
    spawnJob: spawnNodeJobProcess,
    modelsDir: opts.modelsDir ?? path.join(tempDir('lathe-models-'), 'models'),
  });
}
