/**
 * The bridge process survives what used to stop it (issue 16): a malformed percent escape in a page path,
 * a `null` frame, a frame over 1 MiB, a deeply nested id. Each case checks the answer, then that the process
 * is still up and a normal call still works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { connect, startBridgeProcess, type BridgeProcess } from '../../helpers/bridge-process';
import { parseFrame, staticFile } from '../../../src-main/bridge/server';

let b: BridgeProcess;

beforeAll(async () => { b = await startBridgeProcess(); });
afterAll(async () => { await b?.stop(); });

function get(pathname: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${b.origin}/`, { method: 'GET', path: pathname }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
    req.end();
  });
}

async function stillWorks(): Promise<void> {
  expect(b.alive(), b.stderr()).toBe(true);
  const c = await connect(b);
  const r = await c.send(JSON.stringify({ id: 'ok', channel: 'app.info', payload: {} }));
  expect(r?.id).toBe('ok');
  expect(r?.envelope.ok).toBe(true);
  c.ws.close();
}

describe('bridge: inputs that used to stop the process', () => {
  it('answers 404 to malformed percent escapes, traversal and odd paths, and serves the page', async () => {
    expect(await get(`/?token=${b.token}`)).toBe(200);
    for (const p of ['/%', '/%zz', '/%E0%A4%A', '/..%2f..%2fetc%2fpasswd', '/../../etc/passwd', '/%00', '/' + 'a'.repeat(8000)]) {
      expect([404, 431], p).toContain(await get(p));
    }
    await stillWorks();
  });

  it('answers a null frame, non-object frames and non-JSON with ipc.badMessage', async () => {
    const c = await connect(b);
    for (const frame of ['null', '[]', '42', '"x"', 'true', '{', '']) {
      const r = await c.send(frame);
      expect(r, frame).toEqual({ id: null, envelope: { ok: false, error: { code: 'ipc.badMessage', message: expect.any(String) } } });
    }
    c.ws.close();
    await stillWorks();
  });

  it('refuses a deeply nested or oversized id without echoing it', async () => {
    const c = await connect(b);
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    const r = await c.send(`{"id":${deep},"channel":"app.info","payload":{}}`);
    expect(r?.id).toBeNull();
    expect(r?.envelope.error?.code).toBe('ipc.badId');
    const long = await c.send(JSON.stringify({ id: 'x'.repeat(10_000), channel: 'app.info', payload: {} }));
    expect(long?.envelope.error?.code).toBe('ipc.badId');
    // A deep channel or payload is refused too, and the message stays short.
    const ch = await c.send(`{"id":1,"channel":${deep},"payload":{}}`);
    expect(ch?.envelope.error?.code).toBe('ipc.unknownChannel');
    const pl = await c.send(`{"id":2,"channel":"projects.open","payload":${deep}}`);
    expect(pl?.envelope.error?.code).toBe('ipc.badPayload');
    expect(JSON.stringify(pl).length).toBeLessThan(2000);
    c.ws.close();
    await stillWorks();
  });

  it('closes the socket of a frame over 1 MiB with code 1009, and keeps serving others', async () => {
    const c = await connect(b);
    void c.send(JSON.stringify({ id: 1, channel: 'app.info', payload: { pad: 'x'.repeat((1 << 20) + 10) } })).catch(() => null);
    expect((await c.closed).code).toBe(1009);
    await stillWorks();
  });
});

describe('bridge: frame and path parsing (no process)', () => {
  it('parseFrame keeps short ids and refuses the rest', () => {
    expect(parseFrame('{"id":"a","channel":"x","payload":1}')).toEqual({ ok: true, id: 'a', channel: 'x', payload: 1 });
    expect(parseFrame('{"channel":"x"}')).toMatchObject({ ok: true, id: null });
    expect(parseFrame('{"id":{"a":1}}')).toMatchObject({ ok: false, code: 'ipc.badId' });
    expect(parseFrame('{"id":1e999}')).toMatchObject({ ok: false, code: 'ipc.badId' });
    expect(parseFrame('null')).toMatchObject({ ok: false, code: 'ipc.badMessage' });
  });

  it('staticFile never leaves the renderer folder', () => {
    expect(staticFile('/srv/app', '/%')).toBeNull();
    expect(staticFile('/srv/app', '/..%2f..%2fetc/passwd')).toBeNull();
    expect(staticFile('/srv/app', '/a%00b')).toBeNull();
  });
});
