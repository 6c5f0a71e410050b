import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { JOB_V8_FLAGS, hasJobV8Flags } from '../../../src-main/util/v8-flags';

describe('job V8 flags', () => {
  it('are recognized in execArgv', () => {
    expect(hasJobV8Flags([])).toBe(false);
    expect(hasJobV8Flags(['--import', 'tsx', ...JOB_V8_FLAGS])).toBe(true);
  });

  it('a plain `node script` relaunches itself with them, passing arguments and the exit code through', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-flags-'));
    try {
      const script = join(dir, 'probe.mjs');
      const api = new URL('../../../src-main/util/v8-flags.ts', import.meta.url).href;
      const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs')).href;
      writeFileSync(script, `const { register } = await import(${JSON.stringify(tsx)});
register();
const { relaunchWithJobFlags } = await import(${JSON.stringify(api)});
const code = relaunchWithJobFlags(process.argv[1], process.argv.slice(2));
if (code !== null) { console.log('parent saw', code); process.exit(code); }
console.log(JSON.stringify({ argv: process.argv.slice(2), execArgv: process.execArgv }));
process.exit(3);
`);
      let out = '', status = 0;
      try {
        execFileSync(process.execPath, [script, 'a', 'b c'], { encoding: 'utf8' });
      } catch (e) {
        ({ stdout: out, status } = e as { stdout: string; status: number });
      }
      expect(status).toBe(3);
      const [child, parent] = out.trim().split('\n');
      const r = JSON.parse(child!) as { argv: string[]; execArgv: string[] };
      expect(r.argv).toEqual(['a', 'b c']);
      expect(r.execArgv).toEqual(expect.arrayContaining([...JOB_V8_FLAGS]));
      expect(parent).toBe('parent saw 3');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
