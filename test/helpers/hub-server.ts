/**
 * A local stand-in for the Hugging Face Hub, speaking its API for the endpoints Lathe uses (search,
 * model info with file sizes and LFS SHA-256, resolve), with a second server on another port as the file
 * server that `resolve` redirects LFS files to (so a test can see the token never leaves the Hub's origin).
 * Faults on request: a gated repo (token needed), a connection dropped mid-file, a wrong SHA-256, bad JSON,
 * slow chunks (visible progress, cancel).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface HubRepo {
  id: string;
  /** A folder whose top-level files are the repository's files. */
  dir: string;
  gated?: boolean;
  downloads?: number;
  parameters?: number;
  /** Files listed but not served (e.g. pytorch_model.bin, onnx/model.onnx), to test what is skipped. */
  listedOnly?: { name: string; size: number }[];
}

export interface HubFaults {
  /** The token gated repos accept. */
  token?: string;
  /** Close the connection after this many bytes of every LFS file requested from its start (no Range). */
  dropAfterBytes?: number;
  /** Stop sending (the connection left open) after this many bytes of every LFS file. */
  stallAfterBytes?: number;
  /** Files (by name) whose SHA-256 the info answer gets wrong. */
  wrongSha?: string[];
  /** The info answer names this model id instead of the one asked for. */
  answerId?: string;
  /** The info answer is not JSON. */
  badJson?: boolean;
  /** Send files in 16 KiB chunks with this pause between them. */
  chunkDelayMs?: number;
}

export interface Logged { url: string; range?: string | undefined; authorization?: string | undefined; status: number }

export interface HubServer {
  endpoint: string;
  cdn: string;
  /** Requests to the Hub and to the file server, in order. */
  hubLog: Logged[];
  cdnLog: Logged[];
  faults: HubFaults;
  close(): Promise<void>;
}

interface FileEntry { name: string; data: Buffer; sha256: string; lfs: boolean }

function listFiles(dir: string): FileEntry[] {
  return readdirSync(dir).filter((n) => statSync(path.join(dir, n)).isFile()).sort().map((name) => {
    const data = readFileSync(path.join(dir, name));
    return { name, data, sha256: createHash('sha256').update(data).digest('hex'), lfs: name.endsWith('.safetensors') };
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function startHubServer(repos: HubRepo[], faults: HubFaults = {}): Promise<HubServer> {
  const state = repos.map((r) => ({ repo: r, sha: randomBytes(20).toString('hex'), files: listFiles(r.dir) }));
  const blobs = new Map<string, FileEntry>();
  for (const s of state) for (const f of s.files) blobs.set(f.sha256, f);
  const hubLog: Logged[] = [];
  const cdnLog: Logged[] = [];
  const sockets = new Set<import('node:net').Socket>();
  let cdnOrigin = '';

  const find = (id: string) => state.find((s) => s.repo.id === id);
  const authorized = (r: HubRepo, req: http.IncomingMessage) => !r.gated || req.headers.authorization === `Bearer ${faults.token ?? ''}`;

  const hub = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const log: Logged = { url: url.pathname + url.search, authorization: req.headers.authorization, range: req.headers.range, status: 200 };
    hubLog.push(log);
    const reply = (status: number, body: unknown) => { log.status = status; json(res, status, body); };
    if (url.pathname === '/api/models') {
      const q = (url.searchParams.get('search') ?? '').toLowerCase();
      const limit = Number(url.searchParams.get('limit') ?? 20);
      const tags = url.searchParams.getAll('filter');
      const hits = state.filter((s) => s.repo.id.toLowerCase().includes(q) && tags.every((t) => ['text-generation', 'safetensors', 'transformers'].includes(t)))
        .sort((a, b) => (b.repo.downloads ?? 0) - (a.repo.downloads ?? 0)).slice(0, limit);
      reply(200, hits.map((s) => ({
        _id: s.sha.slice(0, 24), id: s.repo.id, downloads: s.repo.downloads ?? 0, likes: 3, gated: s.repo.gated ? 'manual' : false,
        pipeline_tag: 'text-generation', ...(s.repo.parameters ? { safetensors: { parameters: { F32: s.repo.parameters }, total: s.repo.parameters } } : {}),
      })));
      return;
    }
    let m = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (m) {
      const s = find(m[1]!);
      if (!s) { reply(404, { error: 'Repository not found' }); return; }
      if (faults.badJson) { log.status = 200; res.writeHead(200, { 'content-type': 'text/html' }); res.end('<html><body>Bad gateway</body></html>'); return; }
      const rev = decodeURIComponent(m[2]!);
      if (rev !== 'main' && rev !== s.sha) { reply(404, { error: `Invalid rev id: ${rev}` }); return; }
      reply(200, {
        _id: s.sha.slice(0, 24), id: faults.answerId ?? s.repo.id, modelId: s.repo.id, sha: s.sha, private: false, gated: s.repo.gated ? 'manual' : false,
        pipeline_tag: 'text-generation', tags: ['transformers', 'safetensors', 'text-generation'], downloads: s.repo.downloads ?? 0,
        siblings: [
          ...s.files.map((f) => ({
            rfilename: f.name, size: f.data.length, blobId: createHash('sha1').update(f.data).digest('hex'),
            ...(f.lfs ? { lfs: { sha256: faults.wrongSha?.includes(f.name) ? createHash('sha256').update('not it').digest('hex') : f.sha256, size: f.data.length, pointerSize: 134 } } : {}),
          })),
          ...(s.repo.listedOnly ?? []).map((f) => ({ rfilename: f.name, size: f.size })),
        ],
        ...(s.repo.parameters ? { safetensors: { parameters: { F32: s.repo.parameters }, total: s.repo.parameters } } : {}),
      });
      return;
    }
    m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m) {
      const s = find(m[1]!);
      if (!s) { reply(404, { error: 'Repository not found' }); return; }
      if (!authorized(s.repo, req)) {
        const status = req.headers.authorization ? 403 : 401;
        reply(status, { error: `Access to model ${s.repo.id} is restricted.` });
        return;
      }
      const f = s.files.find((x) => x.name === decodeURIComponent(m![3]!));
      if (!f) { reply(404, { error: 'Entry not found' }); return; }
      if (f.lfs) {
        log.status = 302;
        res.writeHead(302, { location: `${cdnOrigin}/blobs/${f.sha256}?signed=1`, 'x-repo-commit': s.sha, 'x-linked-size': String(f.data.length), 'x-linked-etag': `"${f.sha256}"` });
        res.end();
        return;
      }
      serveFile(req, res, f, log);
      return;
    }
    reply(404, { error: 'Not found' });
  });

  const cdn = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const log: Logged = { url: url.pathname, authorization: req.headers.authorization, range: req.headers.range, status: 200 };
    cdnLog.push(log);
    const f = blobs.get(url.pathname.replace('/blobs/', ''));
    if (!f) { log.status = 404; res.writeHead(404); res.end(); return; }
    serveFile(req, res, f, log);
  });

  function serveFile(req: http.IncomingMessage, res: http.ServerResponse, f: FileEntry, log: Logged): void {
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= f.data.length) { log.status = 416; res.writeHead(416, { 'content-range': `bytes */${f.data.length}` }); res.end(); return; }
      log.status = 206;
      res.writeHead(206, { 'content-range': `bytes ${start}-${f.data.length - 1}/${f.data.length}`, 'content-length': f.data.length - start, 'accept-ranges': 'bytes', etag: `"${f.sha256}"` });
    } else {
      res.writeHead(200, { 'content-length': f.data.length, 'accept-ranges': 'bytes', etag: `"${f.sha256}"` });
    }
    // Only requests from the start are cut, so the Range request that resumes gets the rest.
    const dropAt = faults.dropAfterBytes !== undefined && f.lfs && !range ? faults.dropAfterBytes : null;
    let pos = start;
    const chunk = 16 << 10;
    const step = () => {
      if (res.destroyed) return;
      if (pos >= f.data.length) { res.end(); return; }
      let end = Math.min(f.data.length, pos + chunk);
      const stallAt = faults.stallAfterBytes !== undefined && f.lfs ? start + faults.stallAfterBytes : null;
      if (stallAt !== null && end >= stallAt) { res.write(f.data.subarray(pos, Math.max(pos, stallAt))); return; } // and say nothing more
      if (dropAt !== null && end >= start + dropAt) {
        end = start + dropAt;
        res.write(f.data.subarray(pos, end), () => setTimeout(() => res.socket?.destroy(), 50));
        return;
      }
      res.write(f.data.subarray(pos, end));
      pos = end;
      if (faults.chunkDelayMs) setTimeout(step, faults.chunkDelayMs);
      else setImmediate(step);
    };
    step();
  }

  for (const s of [hub, cdn]) s.on('connection', (sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });
  const endpoint = await listen(hub);
  cdnOrigin = await listen(cdn);
  return {
    endpoint, cdn: cdnOrigin, hubLog, cdnLog, faults,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([hub, cdn].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
