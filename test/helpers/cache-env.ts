/**
 * Unit tests keep the weight cache (engine/weights/cache.ts) in a temp folder of their own instead of the
 * user's cache, unless LATHE_CACHE_DIR is set; removed when the test process exits. Job processes the
 * tests fork inherit it.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

if (!process.env['LATHE_CACHE_DIR']) {
  // created by the cache itself when a test first uses it (most tests never do)
  const dir = path.join(os.tmpdir(), `lathe-test-cache-${process.pid}-${randomBytes(4).toString('hex')}`);
  process.env['LATHE_CACHE_DIR'] = dir;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
}
