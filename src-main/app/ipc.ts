/**
 * The gatekeeper: the only ipcMain handler. It checks that the call comes from our own window's main frame
 * loaded from our own bundle, then hands the payload to `dispatch`, which validates it against the contract.
 */
import { ipcMain, type IpcMainInvokeEvent, type WebContents } from 'electron';
import { IPC_INVOKE } from '../contract';
import { dispatch, type Services } from '../services';

export function isTrustedSender(event: IpcMainInvokeEvent, window: WebContents | null, appUrl: string): boolean {
  if (!window || event.sender.id !== window.id) return false;
  const frame = event.senderFrame;
  if (!frame || frame !== event.sender.mainFrame) return false;
  try {
    const url = new URL(frame.url);
    const app = new URL(appUrl);
    return url.protocol === app.protocol && url.host === app.host && url.pathname === app.pathname;
  } catch {
    return false;
  }
}

export function installGatekeeper(services: Services, getWindow: () => WebContents | null, appUrl: () => string): void {
  ipcMain.handle(IPC_INVOKE, async (event, channel: unknown, payload: unknown) => {
    if (!isTrustedSender(event, getWindow(), appUrl())) {
      return { ok: false, error: { code: 'ipc.untrustedSender', message: 'Refused a call from a page that is not Lathe’s own window.' } };
    }
    return dispatch(services, channel, payload);
  });
}
