/**
 * Electron main process: one window, locked down; everything else lives in services/ and the job host.
 */
import { app, BrowserWindow, safeStorage, session, shell } from 'electron';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { IPC_EVENT } from '../contract';
import { createServices } from '../services';
import { CONTENT_SECURITY_POLICY } from './csp';
import { electronSettingsStore, utilityJobSpawner } from './electron-adapters';
import { installGatekeeper } from './ipc';

const here = path.dirname(fileURLToPath(import.meta.url));
const devUrl = process.env['ELECTRON_RENDERER_URL'];
const appUrl = devUrl ?? pathToFileURL(path.join(here, '../renderer/index.html')).toString();

let win: BrowserWindow | null = null;

app.enableSandbox();

app.whenReady().then(() => {
  const services = createServices({
    runtime: 'electron',
    version: app.getVersion(),
    store: electronSettingsStore(),
    secretBox: safeStorage,
    spawnJob: utilityJobSpawner(here),
  });

  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));

  installGatekeeper(services, () => win?.webContents ?? null, () => appUrl);
  services.jobs.onEvent((e) => win?.webContents.send(IPC_EVENT, 'job', e));

  win = new BrowserWindow({
    width: 1280,
    height: 840,
    title: 'Lathe',
    show: false,
    webPreferences: {
      preload: path.join(here, '../preload/preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      webviewTag: false,
    },
  });
  win.once('ready-to-show', () => win?.show());
  // No navigation away from the app and no new windows; external links open in the browser.
  win.webContents.on('will-navigate', (e, url) => { if (url !== appUrl) e.preventDefault(); });
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url);
    return { action: 'deny' };
  });
  void win.loadURL(appUrl);

  app.on('before-quit', () => services.jobs.dispose());
});

app.on('window-all-closed', () => app.quit());
