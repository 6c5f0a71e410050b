/**
 * Unit tests keep the weight cache (engine/weights/cache.ts) in a temp folder of their own instead of the
 * user's cache, unless LATHE_CACHE_DIR is set. Job processes the tests fork inherit it.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

if (!process.env['LATHE_CACHE_DIR']) process.env['LATHE_CACHE_DIR'] = mkdtempSync(path.join(os.tmpdir(), 'lathe-test-cache-'));
