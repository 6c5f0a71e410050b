/**
 * Preload (sandboxed): exposes one named function per contract channel and an allow-listed event
 * subscription on `window.lathe`. ipcRenderer itself never reaches the page.
 */
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import { channelNames, eventNames, GLOBAL_NAME, IPC_EVENT, IPC_INVOKE, type EventName } from '../contract';

const api: Record<string, unknown> = {};
for (const name of channelNames) {
  api[name] = (payload: unknown) => ipcRenderer.invoke(IPC_INVOKE, name, payload);
}
api.on = (event: EventName, listener: (payload: unknown) => void) => {
  if (!eventNames.includes(event)) throw new Error(`Unknown event "${String(event)}"`);
  const wrapped = (_e: IpcRendererEvent, name: string, payload: unknown) => {
    if (name === event) listener(payload);
  };
  ipcRenderer.on(IPC_EVENT, wrapped);
  return () => ipcRenderer.removeListener(IPC_EVENT, wrapped);
};

// Dropped files: Electron 45 has no File.path; the renderer asks for the path of a file the user dropped.
api.pathForFile = (file: File) => webUtils.getPathForFile(file);

contextBridge.exposeInMainWorld(GLOBAL_NAME, api);
