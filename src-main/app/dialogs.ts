/**
 * The native open dialog for the picker (contract 'files.native'). The policy is the pure `dialogOptions`:
 * one item, folders or files as asked, no hidden files, no creating folders from a file picker; `nativeDialog`
 * is the thin Electron part. What the dialog answers is checked by the call that then uses it (paths.ts).
 */
import type { BrowserWindow, OpenDialogOptions } from 'electron';
import type { NativeDialog } from '../services';
import type { PickKind } from '../contract/ux';

export function dialogOptions(req: { pick: PickKind; title: string; defaultPath?: string | undefined }): OpenDialogOptions {
  const properties: OpenDialogOptions['properties'] = req.pick === 'folder'
    ? ['openDirectory', 'createDirectory', 'dontAddToRecent']
    : ['openFile', 'dontAddToRecent'];
  return {
    title: req.title.slice(0, 200) || (req.pick === 'folder' ? 'Choose a folder' : 'Choose a file'),
    properties,
    ...(req.defaultPath ? { defaultPath: req.defaultPath } : {}),
  };
}

/** The chosen path, or null when the user cancelled. */
export function firstChoice(result: { canceled: boolean; filePaths: string[] }): string | null {
  return result.canceled ? null : (result.filePaths[0] ?? null);
}

export function nativeDialog(show: (win: BrowserWindow | null, o: OpenDialogOptions) => Promise<{ canceled: boolean; filePaths: string[] }>, win: () => BrowserWindow | null): NativeDialog {
  return async (req) => firstChoice(await show(win(), dialogOptions(req)));
}
