/**
 * The engine thread. Owns every onnxruntime session and GPU tensor of the process and runs one
 * request at a time, in arrival order: session.run() blocks its thread for the whole run, and two
 * WebGPU sessions running at once crash on Linux/Vulkan (onnxruntime issue 32561).
 */
import { parentPort } from 'node:worker_threads';
import { UserError } from '../../../util/progress';
import { selectEp } from './ep';
import { ensureXdgRuntimeDir } from '../../runtime/env';
import { reportPlacement } from './placement';
import { Program } from './program';
import type { EngineLog, EngineMethods, EngineRequest, EngineResponse, MethodName } from './protocol';
import { runModel } from './session';

const port = parentPort;
if (!port) throw new Error('worker-main.ts must be started as a worker thread (use EngineWorker).');
ensureXdgRuntimeDir();

const programs = new Map<number, Program>();
let nextHandle = 1;

function program(h: number): Program {
  const p = programs.get(h);
  if (!p) throw new Error(`Engine: no program with handle ${h} (disposed already?).`);
  return p;
}

type Handlers = { [M in MethodName]: (...args: EngineMethods[M][0]) => Promise<EngineMethods[M][1]> };

const handlers: Handlers = {
  selectEp: (opts) => selectEp(opts),
  runModel: (model, feeds, opts) => runModel(model, feeds, opts),
  reportPlacement: (model, opts) => reportPlacement(model, opts),
  async createProgram(spec, opts) {
    const p = await Program.create(spec, opts);
    const handle = nextHandle++;
    programs.set(handle, p);
    log('info', `Program ${spec.model.graph.name} on ${p.info.ep}: ${p.info.nodeCount} nodes, state ${p.info.gpuResident ? 'on the GPU' : 'in host memory'}.`);
    for (const line of p.info.patches) log('info', `Graph patched for ${p.info.ep}: ${line}`);
    return { handle, info: p.info };
  },
  programInit: (h, values) => program(h).init(values),
  programStep: (h, feeds) => program(h).step(feeds),
  async programSteps(h, feeds) {
    const p = program(h);
    const out = [];
    for (const f of feeds) out.push(await p.step(f));
    return out;
  },
  programRead: (h, names) => program(h).read(names),
  async programDispose(h) {
    const p = programs.get(h);
    programs.delete(h);
    await p?.dispose();
  },
  async shutdown() {
    for (const [h, p] of programs) {
      programs.delete(h);
      await p.dispose();
    }
  },
};

function log(level: EngineLog['log'], message: string): void {
  const msg: EngineLog = { log: level, message };
  port!.postMessage(msg);
}

let queue: Promise<void> = Promise.resolve();

port.on('message', (req: EngineRequest) => {
  queue = queue.then(async () => {
    let res: EngineResponse;
    try {
      const fn = handlers[req.method] as (...a: unknown[]) => Promise<unknown>;
      if (!fn) throw new Error(`Engine: unknown method ${String(req.method)}`);
      res = { id: req.id, ok: true, result: await fn(...(req.args as unknown[])) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      res = {
        id: req.id, ok: false,
        error: { name: err.name, message: err.message, stack: err.stack, ...(err instanceof UserError ? { code: err.code, hint: err.hint } : {}) },
      };
    }
    port.postMessage(res);
  });
});
