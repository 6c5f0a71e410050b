/**
 * Starts a worker thread from an entry file that sits next to the caller's source. From TypeScript
 * sources (dev, tests, CLI under tsx) the entry is the .ts file, started through a tiny eval
 * trampoline that registers tsx first (worker execArgv ['--import', 'tsx'] does not apply to the entry
 * on Node 20). In a bundled build (electron-vite) the entry is `<bundleName>.js` in the output folder,
 * which is the caller's folder or its parent (shared code lands in out/main/chunks/).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startWorker(callerUrl: string, source: string, bundleName: string, opts: WorkerOptions = {}): Worker {
  if (callerUrl.endsWith('.ts')) {
    const tsxPkg = createRequire(callerUrl).resolve('tsx/package.json');
    const api = pathToFileURL(tsxPkg.replace(/package\.json$/, 'dist/esm/api/index.mjs')).href;
    const entry = new URL(source, callerUrl).href;
    const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
    return new Worker(code, { ...opts, eval: true });
  }
  const candidates = [new URL(`./${bundleName}.js`, callerUrl), new URL(`../${bundleName}.js`, callerUrl)];
  const found = candidates.find((u) => existsSync(fileURLToPath(u)));
  if (!found) throw new Error(`The worker script ${bundleName}.js is missing next to ${fileURLToPath(callerUrl)}; the build is incomplete.`);
  return new Worker(found, opts);
}
