/**
 * The real bridge in its own process (`lathe serve`), so a test can see whether anything a client sends
 * makes the process exit, and a tiny WebSocket client that waits for each answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { tempDir } from './services';

export interface BridgeProcess {
  origin: string;
  token: string;
  proc: ChildProcess;
  /** stderr of the bridge process so far (printed when a test fails). */
  stderr(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** `home`: the LATHE_HOME to use (a fresh one by default); `args`: extra `lathe serve` flags. */
export async function startBridgeProcess(opts: { home?: string; args?: string[] } = {}): Promise<BridgeProcess> {
  const home = opts.home ?? tempDir('lathe-bridge-home-');
  const staticDir = path.join(home, 'renderer');
  mkdirSync(staticDir, { recursive: true });
  writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>Lathe</title>');
  const proc = spawn(process.execPath, ['bin/lathe.mjs', 'serve', '--json', '--static', staticDir, ...(opts.args ?? [])], {
    env: { ...process.env, LATHE_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '', err = '';
  proc.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-20_000); });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the bridge did not start: ${err}`)), 60_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) { clearTimeout(timer); resolve((JSON.parse(line) as { url: string }).url); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the bridge exited (${code}): ${err}`)); });
  });
  const u = new URL(url);
  return {
    origin: u.origin,
    token: u.searchParams.get('token')!,
    proc,
    stderr: () => err,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGINT');
      await exited;
    },
  };
}

export interface Client {
  ws: WebSocket;
  /** Send one raw frame and wait for the next answer (or the socket closing: null). */
  send(frame: string | Buffer, timeoutMs?: number): Promise<{ id: unknown; envelope: { ok: boolean; error?: { code: string; message: string }; value?: unknown } } | null>;
  closed: Promise<{ code: number }>;
}

export async function connect(b: { origin: string; token: string }): Promise<Client> {
  const ws = new WebSocket(`${b.origin.replace('http', 'ws')}/api?token=${b.token}`, { origin: b.origin, maxPayload: 64 << 20 });
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  const closed = new Promise<{ code: number }>((r) => ws.once('close', (code) => r({ code })));
  ws.on('error', () => { /* the close event reports it */ });
  const pending: ((m: unknown) => void)[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { event?: string };
    if (m.event) return; // job events are not answers
    pending.shift()?.(m);
  });
  return {
    ws,
    closed,
    send: (frame, timeoutMs = 30_000) => new Promise((resolve, reject) => {
      if (ws.readyState !== ws.OPEN) { resolve(null); return; }
      const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms to ${String(frame).slice(0, 200)}`)), timeoutMs);
      const done = (m: unknown) => { clearTimeout(timer); resolve(m as never); };
      pending.push(done);
      void closed.then(() => { const i = pending.indexOf(done); if (i >= 0) { pending.splice(i, 1); done(null); } });
      ws.send(frame);
    }),
  };
}
