/**
 * The window's security policy as pure functions (no Electron imports), so it is unit-tested:
 * which URLs may leave for the system browser, which navigations stay in the app, which permissions a
 * page gets (none). main.ts wires them into Electron.
 */

/** Hosts whose pages Lathe links to (model cards and docs); nothing else is handed to the OS. */
export const EXTERNAL_HOSTS: readonly string[] = ['huggingface.co'];

/** Whether a URL the renderer asked to open may go to the system browser: https, an allowed host, no credentials or odd port. */
export function isAllowedExternalUrl(raw: string): boolean {
  if (typeof raw !== 'string' || raw.length > 2048) return false;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  return url.protocol === 'https:' && url.username === '' && url.password === '' && url.port === '' && EXTERNAL_HOSTS.includes(url.hostname);
}

/** Whether a navigation or redirect stays on the app's own page (only the hash or query may change). */
export function isAppNavigation(raw: string, appUrl: string): boolean {
  try {
    const url = new URL(raw);
    const app = new URL(appUrl);
    return url.protocol === app.protocol && url.host === app.host && url.pathname === app.pathname;
  } catch {
    return false;
  }
}

/** Permission checks and requests: the app needs none of the web's permissions (camera, notifications, ...). */
export function allowPermission(_permission: string): boolean {
  return false;
}
