/**
 * Fuzz of the bridge and the gatekeeper (issue 16). The real bridge (`lathe serve`, its own process) gets
 * seeded random frames: malformed JSON, non-objects, odd ids, deep nesting, big frames, binary frames, and
 * for every channel of the contract its sample payload with fields replaced by odd values (huge, negative,
 * fractional numbers, NaN-like strings, system and traversal paths, long strings, deep structures). Every
 * frame must be answered (an oversize one closes its socket with 1009), the process must stay up, and a
 * normal call must work afterwards. The gatekeeper's `dispatch` gets the same in-process, plus values only
 * Electron's structured clone can carry (cycles, Map, BigInt, typed arrays).
 *
 * Seed: LATHE_FUZZ_SEED (default 16); it is printed with the failing frame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import path from 'node:path';
import { channelNames, type ChannelName } from '../../../src-main/contract';
import { dispatch } from '../../../src-main/services';
import { bundledResources } from '../../../src-main/services/resources';
import { mulberry32 } from '../../../src-main/util/random';
import { connect, startBridgeProcess, type BridgeProcess } from '../../helpers/bridge-process';
import { tempDir, testServices } from '../../helpers/services';

const SEED = Number(process.env['LATHE_FUZZ_SEED'] ?? 16);
const FRAMES = 240;
const DEADLINE_MS = 90_000;

const res = bundledResources();
// The Hub's channels answer from a closed local port (refused at once), never the real Hub.
process.env['HF_ENDPOINT'] = 'http://127.0.0.1:9';
const scratch = tempDir('lathe-fuzz-');
const messages = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }];

/** A plausible payload for every channel; the fuzz replaces its fields. Typed so a new channel must add one. */
const samples: Record<ChannelName, Record<string, unknown>> = {
  'app.info': {},
  'app.resources': {},
  'projects.create': { parentDir: scratch, name: 'fuzz' },
  'projects.open': { path: path.join(scratch, 'fuzz') },
  'projects.recent': {},
  'projects.setModel': { path: path.join(scratch, 'fuzz'), modelPath: res.tinyModel },
  'settings.get': {},
  'settings.set': { theme: 'dark' },
  'secrets.setHubToken': { token: 'hf_0123456789' },
  'secrets.hasHubToken': {},
  'secrets.clearHubToken': {},
  // steps 0 is refused: only a mutation that fixes it starts a (one-step) job.
  'jobs.start': { kind: 'selftest', params: { steps: 0, intervalMs: 0 } },
  'jobs.list': {},
  'jobs.get': { jobId: 'abc' },
  'jobs.cancel': { jobId: 'abc' },
  'jobs.pause': { jobId: 'abc' },
  'jobs.resume': { jobId: 'abc' },
  'models.inspect': { path: res.tinyModel },
  'lora.plan': { model: res.tinyModel, dataset: null, rank: 8, targets: 'attention', batchSize: 4, gradAccum: 1, epochs: 1, maxSteps: null },
  'datasets.list': { project: path.join(scratch, 'fuzz') },
  'tokenizers.list': { project: path.join(scratch, 'fuzz') },
  'runs.list': { project: path.join(scratch, 'fuzz') },
  'runs.read': { runDir: path.join(scratch, 'fuzz', 'runs', 'r') },
  'templates.builtins': {},
  'templates.load': { builtin: 'chatml' },
  'templates.preview': { source: '{% for m in messages %}{{ m.content }}{% endfor %}', specialTokens: {}, modelDir: null, messages },
  'cache.info': {},
  'cache.clear': {},
  'hub.search': { query: 'smollm', budgetGB: 8, ep: 'cpu' },
  'hub.recommended': { budgetGB: null },
  'hub.info': { repo: 'HuggingFaceTB/SmolLM2-135M-Instruct' },
  'hub.download': { repo: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: 'main' },
  'files.list': { dir: scratch, pick: 'folder' },
  'files.remember': { path: scratch },
  'files.native': { pick: 'folder', title: 'Choose' },
  'ollama.find': {},
  // Not an export folder: refused before any binary is looked for.
  'ollama.register': { dir: path.join(scratch, 'fuzz'), name: 'fuzz' },
  'runs.evalReport': { runDir: path.join(scratch, 'fuzz', 'runs', 'r') },
  'exports.ggufFiles': { project: path.join(scratch, 'fuzz') },
  'devices.expected': { ep: 'auto' },
};

const deep = (n: number, open = '[', close = ']') => open.repeat(n) + close.repeat(n);

/** Odd values of every kind the issue lists; raw JSON text where JSON.stringify cannot express them. */
const ODD: unknown[] = [
  null, true, 0, -0, 1, -5, 2.5, 1e300, -1e300, 1e-300, Number.MAX_SAFE_INTEGER, 2 ** 53 + 1, 'NaN', 'Infinity', '-Infinity', '',
  'x'.repeat(5000), '/%', '/%zz', '../../etc/passwd', '/etc/passwd', '/etc/shadow', '/proc/self/mem', '/proc', '/dev/zero', '/sys/kernel',
  'relative/path', '\u0000', '/tmp/\u0000x', '\ud800', `/${'a/'.repeat(3000)}`, [], {}, [1, 2, 3], { a: { b: { c: {} } } },
  JSON.parse(deep(500)), JSON.parse(deep(200, '{"a":', '}').replace(/\}+$/, (m) => '1' + m)), Array.from({ length: 5000 }, (_, i) => i),
  { __proto__: { polluted: true } }, { constructor: { prototype: { x: 1 } } }, 'https://huggingface.co/', 'javascript:alert(1)',
];
const RAW_NUMBERS = ['1e999', '-1e999', '1e-999', '-0', '123456789012345678901234567890', '0.1e-400'];

type Rand = () => number;
const pick = <T,>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function randomString(r: Rand): string {
  const n = Math.floor(r() * 40);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(r() < 0.8 ? 32 + Math.floor(r() * 95) : Math.floor(r() * 0xffff));
  return s;
}

function randomValue(r: Rand, depth = 0): unknown {
  const k = r();
  if (depth > 4 || k < 0.45) return pick(r, ODD);
  if (k < 0.6) return randomString(r);
  if (k < 0.8) return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 4); i > 0; i--) o[randomString(r) || 'k'] = randomValue(r, depth + 1);
  return o;
}

/** The sample with one to three fields replaced, removed, added or nested into. */
function mutate(r: Rand, sample: Record<string, unknown>): unknown {
  const out: Record<string, unknown> = structuredClone(sample);
  for (let n = 1 + Math.floor(r() * 3); n > 0; n--) {
    const keys = Object.keys(out);
    const what = r();
    if (keys.length && what < 0.6) out[pick(r, keys)] = randomValue(r);
    else if (keys.length && what < 0.7) delete out[pick(r, keys)];
    else if (what < 0.8) out[randomString(r) || 'extra'] = randomValue(r);
    else if (keys.length) {
      const key = pick(r, keys);
      const inner = out[key];
      if (inner && typeof inner === 'object' && !Array.isArray(inner)) {
        const innerKeys = Object.keys(inner);
        if (innerKeys.length) (inner as Record<string, unknown>)[pick(r, innerKeys)] = randomValue(r);
      }
    }
  }
  return out;
}

/** One frame: [text or bytes, the id an answer must carry (undefined: any)]. */
function randomFrame(r: Rand, i: number): [string | Buffer, unknown] {
  const k = r();
  const channel = pick(r, channelNames);
  if (k < 0.5) return [JSON.stringify({ id: i, channel, payload: mutate(r, samples[channel]) }), i];
  if (k < 0.6) return [JSON.stringify({ id: `s${i}`, channel: randomValue(r), payload: randomValue(r) }), `s${i}`];
  if (k < 0.7) {
    const garbage = [randomString(r), 'null', '{"id":1,"channel":"app.info","payload":', '{"id":', '}{', '\u0000\u0001', 'nul', '[1,2', '"unterminated'];
    return [pick(r, garbage), null];
  }
  if (k < 0.78) {
    const ids = [deep(100_000), `"${'x'.repeat(200)}"`, '{"a":1}', pick(r, RAW_NUMBERS), 'NaN', 'true', '[1]'];
    return [`{"id":${pick(r, ids)},"channel":"${channel}","payload":{}}`, undefined];
  }
  if (k < 0.84) return [`{"id":${i},"channel":"${channel}","payload":${deep(20_000 + Math.floor(r() * 140_000), '{"a":', '}').replace(/\}+$/, (m) => '1' + m)}}`, i];
  if (k < 0.9) return [`{"id":${i},"channel":"${channel}","payload":{"n":${pick(r, RAW_NUMBERS)},"rank":${pick(r, RAW_NUMBERS)}}}`, i];
  if (k < 0.95) return [JSON.stringify({ id: i, channel, payload: { big: Array.from({ length: 60_000 }, (_, j) => j * 1.5) } }), i];
  return [Buffer.from(Array.from({ length: 1 + Math.floor(r() * 300) }, () => Math.floor(r() * 256))), null];
}

function checkAnswer(answer: unknown, wantId: unknown): void {
  expect(answer, 'no answer (socket closed)').not.toBeNull();
  const a = answer as { id: unknown; envelope: { ok: unknown; error?: { code: unknown; message: unknown } } };
  if (wantId !== undefined) expect(a.id).toEqual(wantId);
  expect(typeof a.envelope.ok).toBe('boolean');
  if (a.envelope.ok === false) {
    expect(typeof a.envelope.error?.code).toBe('string');
    expect(typeof a.envelope.error?.message).toBe('string');
    expect(String(a.envelope.error?.message).length).toBeLessThan(5_000);
  }
}

function get(origin: string, pathname: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${origin}/`, { method: 'GET', path: pathname }, (r) => { r.resume(); resolve(r.statusCode ?? 0); });
    req.on('error', reject);
    req.end();
  });
}

describe(`bridge fuzz (seed ${SEED})`, () => {
  let b: BridgeProcess;
  beforeAll(async () => { b = await startBridgeProcess(); });
  afterAll(async () => { await b?.stop(); });

  it('answers every frame, closes only oversize sockets, and stays up', async () => {
    const r = mulberry32(SEED);
    let c = await connect(b);
    const start = Date.now();
    let sent = 0;
    for (let i = 0; i < FRAMES && Date.now() - start < DEADLINE_MS; i++) {
      const [frame, wantId] = randomFrame(r, i);
      try {
        checkAnswer(await c.send(frame, 30_000), wantId);
      } catch (err) {
        throw new Error(`seed ${SEED}, frame ${i}: ${String(frame).slice(0, 300)}\n${(err as Error).message}\nbridge stderr: ${b.stderr().slice(-2000)}`);
      }
      sent++;
      if (!b.alive()) throw new Error(`seed ${SEED}: the bridge exited after frame ${i}: ${String(frame).slice(0, 300)}\n${b.stderr().slice(-2000)}`);
    }
    expect(sent).toBeGreaterThanOrEqual(100);
    // Oversize frames close their own socket, cleanly, and nothing else.
    for (const size of [(1 << 20) + 1, 3 << 20]) {
      const big = await connect(b);
      big.ws.send(JSON.stringify({ id: 1, channel: 'app.info', payload: { pad: 'x'.repeat(size) } }));
      expect((await big.closed).code).toBe(1009);
    }
    // Odd page paths.
    for (const p of ['/%', '/%zz', '/%%', '/../../etc/passwd', '/..%2f..%2fetc%2fpasswd', '/%2e%2e/%2e%2e/etc/passwd', `/${'x'.repeat(20_000)}`, '/%ff%fe']) {
      expect([400, 404, 414, 431], p).toContain(await get(b.origin, p));
    }
    expect(await get(b.origin, `/?%&token=${b.token}`)).toBe(200); // the query is not part of the file name
    expect(b.alive(), b.stderr()).toBe(true);
    // The old socket still answers, and so does a new one.
    c.ws.close();
    c = await connect(b);
    const ok = await c.send(JSON.stringify({ id: 'after', channel: 'app.info', payload: {} }));
    expect(ok).toMatchObject({ id: 'after', envelope: { ok: true } });
    c.ws.close();
  });
});

describe(`gatekeeper fuzz (seed ${SEED})`, () => {
  const s = testServices();
  afterAll(async () => { s.jobs.dispose(); await s.offload.close(); });

  /** Values Electron's structured clone carries but JSON cannot. */
  function cloneOnly(r: Rand): unknown {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic['self'] = cyclic;
    const values = [cyclic, new Map([['path', '/etc/passwd']]), new Set([1]), 10n ** 30n, new Date(NaN), new Uint8Array(10), Number.NaN, Infinity, -Infinity, undefined, [cyclic]];
    return pick(r, values);
  }

  it('answers every call with an envelope, never throws', async () => {
    const r = mulberry32(SEED + 1);
    const start = Date.now();
    for (let i = 0; i < 400 && Date.now() - start < DEADLINE_MS; i++) {
      const channel: unknown = r() < 0.85 ? pick(r, channelNames) : r() < 0.5 ? randomValue(r) : cloneOnly(r);
      const sample = typeof channel === 'string' && channel in samples ? samples[channel as ChannelName] : {};
      let payload: unknown = r() < 0.7 ? mutate(r, sample) : r() < 0.5 ? randomValue(r) : cloneOnly(r);
      if (r() < 0.3 && payload && typeof payload === 'object') (payload as Record<string, unknown>)[pick(r, Object.keys(sample).concat('x'))] = cloneOnly(r);
      if (channel === 'jobs.start') payload = { kind: 'selftest', params: { steps: 0, intervalMs: 0, x: cloneOnly(r) } };
      let env: unknown;
      try {
        env = await dispatch(s, channel, payload);
        const e = env as { ok: unknown; error?: { code: unknown; message: unknown } };
        expect(typeof e.ok).toBe('boolean');
        if (e.ok === false) expect(typeof e.error?.message).toBe('string');
        if (e.ok === false) JSON.stringify(env); // errors always go over the wire
      } catch (err) {
        throw new Error(`seed ${SEED + 1}, call ${i} to ${String(channel).slice(0, 80)}: ${(err as Error).message}`);
      }
    }
  });
});
