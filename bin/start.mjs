#!/usr/bin/env node
// `npm start`: run the built app in Electron. Where Electron's program is missing (it is fetched separately from
// the npm package, and cannot be fetched offline) or there is no build yet, say what to do instead of failing
// with electron-vite's "Error: Electron uninstall".
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Where Electron's executable should be, or null when the electron package itself is missing. */
function electronBinary(env = process.env) {
  if (env.ELECTRON_EXEC_PATH) return env.ELECTRON_EXEC_PATH;
  let dir;
  try {
    dir = path.dirname(createRequire(path.join(root, 'package.json')).resolve('electron/package.json'));
  } catch {
    return null;
  }
  const pathFile = path.join(dir, 'path.txt');
  const name = existsSync(pathFile) ? readFileSync(pathFile, 'utf8').trim() : 'electron';
  return env.ELECTRON_OVERRIDE_DIST_PATH ? path.join(env.ELECTRON_OVERRIDE_DIST_PATH, name) : path.join(dir, 'dist', name);
}

function fail(lines) {
  process.stderr.write(lines.join('\n') + '\n');
  process.exit(1);
}

const bin = electronBinary();
if (!bin || !existsSync(bin)) {
  fail([
    `Electron's program is not installed${bin ? ` (${path.relative(root, bin)} is missing)` : ''}.`,
    'What to do, either:',
    '  - run Lathe in your browser instead (no Electron needed): npm run dev:web   then open the URL it prints;',
    '  - or fetch Electron (needs network access to GitHub): npx install-electron   then npm start again.',
  ]);
}
if (!existsSync(path.join(root, 'out', 'main', 'index.js'))) {
  fail(['The app is not built yet.', 'What to do: npm run build   then npm start again.']);
}
const child = spawn(process.execPath, [path.join(root, 'node_modules', 'electron-vite', 'bin', 'electron-vite.js'), 'preview', ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: root,
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
