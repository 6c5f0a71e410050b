/**
 * The contract over a local WebSocket, so the real renderer runs in a browser against the real services
 * (end-to-end tests, `npm run dev:web`). Binds to 127.0.0.1 only, requires a token (random per start, or the
 * user's saved one from ./token.ts so the URL can be bookmarked) and a same-origin page, and routes every call
 * through the same `dispatch` as the Electron gatekeeper. The app page requested without the right token gets
 * a page that says how to open the app (OPEN_HELP) rather than an app that cannot connect.
 *
 * Wire format: client -> { id, channel, payload }; server -> { id, envelope } | { event, payload }.
 * Nothing a client sends can stop or stall the process: every frame is answered (a frame over 1 MiB closes
 * its socket with code 1009), `id` is echoed only when it is a short string or a finite number, and every
 * handler is guarded (test/unit/bridge/fuzz.test.ts).
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { dispatch, type Services } from '../services';
import { CONTENT_SECURITY_POLICY } from '../app/csp';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export interface BridgeOptions {
  services: Services;
  /** Folder with the built renderer (index.html + assets); omit to serve the API only. */
  staticDir?: string;
  port?: number;
  token?: string;
  /** Extra origin allowed to connect (e.g. a Vite dev server). */
  allowOrigin?: string;
}

export interface Bridge {
  url: string;
  /** Page URL including the token. */
  pageUrl: string;
  token: string;
  close(): Promise<void>;
}

const MAX_MESSAGE_BYTES = 1 << 20;
/** Calls one socket may have in flight; more are answered `ipc.busy` at once (a flood cannot queue unbounded work). */
const MAX_IN_FLIGHT = 64;
const MAX_ID_CHARS = 128;

type Id = string | number | null;
type Frame = { ok: true; id: Id; channel: unknown; payload: unknown } | { ok: false; id: Id; code: string; message: string };

/** One client frame -> its parts, or why it is refused (never throws, never walks nested values). */
export function parseFrame(text: string): Frame {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return { ok: false, id: null, code: 'ipc.badMessage', message: 'The bridge received a message that is not JSON.' };
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    return { ok: false, id: null, code: 'ipc.badMessage', message: 'A bridge message must be a JSON object { id, channel, payload }.' };
  }
  const { id, channel, payload } = msg as { id?: unknown; channel?: unknown; payload?: unknown };
  const idOk = id === undefined || id === null || (typeof id === 'string' && id.length <= MAX_ID_CHARS) || (typeof id === 'number' && Number.isFinite(id));
  if (!idOk) {
    return { ok: false, id: null, code: 'ipc.badId', message: `A message id must be a string of at most ${MAX_ID_CHARS} characters or a finite number.` };
  }
  return { ok: true, id: (id ?? null) as Id, channel, payload };
}

function answer(id: Id, envelope: unknown): string {
  try {
    return JSON.stringify({ id, envelope });
  } catch (err) {
    // A value that cannot be serialized (cycle, BigInt, too deep): still answer.
    return JSON.stringify({ id, envelope: { ok: false, error: { code: 'internal', message: `Lathe could not send the answer: ${(err as Error).message}` } } });
  }
}

export async function startBridge(opts: BridgeOptions): Promise<Bridge> {
  const token = opts.token ?? randomBytes(16).toString('hex');
  const server = http.createServer((req, res) => {
    // The app page without the right token would only fail to connect: answer with how to open the app instead.
    const page = pageToken(req);
    if (page !== undefined && page !== token) {
      serveOpenHelp(res, page === null ? 'missing' : 'wrong');
      return;
    }
    serveStatic(opts.staticDir, req, res);
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const sockets = new Set<WebSocket>();

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('bridge: no address');
  const origin = `http://127.0.0.1:${address.port}`;

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', origin);
    } catch {
      url = new URL('/', origin);
    }
    const reqOrigin = req.headers.origin;
    const originOk = reqOrigin === undefined || reqOrigin === origin || reqOrigin === opts.allowOrigin;
    if (url.pathname !== '/api' || url.searchParams.get('token') !== token || !originOk) {
      socket.write('HTTP/1.1 403 Forbidden\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws));
  });

  const send = (ws: WebSocket, text: string): void => {
    if (ws.readyState === ws.OPEN) ws.send(text, () => { /* a failed send ends with the socket's close */ });
  };

  const offJobs = opts.services.jobs.onEvent((e) => {
    const msg = JSON.stringify({ event: 'job', payload: e });
    for (const ws of sockets) send(ws, msg);
  });

  wss.on('connection', (ws: WebSocket) => {
    sockets.add(ws);
    let inFlight = 0;
    // Oversize frames (maxPayload) and protocol errors arrive here; ws then closes the socket (1009 / 1002).
    ws.on('error', () => sockets.delete(ws));
    ws.on('close', () => sockets.delete(ws));
    ws.on('message', (data) => {
      const frame = parseFrame(String(data));
      if (!frame.ok) {
        send(ws, answer(frame.id, { ok: false, error: { code: frame.code, message: frame.message } }));
        return;
      }
      if (inFlight >= MAX_IN_FLIGHT) {
        send(ws, answer(frame.id, { ok: false, error: { code: 'ipc.busy', message: `More than ${MAX_IN_FLIGHT} calls are waiting on this connection.`, hint: 'Wait for answers before sending more.' } }));
        return;
      }
      inFlight++;
      void dispatch(opts.services, frame.channel, frame.payload)
        .then((envelope) => send(ws, answer(frame.id, envelope)))
        .finally(() => { inFlight--; });
    });
  });

  return {
    url: origin,
    token,
    pageUrl: `${origin}/?token=${token}`,
    close: async () => {
      offJobs();
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** For a GET of the app page ('/' or '/index.html'): its `token` query value (null when absent); undefined otherwise. */
function pageToken(req: http.IncomingMessage): string | null | undefined {
  if (req.method !== 'GET' && req.method !== 'HEAD') return undefined;
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://x');
  } catch {
    return undefined;
  }
  if (url.pathname !== '/' && url.pathname !== '/index.html') return undefined;
  return url.searchParams.get('token');
}

/** The page a browser gets for the app URL without its token, or with an old one. */
export function openHelpPage(reason: 'missing' | 'wrong'): string {
  const why = reason === 'missing'
    ? 'This address has no key, so the app cannot connect to Lathe.'
    : 'The key in this address is not the current one (it was renewed, or the link is from another computer).';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lathe: open the app with its link</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}code{background:#eee;padding:0 .25rem}</style>
</head><body>
<h1>Open Lathe with its link</h1>
<p>${why}</p>
<h2>What to do</h2>
<ol>
<li>In a terminal, in the Lathe folder, run <code>npm run dev:web</code> (or <code>npx lathe serve</code> when the app is already built).</li>
<li>Open the address it prints: it looks like <code>http://127.0.0.1:5174/?token=…</code>.</li>
</ol>
<p>That address stays the same each time you start Lathe, so you can bookmark it. It changes only when you ask for a new key with <code>npx lathe serve --new-token</code>.</p>
</body></html>
`;
}

function serveOpenHelp(res: http.ServerResponse, reason: 'missing' | 'wrong'): void {
  res.writeHead(403, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  });
  res.end(openHelpPage(reason));
}

function serveStatic(root: string | undefined, req: http.IncomingMessage, res: http.ServerResponse): void {
  const file = root && req.method === 'GET' ? staticFile(root, req.url ?? '/') : null;
  if (!file) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream',
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  });
  // The file may vanish between the check and the read: end the answer, never the process.
  createReadStream(file).on('error', () => res.destroy()).pipe(res);
}

/** The file a GET path names inside the renderer folder, or null (malformed escapes like `/%` included). */
export function staticFile(root: string, reqUrl: string): string | null {
  let rel: string;
  try {
    const url = new URL(reqUrl, 'http://x');
    rel = decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname);
  } catch {
    return null;
  }
  if (rel.includes('\0')) return null;
  const file = path.resolve(root, '.' + rel);
  // Never serve anything outside the renderer folder.
  if (!file.startsWith(path.resolve(root) + path.sep)) return null;
  try {
    return statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}
