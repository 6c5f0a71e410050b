/**
 * Trying a model in the app (services/chat.ts, contract/chat.ts): the chat job streams the same text the CLI
 * prints for the same settings (greedy and seeded sampling), side by side gives the base model's and the
 * trained adapter's different answers, the evaluation page's numbers are the CLI report's, and bad input
 * (a run folder without an adapter, a damaged GGUF file, a cancel mid-reply, a socket closed mid-stream)
 * ends in plain words without stopping the bridge.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { main } from '../../../src-main/cli/main';
import { train } from '../../../src-main/engine/train/trainer';
import { dispatch, type Services } from '../../../src-main/services';
import { evalReportView, listGgufFiles, readEvalReport, runChat } from '../../../src-main/services/chat';
import { startBridge, type Bridge } from '../../../src-main/bridge/server';
import type { ChatParams, ChatResultView } from '../../../src-main/contract/chat';
import type { JobEvent, JobInfo } from '../../../src-main/contract';
import type { EvalReport } from '../../../src-main/eval/report';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { DEVICE_LABEL, DEVICE_LOG_PREFIX } from '../../../src-main/contract/chat';
import { expectedDevice } from '../../../src-main/services/device';
import { closeGpu } from '../../../src-main/engine/backends/webgpu/device';
import { tempDir, testServices } from '../../helpers/services';

let model = '', run = '', project = '';
let services: Services;

async function lathe(...argv: string[]): Promise<Record<string, unknown>> {
  const out: string[] = [];
  const code = await main([...argv, '--json'], { out: (s) => { out.push(s); return true; }, err: () => true });
  const json = JSON.parse(out.join('\n')) as Record<string, unknown>;
  expect(code, JSON.stringify(json)).toBe(0);
  return json;
}

const params = (p: Partial<ChatParams> & Pick<ChatParams, 'messages'>): ChatParams => ({
  model, adapter: null, gguf: null, compare: false, template: null, sampling: { maxTokens: 12, greedy: true }, ...p,
});

async function chatCollect(p: ChatParams): Promise<{ result: ChatResultView; streamed: Record<string, string> }> {
  const streamed: Record<string, string> = {};
  const result = await runChat(p, { text: (s, t) => { streamed[s] = (streamed[s] ?? '') + t; } });
  return { result, streamed };
}

async function call<T>(channel: string, payload: unknown): Promise<T> {
  const env = await dispatch(services, channel, payload);
  if (!env.ok) throw new Error(`${channel}: ${env.error.code} ${env.error.message}`);
  return env.value as T;
}

beforeAll(async () => {
  model = await tinyModel('llama', 2);
  services = testServices();
  const parent = tempDir('lathe-chat-svc-');
  project = (await call<{ path: string }>('projects.create', { parentDir: parent, name: 'p' })).path;
  await call('models.inspect', { path: model }); // the model folder the user chose
  const dataset = await tinyDataset(model);
  run = path.join(project, 'runs', 'r1');
  await train({ model, dataset, out: run, maxSteps: 8, batchSize: 2, optim: { lr: 2e-2 }, evalEvery: 0, ep: 'cpu', samplePrompts: ['the gouge cuts'] });
}, 300_000);

afterAll(() => services?.jobs.dispose());

const ask = [{ role: 'user' as const, content: 'how do I sharpen a gouge?' }];

describe('chat service', () => {
  it('streams the text the CLI prints for the same greedy and seeded settings', async () => {
    const greedy = await chatCollect(params({ messages: ask }));
    const cli = await lathe('chat', '--model', model, '--message', ask[0]!.content, '--greedy', '--max-tokens', '12');
    expect(greedy.result.replies).toHaveLength(1);
    expect(greedy.result.replies[0]!.side).toBe('base');
    expect(greedy.result.replies[0]!.text).toBe(cli['text']);
    expect(greedy.streamed['base']).toBe(cli['text']);
    expect(greedy.result.replies[0]!.tokens).toBe((cli['ids'] as number[]).length);

    const sampled = await chatCollect(params({ messages: ask, adapter: run, sampling: { maxTokens: 12, greedy: false, temperature: 1.3, topK: 40, seed: 7 } }));
    const cliSampled = await lathe('chat', '--model', model, '--adapter', run, '--message', ask[0]!.content, '--temperature', '1.3', '--top-k', '40', '--seed', '7', '--max-tokens', '12');
    expect(sampled.result.replies[0]!.side).toBe('tuned');
    expect(sampled.streamed['tuned']).toBe(cliSampled['text']);
  }, 120_000);

  it('side by side answers with the base model and the trained adapter, and they differ', async () => {
    const both = await chatCollect(params({ messages: ask, adapter: run, compare: true }));
    const [base, tuned] = both.result.replies;
    expect(base!.side).toBe('base');
    expect(tuned!.side).toBe('tuned');
    expect(both.streamed['base']).toBe(base!.text);
    expect(both.streamed['tuned']).toBe(tuned!.text);
    expect(tuned!.text).not.toBe(base!.text);
    const alone = await chatCollect(params({ messages: ask }));
    expect(base!.text).toBe(alone.result.replies[0]!.text);
    const cli = await lathe('chat', '--model', model, '--adapter', run, '--compare', '--message', ask[0]!.content, '--greedy', '--max-tokens', '12');
    expect(tuned!.text).toBe((cli['tuned'] as { text: string }).text);
  }, 120_000);

  it('refuses bad input in plain words: no adapter in the run folder, a damaged GGUF, a conversation not ending with the user', async () => {
    const empty = path.join(project, 'runs', 'empty');
    mkdirSync(empty, { recursive: true });
    await expect(runChat(params({ messages: ask, adapter: empty }), { text: () => {} })).rejects.toMatchObject({ name: 'UserError' });
    const bad = path.join(project, 'exports', 'x', 'broken.gguf');
    mkdirSync(path.dirname(bad), { recursive: true });
    writeFileSync(bad, 'this is not a gguf file at all');
    await expect(runChat(params({ model: null, gguf: bad, messages: ask }), { text: () => {} })).rejects.toMatchObject({ code: 'gguf.notGguf' });
    writeFileSync(bad, Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), Buffer.alloc(40, 0xff)]));
    // a GGUF header with garbage after it: llama.cpp refuses it, said in plain words
    await expect(runChat(params({ model: null, gguf: bad, messages: ask }), { text: () => {} })).rejects.toMatchObject({ name: 'UserError' });
    expect(listGgufFiles(project).map((f) => f.file)).toEqual([bad]);
    await expect(runChat(params({ messages: [{ role: 'assistant', content: 'hi' }] }), { text: () => {} })).rejects.toMatchObject({ code: 'chat.lastNotUser' });
    await expect(runChat(params({ messages: ask, compare: true }), { text: () => {} })).rejects.toMatchObject({ code: 'chat.compareNeedsRun' });
  }, 120_000);

  it('chats with an exported GGUF file through llama.cpp, as `lathe chat --gguf` does, with earlier turns', async () => {
    const { exportModel } = await import('../../../src-main/export');
    const out = path.join(project, 'exports', 'gguf');
    const r = await exportModel({ format: 'gguf', quant: 'f16', model, adapter: run, out, verify: false, name: 'tiny' });
    const file = r.gguf!.file;
    expect(listGgufFiles(project).map((f) => f.file)).toContain(file);
    const one = await chatCollect(params({ model: null, gguf: file, ep: 'cpu', messages: ask, sampling: { maxTokens: 8, greedy: true } }));
    const reply = one.result.replies[0]!;
    expect(reply.side).toBe('gguf');
    expect(one.streamed['gguf']).toBe(reply.text);
    expect(reply.tokens).toBeGreaterThan(0);
    const cli = await lathe('chat', '--gguf', file, '--message', ask[0]!.content, '--max-tokens', '8', '--cpu');
    expect(reply.text).toBe(cli['text']);
    const two = await chatCollect(params({ model: null, gguf: file, ep: 'cpu', sampling: { maxTokens: 8, greedy: true },
      messages: [...ask, { role: 'assistant', content: reply.text }, { role: 'user', content: 'and a skew chisel?' }] }));
    expect(two.result.replies[0]!.tokens).toBeGreaterThan(0);
    // longer than the tiny model's context: the reply stops there, with what was written so far
    const full = await chatCollect(params({ model: null, gguf: file, ep: 'cpu', messages: ask, sampling: { maxTokens: 4000, greedy: true } }));
    expect(full.result.replies[0]!.finish).toBe('capacity');
    expect(full.streamed['gguf']).toBe(full.result.replies[0]!.text);
    await expect(runChat(params({ model: null, gguf: file, compare: true, messages: ask }), { text: () => {} })).rejects.toMatchObject({ code: 'chat.ggufCompare' });
  }, 240_000);

  it('runs as a job: text events stream the reply; a run without an adapter fails in plain words; cancel mid-reply ends it', async () => {
    const events: JobEvent[] = [];
    const off = services.jobs.onEvent((e) => events.push(e));
    try {
      const { jobId } = await call<{ jobId: string }>('jobs.start', { kind: 'chat', params: { model, adapter: run, compare: true, messages: ask, sampling: { maxTokens: 10, greedy: true } } });
      const done = await services.jobs.wait(jobId);
      expect(done.state, JSON.stringify(done.error)).toBe('done');
      const result = done.result as ChatResultView;
      const text = (side: string) => events.filter((e): e is Extract<JobEvent, { type: 'text' }> => e.type === 'text' && e.jobId === jobId && e.stream === side).map((e) => e.text).join('');
      expect(text('base')).toBe(result.replies[0]!.text);
      expect(text('tuned')).toBe(result.replies[1]!.text);
      // no device chosen = automatic; the job says where it ran and why, in its log and its answer
      expect(result.device?.device).toBe(expectedDevice('auto').device);
      const line = events.find((e): e is Extract<JobEvent, { type: 'log' }> => e.type === 'log' && e.jobId === jobId && e.message.startsWith(DEVICE_LOG_PREFIX));
      expect(line?.message).toBe(`${DEVICE_LOG_PREFIX}${DEVICE_LABEL[result.device!.device]}. ${result.device!.reason}`);
      // a device Lathe does not know is refused before any job starts
      const metal = await dispatch(services, 'jobs.start', { kind: 'chat', params: { model, messages: ask, ep: 'metal' } });
      expect(metal.ok).toBe(false);
      if (!metal.ok) expect(metal.error.message).toMatch(/ep/);

      const empty = path.join(project, 'runs', 'empty');
      const bad = await call<{ jobId: string }>('jobs.start', { kind: 'chat', params: { model, adapter: empty, messages: ask } });
      const failed = await services.jobs.wait(bad.jobId);
      expect(failed.state).toBe('failed');
      expect(failed.error?.message).toMatch(/\S/);
      expect(failed.error?.code).not.toBe('jobs.crashed');

      // outside the chosen folders: refused before any job starts
      const outside = await dispatch(services, 'jobs.start', { kind: 'chat', params: { model: '/etc', messages: ask } });
      expect(outside.ok).toBe(false);

      const long = await call<{ jobId: string }>('jobs.start', { kind: 'chat', params: { model, messages: ask, sampling: { maxTokens: 2000, greedy: false, temperature: 1.5, seed: 1 } } });
      await new Promise<void>((resolve) => {
        const stop = services.jobs.onEvent((e) => { if (e.type === 'text' && e.jobId === long.jobId) { stop(); resolve(); } });
      });
      services.jobs.cancel(long.jobId);
      const info: JobInfo = await services.jobs.wait(long.jobId);
      expect(info.state).toBe('cancelled');
    } finally {
      off();
    }
  }, 180_000);

  it('on Lathe\'s GPU backend (ep "gpu") answers the CPU\'s greedy text, side by side too, and says where it ran', async () => {
    try {
      const logs: string[] = [];
      const gpu = await runChat(params({ messages: ask, adapter: run, compare: true, ep: 'gpu' }), { text: () => {}, onLog: (_l, m) => logs.push(m) });
      const cpu = await chatCollect(params({ messages: ask, adapter: run, compare: true, ep: 'cpu' }));
      expect(gpu.device).toMatchObject({ device: 'gpu', reason: expect.stringMatching(/^Using Lathe's GPU backend as requested: GPU: /) });
      expect(cpu.result.device).toMatchObject({ device: 'cpu', reason: expect.stringMatching(/^Using CPU as requested/) });
      expect(gpu.replies.map((r) => r.text)).toEqual(cpu.result.replies.map((r) => r.text));
      expect(gpu.replies[0]!.text).not.toBe(gpu.replies[1]!.text);
      expect(logs[0]).toBe(`${DEVICE_LOG_PREFIX}GPU (Lathe). ${gpu.device!.reason}`);
    } finally {
      await closeGpu();
    }
  }, 240_000);

  it('a socket closed mid-stream leaves the bridge and the job fine', async () => {
    const bridge: Bridge = await startBridge({ services, staticDir: tempDir('lathe-static-') });
    try {
      const u = new URL(bridge.pageUrl);
      const open = () => new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws://${u.host}/api?token=${u.searchParams.get('token')}`, { origin: u.origin });
        ws.once('open', () => resolve(ws)); ws.once('error', reject);
      });
      const ws = await open();
      let jobId = '';
      const firstText = new Promise<void>((resolve) => ws.on('message', (d) => {
        const m = JSON.parse(String(d)) as { id?: number; envelope?: { value?: { jobId: string } }; event?: string; payload?: JobEvent };
        if (m.id === 1) jobId = m.envelope!.value!.jobId;
        if (m.event === 'job' && m.payload?.type === 'text') resolve();
      }));
      ws.send(JSON.stringify({ id: 1, channel: 'jobs.start', payload: { kind: 'chat', params: { model, messages: ask, sampling: { maxTokens: 40, greedy: true } } } }));
      await firstText;
      ws.terminate();
      const info = await services.jobs.wait(jobId);
      expect(info.state).toBe('done');
      const ws2 = await open();
      const answer = await new Promise<{ envelope: { ok: boolean } }>((resolve) => {
        ws2.on('message', (d) => { const m = JSON.parse(String(d)) as { id?: number; envelope: { ok: boolean } }; if (m.id === 2) resolve(m); });
        ws2.send(JSON.stringify({ id: 2, channel: 'jobs.get', payload: { jobId } }));
      });
      expect(answer.envelope.ok).toBe(true);
      ws2.close();
    } finally {
      await bridge.close();
    }
  }, 120_000);
});

describe('evaluation report as a page', () => {
  it('the page data are the CLI report\'s numbers, with plain verdicts', async () => {
    const cli = await lathe('eval', 'report', '--run', run, '--max-tokens', '8', '--max-blocks', '8', '--ep', 'cpu') as unknown as EvalReport;
    const { jobId } = await call<{ jobId: string }>('jobs.start', { kind: 'eval-report', params: { run, maxTokens: 8, maxBlocks: 8, ep: 'cpu' } });
    const done = await services.jobs.wait(jobId);
    expect(done.state, JSON.stringify(done.error)).toBe('done');
    expect((done.result as ReturnType<typeof evalReportView>).device).toMatchObject({ device: 'cpu', reason: expect.stringMatching(/^Using CPU as requested/) });
    const view = await call<ReturnType<typeof evalReportView>>('runs.evalReport', { runDir: run });
    expect(view).not.toBeNull();
    expect(view.perplexity.map((p) => [p.split, p.before.ppl, p.after.ppl, p.change])).toEqual(cli.perplexity.map((p) => [p.split, p.before.ppl, p.after.ppl, p.change]));
    expect(view.generations).toEqual(cli.generations);
    expect(view.forgetting).toEqual(cli.forgetting);
    expect(view.step).toBe(cli.step);
    const domain = view.perplexity.find((p) => p.kind === 'domain')!;
    expect(domain.after.ppl).toBeLessThan(domain.before.ppl);
    expect(view.verdict.learning).toMatch(/^Your domain text got [\d.]+% easier for the model to predict/);
    expect(view.verdict.forgetting).toMatch(/General text got|not measured/);
    expect(readEvalReport(path.join(project, 'runs', 'empty'))).toBeNull();
    // a damaged report file is said in plain words, through the channel
    const damaged = path.join(project, 'runs', 'damaged');
    mkdirSync(damaged, { recursive: true });
    writeFileSync(path.join(damaged, 'eval-report.json'), '{"perplexity": [1, 2');
    const env = await dispatch(services, 'runs.evalReport', { runDir: damaged });
    expect(env.ok).toBe(false);
    if (!env.ok) expect(env.error).toMatchObject({ code: 'report.damaged', hint: expect.stringContaining('Make the report again') });
    // outside the project: refused
    expect((await dispatch(services, 'runs.evalReport', { runDir: '/etc' })).ok).toBe(false);
  }, 240_000);

  it('says how much general text got worse, in words', () => {
    const base: EvalReport = {
      run: 'r', checkpoint: 'c', step: 5, model: 'm', dataset: 'd', createdAt: 'now', seconds: 1, generations: [], sft: null,
      perplexity: [
        { split: 'val-domain', before: { loss: 5, ppl: 100 }, after: { loss: 4, ppl: 60 }, tokens: 10, change: -0.4 },
        { split: 'val-general', before: { loss: 5, ppl: 100 }, after: { loss: 5, ppl: 103 }, tokens: 10, change: 0.03 },
      ],
      forgetting: { split: 'val-general', change: 0.03, warning: false },
    };
    const v = evalReportView(base);
    expect(v.verdict.forgetting).toBe('General text got 3.0% worse: little forgetting.');
    expect(v.verdict.learning).toContain('40% easier');
    expect(v.verdict.tone).toBe('ok');
    const bad = evalReportView({ ...base, forgetting: { split: 'val-general', change: 0.25, warning: true } });
    expect(bad.verdict.forgetting).toMatch(/^General text got 25% worse: the model is forgetting/);
    expect(bad.verdict.tone).toBe('warn');
    expect(evalReportView({ ...base, forgetting: null }).verdict.forgetting).toMatch(/not measured/);
  });
});
