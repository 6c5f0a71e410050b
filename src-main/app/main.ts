/**
 * Electron main process: one window, locked down; everything else lives in services/ and the job host.
 */
import { app, BrowserWindow, dialog, safeStorage, session, shell } from 'electron';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { IPC_EVENT } from '../contract';
import { createServices } from '../services';
import { CONTENT_SECURITY_POLICY } from './csp';
import { electronSettingsStore, utilityJobSpawner } from './electron-adapters';
import { installGatekeeper } from './ipc';
import { nativeDialog } from './dialogs';
import { allowPermission, isAllowedExternalUrl, isAppNavigation } from './security';

const here = path.dirname(fileURLToPath(import.meta.url));
const devUrl = process.env['ELECTRON_RENDERER_URL'];
const appUrl = devUrl ?? pathToFileURL(path.join(here, '../renderer/index.html')).toString();

let win: BrowserWindow | null = null;

app.enableSandbox();

// Every web contents (the window, and anything a page might try to create): no new windows, no navigation
// or redirect away from the app, no <webview>. Allowed external links (security.ts) open in the browser.
app.on('web-contents-created', (_e, contents) => {
  contents.setWindowOpenHandler(({ url }) => {
    if (isAllowedExternalUrl(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  contents.on('will-navigate', (e, url) => { if (!isAppNavigation(url, appUrl)) e.preventDefault(); });
  contents.on('will-redirect', (e, url) => { if (!isAppNavigation(url, appUrl)) e.preventDefault(); });
  contents.on('will-attach-webview', (e) => e.preventDefault());
});

app.whenReady().then(() => {
  const services = createServices({
    runtime: 'electron',
    version: app.getVersion(),
    store: electronSettingsStore(),
    // On Linux the backend says whether a real keyring encrypts (secrets.ts refuses 'basic_text').
    secretBox: {
      isEncryptionAvailable: () => safeStorage.isEncryptionAvailable(),
      encryptString: (plain) => safeStorage.encryptString(plain),
      decryptString: (cipher) => safeStorage.decryptString(cipher),
      ...(process.platform === 'linux' ? { backend: () => safeStorage.getSelectedStorageBackend() } : {}),
    },
    spawnJob: utilityJobSpawner(here),
    modelsDir: process.env['LATHE_MODELS_DIR'] ?? path.join(app.getPath('userData'), 'models'),
    nativeDialog: nativeDialog((w, o) => (w ? dialog.showOpenDialog(w, o) : dialog.showOpenDialog(o)), () => win),
  });

  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, permission, callback) => callback(allowPermission(permission)));
  session.defaultSession.setPermissionCheckHandler((_wc, permission) => allowPermission(permission));
  session.defaultSession.setDevicePermissionHandler(() => false);

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
  // Navigation, redirects and new windows are handled for every web contents above (web-contents-created).
  void win.loadURL(appUrl);

  app.on('before-quit', () => { services.jobs.dispose(); void services.offload.close(); });
});

app.on('window-all-closed', () => app.quit());
