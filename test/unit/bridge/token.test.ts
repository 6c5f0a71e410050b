/**
 * Issue 22: the bridge URL can be bookmarked. The token is kept per user in the settings folder (0600),
 * survives a restart of the real bridge process, changes only with `--new-token`, and the app page without
 * the right token answers with how to open the app.
 */
import { afterAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startBridgeProcess, connect, type BridgeProcess } from '../../helpers/bridge-process';
import { tempDir } from '../../helpers/services';
import { BRIDGE_TOKEN_FILE, bridgeToken } from '../../../src-main/bridge/token';

const mode = (file: string): number => statSync(file).mode & 0o777;

describe('bridgeToken', () => {
  it('creates a 0600 token once, returns the same one after, and a new one only on request', () => {
    const home = path.join(tempDir('lathe-token-'), 'nested', 'home');
    const first = bridgeToken(home);
    expect(first.fresh).toBe('created');
    expect(first.token).toMatch(/^[0-9a-f]{32}$/);
    expect(first.file).toBe(path.join(home, BRIDGE_TOKEN_FILE));
    expect(readFileSync(first.file, 'utf8').trim()).toBe(first.token);
    expect(mode(first.file)).toBe(0o600);
    expect(bridgeToken(home)).toEqual({ token: first.token, file: first.file, fresh: null });
    const renewed = bridgeToken(home, { renew: true });
    expect(renewed.fresh).toBe('renewed');
    expect(renewed.token).not.toBe(first.token);
    expect(bridgeToken(home).token).toBe(renewed.token);
    expect(mode(first.file)).toBe(0o600);
  });

  it('replaces a damaged token file and tightens one readable by others', () => {
    const home = tempDir('lathe-token-');
    const file = path.join(home, BRIDGE_TOKEN_FILE);
    writeFileSync(file, 'not a token\n');
    const fixed = bridgeToken(home);
    expect(fixed.fresh).toBe('created');
    expect(fixed.token).toMatch(/^[0-9a-f]{32}$/);
    chmodSync(file, 0o644);
    expect(bridgeToken(home).token).toBe(fixed.token);
    expect(mode(file)).toBe(0o600);
  });
});

function getPage(origin: string, pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${origin}${pathname}`, { method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { body += b.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the real bridge (lathe serve) with a saved token', () => {
  const started: BridgeProcess[] = [];
  afterAll(async () => { for (const b of started) await b.stop(); });

  it('keeps its URL across restarts, explains a missing or wrong token, and renews it with --new-token', async () => {
    const home = tempDir('lathe-bridge-home-');
    const a = await startBridgeProcess({ home });
    started.push(a);
    expect(readFileSync(path.join(home, BRIDGE_TOKEN_FILE), 'utf8').trim()).toBe(a.token);
    expect(mode(path.join(home, BRIDGE_TOKEN_FILE))).toBe(0o600);

    const ok = await getPage(a.origin, `/?token=${a.token}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('<title>Lathe</title>');
    const missing = await getPage(a.origin, '/');
    expect(missing.status).toBe(403);
    expect(missing.body).toContain('has no key');
    expect(missing.body).toContain('npm run dev:web');
    expect(missing.body).not.toContain(a.token);
    const wrong = await getPage(a.origin, `/index.html?token=${'0'.repeat(32)}`);
    expect(wrong.status).toBe(403);
    expect(wrong.body).toContain('not the current one');
    expect(wrong.body).toContain('npm run dev:web');
    await a.stop();

    // A restart (same settings folder) gives the same token: a bookmarked URL still opens the app.
    const b = await startBridgeProcess({ home });
    started.push(b);
    expect(b.token).toBe(a.token);
    const c = await connect(b);
    const r = await c.send(JSON.stringify({ id: 1, channel: 'app.info', payload: {} }));
    expect(r?.envelope.ok).toBe(true);
    c.ws.close();
    await b.stop();

    // --new-token: a new token, saved; the old URL now gets the help page.
    const n = await startBridgeProcess({ home, args: ['--new-token'] });
    started.push(n);
    expect(n.token).not.toBe(a.token);
    expect(readFileSync(path.join(home, BRIDGE_TOKEN_FILE), 'utf8').trim()).toBe(n.token);
    expect((await getPage(n.origin, `/?token=${a.token}`)).status).toBe(403);
    expect((await getPage(n.origin, `/?token=${n.token}`)).status).toBe(200);
  }, 240_000);
});
