/**
 * The contract over a local WebSocket, so the real renderer runs in a browser against the real services
 * (end-to-end tests, `npm run dev:web`). Binds to 127.0.0.1 only, requires a per-start random token and a
 * same-origin page, and routes every call through the same `dispatch` as the Electron gatekeeper.
 *
 * Wire format: client -> { id, channel, payload }; server -> { id, envelope } | { event, payload }.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
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

export async function startBridge(opts: BridgeOptions): Promise<Bridge> {
  const token = opts.token ?? randomBytes(16).toString('hex');
  const server = http.createServer((req, res) => serveStatic(opts.staticDir, req, res));
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const sockets = new Set<WebSocket>();

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('bridge: no address');
  const origin = `http://127.0.0.1:${address.port}`;

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', origin);
    const reqOrigin = req.headers.origin;
    const originOk = reqOrigin === undefined || reqOrigin === origin || reqOrigin === opts.allowOrigin;
    if (url.pathname !== '/api' || url.searchParams.get('token') !== token || !originOk) {
      socket.write('HTTP/1.1 403 Forbidden\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws));
  });

  const offJobs = opts.services.jobs.onEvent((e) => {
    const msg = JSON.stringify({ event: 'job', payload: e });
    for (const ws of sockets) ws.send(msg);
  });

  wss.on('connection', (ws: WebSocket) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.on('message', async (data) => {
      let msg: { id?: unknown; channel?: unknown; payload?: unknown };
      try {
        msg = JSON.parse(String(data));
      } catch {
        ws.send(JSON.stringify({ id: null, envelope: { ok: false, error: { code: 'ipc.badMessage', message: 'The bridge received a message that is not JSON.' } } }));
        return;
      }
      const envelope = await dispatch(opts.services, msg.channel, msg.payload);
      ws.send(JSON.stringify({ id: msg.id ?? null, envelope }));
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

function serveStatic(root: string | undefined, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!root || req.method !== 'GET') {
    res.writeHead(404).end();
    return;
  }
  const url = new URL(req.url ?? '/', 'http://x');
  const rel = decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname);
  const file = path.resolve(root, '.' + rel);
  // Never serve anything outside the renderer folder.
  if (!file.startsWith(path.resolve(root) + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream',
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  });
  createReadStream(file).pipe(res);
}
