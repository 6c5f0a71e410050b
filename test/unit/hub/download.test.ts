/** The Hub client and resumable download against the local Hub stand-in (test/helpers/hub-server.ts). */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel } from '../../../src-main/engine/models';
import { HubClient } from '../../../src-main/hub/client';
import { downloadModel, MARKER, type DownloadOptions } from '../../../src-main/hub/download';
import { hubEndpoint } from '../../../src-main/hub/http';
import { inspectModel } from '../../../src-main/services/models';
import { CancelledError, UserError } from '../../../src-main/util/progress';
import { startHubServer, type HubServer } from '../../helpers/hub-server';
import { tempDir } from '../../helpers/services';

const TOKEN = 'hf_test_token_123456';
let hub: HubServer;
let modelDir = '';
let params = 0;

beforeAll(async () => {
  modelDir = path.join(tempDir('lathe-hub-src-'), 'tiny');
  // bf16 and sharded, so a download has several LFS files and an index
  const made = await createTinyModel('llama', modelDir, { seed: 3, maxShardBytes: 100_000 });
  params = made.parameters;
  writeFileSync(path.join(modelDir, 'pytorch_model.bin'), 'not wanted');
  hub = await startHubServer([
    { id: 'lathe-test/tiny-llama', dir: modelDir, downloads: 500, parameters: params, listedOnly: [{ name: 'onnx/model.onnx', size: 1000 }] },
    { id: 'lathe-test/tiny-gated', dir: modelDir, gated: true, downloads: 10, parameters: params },
    { id: 'other/bin-only', dir: path.join(modelDir, '..'), downloads: 1 },
  ], { token: TOKEN });
});

afterAll(async () => { await hub?.close(); });
afterEach(() => {
  for (const k of Object.keys(hub.faults) as (keyof typeof hub.faults)[]) if (k !== 'token') delete hub.faults[k];
  hub.hubLog.length = 0;
  hub.cdnLog.length = 0;
});

const bigDisk = async () => ({ bavail: 1e9, bsize: 4096 });
function opts(o: Partial<DownloadOptions> = {}): DownloadOptions {
  return { endpoint: hub.endpoint, repo: 'lathe-test/tiny-llama', revision: 'main', modelsDir: tempDir('lathe-models-'), statfs: bigDisk, retryDelayMs: 10, ...o };
}
async function refusal(p: Promise<unknown>): Promise<UserError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}
/** What the models folder shows as models: folders without a leading dot. */
const presented = (dir: string) => readdirSync(dir).filter((n) => !n.startsWith('.'));

describe('Hub client', () => {
  it('searches by name, most downloaded first, with parameter counts', async () => {
    const items = await new HubClient(hub.endpoint).search({ query: 'tiny', limit: 10 });
    expect(items.map((i) => i.id)).toEqual(['lathe-test/tiny-llama', 'lathe-test/tiny-gated']);
    expect(items[0]!.safetensors?.total).toBe(params);
    expect(items[1]!.gated).toBe('manual');
    const url = hub.hubLog[0]!.url;
    expect(url).toContain('search=tiny');
    expect(url).toContain('sort=downloads');
    expect(url).toContain('filter=text-generation');
  });

  it('reads the endpoint from HF_ENDPOINT and refuses addresses that are not http(s)', () => {
    const old = process.env['HF_ENDPOINT'];
    try {
      process.env['HF_ENDPOINT'] = 'http://127.0.0.1:9/hub/';
      expect(hubEndpoint()).toBe('http://127.0.0.1:9/hub');
      process.env['HF_ENDPOINT'] = 'file:///etc';
      expect(() => hubEndpoint()).toThrow(/not an http/);
      delete process.env['HF_ENDPOINT'];
      expect(hubEndpoint()).toBe('https://huggingface.co');
      expect(hubEndpoint('http://mirror.local')).toBe('http://mirror.local');
    } finally {
      if (old === undefined) delete process.env['HF_ENDPOINT']; else process.env['HF_ENDPOINT'] = old;
    }
  });

  it('answers a missing repo and bad JSON in plain words', async () => {
    const client = new HubClient(hub.endpoint);
    const e404 = await refusal(client.modelInfo('nobody/nothing', 'main'));
    expect(e404.code).toBe('hub.notFound');
    expect(e404.message).toContain('nobody/nothing');
    expect(e404.hint).toContain('spelling');
    hub.faults.badJson = true;
    const bad = await refusal(client.modelInfo('lathe-test/tiny-llama', 'main'));
    expect(bad.code).toBe('hub.badResponse');
    expect(bad.message).toContain('not JSON');
    expect((await refusal(client.modelInfo('../etc', 'main'))).code).toBe('hub.badRepoId');
    delete hub.faults.badJson;
    // An answer naming a model id that would climb out of the models folder is refused.
    hub.faults.answerId = '../../outside';
    expect((await refusal(client.modelInfo('lathe-test/tiny-llama', 'main'))).message).toContain('cannot use as a folder name');
  });

  it('says plainly when nothing answers at the endpoint', async () => {
    const e = await refusal(new HubClient('http://127.0.0.1:9').search({ query: 'x', limit: 1 }));
    expect(e.code).toBe('hub.unreachable');
    expect(e.hint).toContain('internet connection');
  });
});

describe('downloading a model', () => {
  it('downloads only the files a model needs, checks them and passes the model check', async () => {
    const o = opts();
    const progress: string[] = [];
    const r = await downloadModel({ ...o, onProgress: (p) => { if (p.message) progress.push(p.message); } });
    expect(r.dir).toBe(path.join(o.modelsDir, 'lathe-test--tiny-llama'));
    expect(presented(o.modelsDir)).toEqual(['lathe-test--tiny-llama']);
    const names = readdirSync(r.dir).sort();
    expect(names).not.toContain('pytorch_model.bin');
    expect(names).toContain('config.json');
    expect(names).toContain('tokenizer.json');
    expect(names).toContain('model.safetensors.index.json');
    expect(names.filter((n) => n.endsWith('.safetensors')).length).toBeGreaterThan(1);
    expect(names).toContain(MARKER);
    for (const n of names.filter((x) => x !== MARKER)) {
      expect(readFileSync(path.join(r.dir, n)).equals(readFileSync(path.join(modelDir, n)))).toBe(true);
    }
    expect(hub.hubLog.some((l) => l.url.includes('onnx'))).toBe(false);
    // LFS files came from the file server after a redirect, without the token (none was given here)
    expect(hub.cdnLog.length).toBe(names.filter((n) => n.endsWith('.safetensors')).length);
    expect(progress.some((m) => /of .* · .*\/s/.test(m))).toBe(true);
    const summary = await inspectModel(r.dir);
    expect(summary.problems).toEqual([]);
    expect(summary.parameters).toBe(params);
    // Asking again finds the finished folder instead of downloading it twice.
    const again = await downloadModel(o);
    expect(again.alreadyThere).toBe(true);
    expect(again.dir).toBe(r.dir);
  });

  it('resumes with a Range request after the connection drops mid-file', async () => {
    hub.faults.dropAfterBytes = 20_000;
    const logs: string[] = [];
    const r = await downloadModel(opts({ onLog: (_l, m) => logs.push(m) }));
    const ranged = hub.cdnLog.filter((l) => l.range === 'bytes=20000-');
    expect(ranged.length).toBeGreaterThan(0);
    expect(ranged.every((l) => l.status === 206)).toBe(true);
    expect(logs.some((m) => m.includes('dropped'))).toBe(true);
    expect(r.fetched).toBe(r.bytes); // the dropped bytes were kept, not fetched twice
    expect((await inspectModel(r.dir)).problems).toEqual([]);
  });

  it('gives up after the retries in plain words, keeping the partial file for the next try', async () => {
    hub.faults.dropAfterBytes = 20_000;
    const o = opts({ retries: 0 });
    const e = await refusal(downloadModel(o));
    expect(e.code).toBe('hub.dropped');
    expect(e.hint).toContain('continues where it stopped');
    expect(presented(o.modelsDir)).toEqual([]);
    const staging = path.join(o.modelsDir, '.downloads');
    const parts = readdirSync(path.join(staging, readdirSync(staging)[0]!)).filter((n) => n.endsWith('.part'));
    expect(parts.length).toBe(1);
    // The next try asks only for the rest.
    delete hub.faults.dropAfterBytes;
    hub.cdnLog.length = 0;
    const r = await downloadModel(o);
    expect(hub.cdnLog[0]!.range).toBe('bytes=20000-');
    expect(existsSync(staging)).toBe(false);
    expect((await inspectModel(r.dir)).problems).toEqual([]);
  });

  it('a server that stops sending is not waited on forever: retried, then plain words', async () => {
    hub.faults.stallAfterBytes = 20_000;
    const o = opts({ stallMs: 300, retries: 1 });
    const t0 = Date.now();
    const e = await refusal(downloadModel(o));
    expect(e.code).toBe('hub.stalled');
    expect(e.message).toContain('stopped receiving data');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(presented(o.modelsDir)).toEqual([]);
    // the second try asked for the rest
    expect(hub.cdnLog.some((l) => l.range === 'bytes=20000-')).toBe(true);
  });

  it('refuses a file whose SHA-256 is wrong, deletes it and presents nothing', async () => {
    const first = readdirSync(modelDir).filter((n) => n.endsWith('.safetensors')).sort()[0]!;
    hub.faults.wrongSha = [first];
    const o = opts();
    const e = await refusal(downloadModel(o));
    expect(e.code).toBe('hub.checksum');
    expect(e.message).toContain(first);
    expect(e.message).toContain('added nothing');
    expect(presented(o.modelsDir)).toEqual([]);
    const staging = path.join(o.modelsDir, '.downloads', readdirSync(path.join(o.modelsDir, '.downloads'))[0]!);
    expect(readdirSync(staging).some((n) => n.startsWith(first))).toBe(false);
  });

  it('checks the free space before fetching anything', async () => {
    const o = opts({ statfs: async () => ({ bavail: 10, bsize: 4096 }) });
    const e = await refusal(downloadModel(o));
    expect(e.code).toBe('hub.diskFull');
    expect(e.message).toMatch(/needs .* more, but only 41\.0 kB is free/);
    expect(hub.cdnLog.length).toBe(0);
    expect(hub.hubLog.some((l) => l.url.includes('/resolve/'))).toBe(false);
    expect(presented(o.modelsDir)).toEqual([]);
  });

  it('a gated model: plain words without a token, then the token (to the Hub only) downloads it', async () => {
    const o = opts({ repo: 'lathe-test/tiny-gated' });
    const e = await refusal(downloadModel(o));
    expect(e.code).toBe('hub.gated');
    expect(e.message).toContain('needs you to accept its license on huggingface.co and a token');
    const wrong = await refusal(downloadModel({ ...o, token: 'hf_wrong_token_0000' }));
    expect(wrong.code).toBe('hub.notAllowed');
    hub.hubLog.length = 0;
    hub.cdnLog.length = 0;
    const r = await downloadModel({ ...o, token: TOKEN });
    expect(presented(o.modelsDir)).toEqual(['lathe-test--tiny-gated']);
    expect((await inspectModel(r.dir)).problems).toEqual([]);
    expect(hub.hubLog.filter((l) => l.url.includes('/resolve/')).every((l) => l.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(hub.cdnLog.length).toBeGreaterThan(0);
    expect(hub.cdnLog.every((l) => l.authorization === undefined)).toBe(true);
  });

  it('cancel stops at once, keeps the partial file and presents nothing; the next try resumes', async () => {
    hub.faults.chunkDelayMs = 30;
    const o = opts();
    const ctl = new AbortController();
    const p = downloadModel({ ...o, signal: ctl.signal, onProgress: (r) => { if ((r.fraction ?? 0) > 0.1) ctl.abort(); } });
    const err = await p.then(() => null, (x: unknown) => x);
    expect(err).toBeInstanceOf(CancelledError);
    expect(presented(o.modelsDir)).toEqual([]);
    const staging = path.join(o.modelsDir, '.downloads', readdirSync(path.join(o.modelsDir, '.downloads'))[0]!);
    const part = readdirSync(staging).find((n) => n.endsWith('.part'))!;
    const kept = statSync(path.join(staging, part)).size;
    expect(kept).toBeGreaterThan(0);
    delete hub.faults.chunkDelayMs;
    hub.cdnLog.length = 0;
    const r = await downloadModel(o);
    const shard = part.replace(/\.part$/, '');
    // Only what was missing is fetched again: the rest of the .part with a Range request (unless the
    // cancel came just as its last byte arrived).
    expect(r.fetched).toBeLessThan(r.bytes);
    if (kept < statSync(path.join(modelDir, shard)).size) expect(hub.cdnLog.some((l) => l.range === `bytes=${kept}-`)).toBe(true);
    expect(createHash('sha256').update(readFileSync(path.join(r.dir, shard))).digest('hex'))
      .toBe(createHash('sha256').update(readFileSync(path.join(modelDir, shard))).digest('hex'));
  });

  it('refuses a repository without safetensors weights, naming what it has', async () => {
    const e = await refusal(downloadModel(opts({ repo: 'other/bin-only' })));
    expect(['hub.noConfig', 'hub.noSafetensors']).toContain(e.code);
  });
});
