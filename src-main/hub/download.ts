/**
 * Download a model from the Hub into the models folder, resumably and atomically:
 *
 *   <models>/.downloads/<owner>--<name>@<commit>/   staging: finished files under their names, the file in
 *                                                  progress as <name>.part (kept on cancel or a dropped
 *                                                  connection; the next try asks for the rest with Range)
 *   <models>/<owner>--<name>/                       the model, renamed from staging once every file is there
 *                                                  and checked (LFS files by SHA-256, the others by size)
 *
 * Before anything is fetched the free space (statfs) is compared with what is still missing. A folder
 * under <models>/ without the leading dot is always complete; nothing else is ever presented as a model.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { CancelledError, UserError, type WorkOptions } from '../util/progress';
import { formatBytes } from '../engine/memory/estimate';
import { HubClient } from './client';
import { pickFiles, type WantedFile } from './files';
import { hubGet, statusError, unreachable, type HubRequest } from './http';

export interface DownloadOptions extends WorkOptions {
  endpoint: string;
  repo: string;
  revision: string;
  modelsDir: string;
  token?: string | null;
  /** Free space of the disk holding a folder (tests inject a full disk). */
  statfs?: (dir: string) => Promise<{ bavail: number | bigint; bsize: number | bigint }>;
  /** Tries per file after a dropped connection (each resumes where the last stopped). */
  retries?: number;
  /** No bytes for this long ends the try (ms). */
  stallMs?: number;
  /** Pause between tries (ms). */
  retryDelayMs?: number;
}

export interface DownloadResult {
  dir: string;
  repo: string;
  commit: string;
  files: { name: string; size: number; sha256: string | null }[];
  bytes: number;
  /** Bytes actually fetched this time (less than `bytes` after a resume). */
  fetched: number;
  alreadyThere: boolean;
}

/** Written into the model folder last, so a finished download can be recognised. */
export const MARKER = '.lathe-hub.json';
/** Room left free beside the download (the weight cache and the OS need some too). */
const SPARE_BYTES = 256 << 20;

export function folderName(repo: string): string {
  return repo.replace('/', '--');
}

export async function downloadModel(opts: DownloadOptions): Promise<DownloadResult> {
  const client = new HubClient(opts.endpoint, opts.token ?? null);
  opts.onProgress?.({ stage: 'Asking the Hub about the model', fraction: 0 });
  const info = await client.modelInfo(opts.repo, opts.revision, opts.signal);
  if (info.gated && !opts.token) {
    throw new UserError('hub.gated', `This model needs you to accept its license on huggingface.co and a token (${info.id}).`,
      `Open ${opts.endpoint}/${info.id}, accept the license there, create a "read" token at huggingface.co/settings/tokens, and save it under "Hub token" in Lathe (desktop app).`);
  }
  const { files } = pickFiles(info);
  const total = files.reduce((s, f) => s + f.size, 0);
  await fsp.mkdir(opts.modelsDir, { recursive: true });

  // The same commit already downloaded: use it. Another commit under the same name: a folder of its own.
  let dir = path.join(opts.modelsDir, folderName(info.id));
  const existing = await readMarker(dir);
  if (existing?.commit === info.sha) return done(dir, info.sha, files, total, 0, true);
  if (existsSync(dir)) {
    dir = `${dir}-${info.sha.slice(0, 8)}`;
    if ((await readMarker(dir))?.commit === info.sha) return done(dir, info.sha, files, total, 0, true);
    if (existsSync(dir)) {
      throw new UserError('hub.folderTaken', `${dir} already exists and is not this download.`, 'Move or rename that folder, then download again.');
    }
  }
  const staging = path.join(opts.modelsDir, '.downloads', `${folderName(info.id)}@${info.sha}`);
  await fsp.mkdir(staging, { recursive: true });

  let have = 0;
  for (const f of files) have += await bytesPresent(staging, f);
  await checkSpace(opts, staging, total - have);

  const meter = new Meter(total, have, opts);
  for (const f of files) {
    await fetchFile(client, info.id, info.sha, staging, f, meter, opts);
  }
  await fsp.writeFile(path.join(staging, MARKER), JSON.stringify({ repo: info.id, revision: opts.revision, commit: info.sha, files, downloadedAt: new Date().toISOString() }, null, 2) + '\n');
  if (opts.signal?.aborted) throw new CancelledError();
  await fsp.rename(staging, dir);
  await fsp.rmdir(path.join(opts.modelsDir, '.downloads')).catch(() => {}); // only when empty
  opts.onProgress?.({ stage: 'Downloaded', fraction: 1, message: `${formatBytes(total)} in ${files.length} files` });
  return done(dir, info.sha, files, total, meter.fetched, false);

  function done(d: string, commit: string, fs: WantedFile[], bytes: number, fetched: number, alreadyThere: boolean): DownloadResult {
    return { dir: d, repo: info.id, commit, files: fs, bytes, fetched, alreadyThere };
  }
}

async function readMarker(dir: string): Promise<{ commit?: string } | null> {
  try {
    return JSON.parse(await fsp.readFile(path.join(dir, MARKER), 'utf8')) as { commit?: string };
  } catch {
    return null;
  }
}

async function size(p: string): Promise<number | null> {
  try {
    return (await fsp.stat(p)).size;
  } catch {
    return null;
  }
}

/** Bytes of `f` already in staging: the finished file, or its .part. */
async function bytesPresent(staging: string, f: WantedFile): Promise<number> {
  if ((await size(path.join(staging, f.name))) === f.size) return f.size;
  return Math.min(f.size, (await size(path.join(staging, `${f.name}.part`))) ?? 0);
}

async function checkSpace(opts: DownloadOptions, dir: string, missing: number): Promise<void> {
  const st = await (opts.statfs ?? fsp.statfs)(dir);
  const free = Number(st.bavail) * Number(st.bsize);
  if (free < missing + SPARE_BYTES) {
    throw new UserError('hub.diskFull', `The download needs ${formatBytes(missing)} more, but only ${formatBytes(free)} is free on the disk that holds ${opts.modelsDir}.`,
      `Free at least ${formatBytes(missing + SPARE_BYTES - free)} there (for example with "Clear the weight cache" or by deleting old exports), then download again; what is already downloaded is kept.`);
  }
}

/** Bytes, speed and time left, reported at most four times a second. */
class Meter {
  fetched = 0;
  private last = 0;
  private windowStart = Date.now();
  private windowBytes = 0;
  private speed = 0;
  constructor(private readonly total: number, private done: number, private readonly opts: WorkOptions) {}
  /** Bytes counted as present that are about to be fetched again. */
  rewind(n: number): void {
    this.done -= n;
  }
  add(n: number, file: string): void {
    this.done += n;
    this.fetched += n;
    this.windowBytes += n;
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      const s = this.windowBytes / ((now - this.windowStart) / 1000);
      this.speed = this.speed === 0 ? s : 0.7 * this.speed + 0.3 * s;
      this.windowStart = now;
      this.windowBytes = 0;
    }
    if (now - this.last < 250 && this.done < this.total) return;
    this.last = now;
    const speed = this.speed || this.windowBytes / Math.max(0.001, (now - this.windowStart) / 1000);
    const left = speed > 0 ? (this.total - this.done) / speed : null;
    this.opts.onProgress?.({
      stage: 'Downloading',
      fraction: this.total > 0 ? this.done / this.total : 1,
      message: `${formatBytes(this.done)} of ${formatBytes(this.total)} · ${formatBytes(speed)}/s${left !== null ? ` · ${timeLeft(left)}` : ''} · ${file}`,
    });
  }
}

export function timeLeft(seconds: number): string {
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s left`;
  if (seconds < 3600) return `about ${Math.round(seconds / 60)} min left`;
  return `about ${(seconds / 3600).toFixed(1)} h left`;
}

async function fetchFile(client: HubClient, repo: string, commit: string, staging: string, f: WantedFile, meter: Meter, opts: DownloadOptions): Promise<void> {
  const final = path.join(staging, f.name);
  if ((await size(final)) === f.size) return; // finished in an earlier try (renamed only after its check)
  const part = `${final}.part`;
  const retries = opts.retries ?? 4;
  const url = `${client.endpoint}/${repo}/resolve/${commit}/${encodeURIComponent(f.name)}`;
  for (let attempt = 0; ; attempt++) {
    if (opts.signal?.aborted) throw new CancelledError();
    let start = (await size(part)) ?? 0;
    if (start > f.size) { await fsp.rm(part, { force: true }); start = 0; }
    if (start < f.size) {
      try {
        await fetchRange(url, part, start, f, meter, opts, repo);
      } catch (err) {
        if (!(err instanceof Dropped) || attempt >= retries) throw err instanceof Dropped ? err.userError : err;
        opts.onLog?.('warn', `The connection dropped during ${f.name} (${err.message}); resuming from ${formatBytes((await size(part)) ?? 0)}.`);
        await sleep(opts.retryDelayMs ?? 500 * (attempt + 1), opts.signal);
        continue;
      }
    }
    break;
  }
  await verify(part, f, opts);
  await fsp.rename(part, final);
}

/** A failure worth another try (the connection, not the answer). */
class Dropped extends Error {
  constructor(message: string, readonly userError: UserError) { super(message); }
}

async function fetchRange(url: string, part: string, start: number, f: WantedFile, meter: Meter, opts: DownloadOptions, repo: string): Promise<void> {
  const what = `the file ${f.name}`;
  const headers: Record<string, string> = start > 0 ? { range: `bytes=${start}-` } : {};
  const stallMs = opts.stallMs ?? 60_000;
  const req: HubRequest = { endpoint: opts.endpoint, token: opts.token ?? null, signal: opts.signal, what, repo, headers, timeoutMs: stallMs };
  let res: Response;
  try {
    res = await hubGet(url, req);
  } catch (err) {
    if (err instanceof UserError && (err.code === 'hub.unreachable' || err.code === 'hub.timeout')) throw new Dropped(err.message, err);
    throw err;
  }
  if (res.status === 416) { // the server has nothing past `start`: the .part is complete or wrong; verify decides
    await res.body?.cancel();
    return;
  }
  if (res.status !== 200 && res.status !== 206) {
    const e = await statusError(res, req);
    if (res.status >= 500) throw new Dropped(`HTTP ${res.status}`, e);
    throw e;
  }
  let offset = start;
  if (res.status === 206) {
    const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
    if (!m || Number(m[1]) !== start) {
      await res.body?.cancel();
      await fsp.rm(part, { force: true });
      meter.rewind(start);
      const e = new UserError('hub.badRange', `The Hub answered a request for the rest of ${f.name} with another part of it.`, 'Download again.');
      throw new Dropped(e.message, e);
    }
  } else if (start > 0) {
    offset = 0; // the server sent the whole file: start the .part again
    meter.rewind(start);
  }
  const out = createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' });
  const opened = new Promise<void>((resolve, reject) => { out.once('open', () => resolve()); out.once('error', reject); });
  await opened;
  const reader = res.body!.getReader();
  let stall: NodeJS.Timeout | null = null;
  let stalled = false;
  const arm = () => {
    if (stall) clearTimeout(stall);
    stall = setTimeout(() => { stalled = true; void reader.cancel(); }, stallMs);
  };
  const onAbort = () => { void reader.cancel(); };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let written = offset;
  try {
    arm();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arm();
      written += value.byteLength;
      if (written > f.size) throw new UserError('hub.sizeMismatch', `The Hub sent more of ${f.name} than the ${formatBytes(f.size)} it announced.`, 'Start the download again; if it keeps happening, try later.');
      if (!out.write(value)) await new Promise<void>((r) => out.once('drain', () => r()));
      meter.add(value.byteLength, f.name);
    }
  } catch (err) {
    if (opts.signal?.aborted) throw new CancelledError();
    if (err instanceof UserError) throw err;
    const cause = unreachable({ endpoint: opts.endpoint, what }, err).message;
    throw new Dropped(cause, droppedError(written, f));
  } finally {
    if (stall) clearTimeout(stall);
    opts.signal?.removeEventListener('abort', onAbort);
    await new Promise<void>((resolve) => out.end(() => resolve()));
  }
  if (opts.signal?.aborted) throw new CancelledError();
  if (stalled) {
    const e = new UserError('hub.stalled', `The download of ${f.name} stopped receiving data for ${Math.round(stallMs / 1000)} s.`, 'Check your internet connection and download again; what arrived is kept.');
    throw new Dropped(e.message, e);
  }
  if (written < f.size) {
    const e = droppedError(written, f);
    throw new Dropped(e.message, e);
  }
}

function droppedError(written: number, f: WantedFile): UserError {
  return new UserError('hub.dropped', `The connection closed after ${formatBytes(written)} of ${f.name} (${formatBytes(f.size)}).`, 'Check your internet connection and download again: Lathe continues where it stopped.');
}

async function verify(part: string, f: WantedFile, opts: WorkOptions): Promise<void> {
  const got = (await size(part)) ?? 0;
  if (got !== f.size) {
    await fsp.rm(part, { force: true });
    throw new UserError('hub.sizeMismatch', `${f.name} arrived with ${formatBytes(got)} instead of the ${formatBytes(f.size)} the Hub announced; Lathe deleted it and added nothing to your models.`, 'Download again; if it keeps happening, try later.');
  }
  if (f.sha256 === null) return;
  opts.onProgress?.({ stage: 'Checking', message: `Checking ${f.name} (SHA-256)` });
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(part)) {
    if (opts.signal?.aborted) throw new CancelledError();
    hash.update(chunk as Buffer);
  }
  const digest = hash.digest('hex');
  if (digest !== f.sha256) {
    await fsp.rm(part, { force: true });
    throw new UserError('hub.checksum', `${f.name} arrived damaged: its SHA-256 is ${digest.slice(0, 12)}…, the Hub says ${f.sha256.slice(0, 12)}…. Lathe deleted the damaged copy and added nothing to your models.`,
      'Download again. If it fails the same way, the file on the server or something between you and it (a proxy) is at fault; try later or from another network.');
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(new CancelledError()); return; }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(new CancelledError()); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
