/**
 * The bridge's access token, kept per user in the settings folder (`<LATHE_HOME>/bridge-token`, mode 0600) so
 * the page URL stays the same from one `lathe serve` / `npm run dev:web` to the next and can be bookmarked.
 * It changes only on request (`lathe serve --new-token`) or when the file is missing or damaged.
 */
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { writeFileAtomicSync } from '../util/atomic';

export const BRIDGE_TOKEN_FILE = 'bridge-token';
const TOKEN_RE = /^[0-9a-f]{32}$/;

export interface BridgeTokenResult {
  token: string;
  file: string;
  /** Why this token is new: 'renewed' on request, 'created' when there was none (or it was unreadable). */
  fresh: 'renewed' | 'created' | null;
}

/** The saved token from `home`, or a new one written there (0600) when `renew` is set or none is usable. */
export function bridgeToken(home: string, opts: { renew?: boolean } = {}): BridgeTokenResult {
  const file = path.join(home, BRIDGE_TOKEN_FILE);
  if (!opts.renew) {
    let saved: string | null = null;
    try {
      saved = readFileSync(file, 'utf8').trim();
    } catch {
      saved = null;
    }
    if (saved !== null && TOKEN_RE.test(saved)) {
      // Tighten a file someone made readable to others (the token is a key to the user's files).
      if (process.platform !== 'win32' && (statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      return { token: saved, file, fresh: null };
    }
  }
  const token = randomBytes(16).toString('hex');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileAtomicSync(file, token + '\n', 0o600);
  return { token, file, fresh: opts.renew ? 'renewed' : 'created' };
}
