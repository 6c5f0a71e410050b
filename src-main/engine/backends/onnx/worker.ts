/**
 * EngineWorker: the caller's handle on the engine thread. Every method posts one message and resolves
 * with the reply, so the caller's thread (Electron main, a job host) never blocks on session.run().
 *
 * The worker entry is worker-main.ts (bundled as engine-worker.js; util/worker.ts finds either).
 */
import { Worker } from 'node:worker_threads';
import { UserError, type WorkOptions } from '../../../util/progress';
import { startWorker } from '../../../util/worker';
import type { OnnxModel } from '../../onnx/spec';
import type { EpChoice, SelectEpOptions } from './ep';
import type { PlacementReport } from './placement';
import type { ProgramInfo, ProgramSpec } from './program';
import type { EngineLog, EngineMethods, EngineRequest, EngineResponse, Feeds, MethodName, SerializedError } from './protocol';
import type { EngineSessionOptions, EpName } from './session';

export interface EngineWorkerOptions {
  /** URL of the worker script; defaults to worker-main.ts next to this file (run under tsx). */
  entry?: URL;
  /** Environment for the engine thread (LATHE_EP, XDG_RUNTIME_DIR...); defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Log lines from the engine thread (what ran where, graph patches), as WorkOptions.onLog. */
  onLog?: WorkOptions['onLog'];
}

export class EngineWorker {
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private dead: Error | undefined;

  private constructor(private readonly worker: Worker, onLog: WorkOptions['onLog']) {
    worker.on('message', (res: EngineResponse | EngineLog) => {
      if ('log' in res) {
        onLog?.(res.log, res.message);
        return;
      }
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.result);
      else p.reject(reviveError(res.error));
    });
    worker.on('error', (e) => this.fail(new Error(`The engine thread crashed: ${e.message}`, { cause: e })));
    worker.on('exit', (code) => this.fail(new Error(`The engine thread exited (code ${code}).`)));
  }

  static start(opts: EngineWorkerOptions = {}): EngineWorker {
    const here = import.meta.url;
    const env = opts.env ?? process.env;
    const worker = opts.entry ? new Worker(opts.entry, { env }) : startWorker(here, './worker-main.ts', 'engine-worker', { env });
    return new EngineWorker(worker, opts.onLog);
  }

  call<M extends MethodName>(method: M, ...args: EngineMethods[M][0]): Promise<EngineMethods[M][1]> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const req: EngineRequest<M> = { id, method, args };
      this.worker.postMessage(req);
    });
  }

  selectEp(opts: SelectEpOptions = {}): Promise<EpChoice> {
    return this.call('selectEp', opts);
  }

  runModel(model: OnnxModel, feeds: Feeds, opts: EngineSessionOptions = {}): Promise<Feeds> {
    return this.call('runModel', model, feeds, opts);
  }

  reportPlacement(model: OnnxModel, opts: EngineSessionOptions & { ep: EpName }): Promise<PlacementReport> {
    return this.call('reportPlacement', model, opts);
  }

  async createProgram(spec: ProgramSpec, opts: EngineSessionOptions = {}): Promise<ProgramHandle> {
    const { handle, info } = await this.call('createProgram', spec, opts);
    return new ProgramHandle(this, handle, info);
  }

  /** Disposes all sessions and GPU tensors on the engine thread, then stops it. */
  async terminate(): Promise<void> {
    if (!this.dead) {
      await this.call('shutdown').catch(() => undefined);
      this.fail(new Error('The engine thread was stopped.'));
    }
    await this.worker.terminate();
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/** A Program living on the engine thread. */
export class ProgramHandle {
  constructor(private readonly engine: EngineWorker, readonly handle: number, readonly info: ProgramInfo) {}
  init(values: Feeds): Promise<void> { return this.engine.call('programInit', this.handle, values); }
  step(feeds: Feeds = {}): Promise<Feeds> { return this.engine.call('programStep', this.handle, feeds); }
  steps(feeds: Feeds[]): Promise<Feeds[]> { return this.engine.call('programSteps', this.handle, feeds); }
  read(names?: string[]): Promise<Feeds> { return this.engine.call('programRead', this.handle, names); }
  dispose(): Promise<void> { return this.engine.call('programDispose', this.handle); }
}

function reviveError(e: SerializedError): Error {
  const err = e.code !== undefined ? new UserError(e.code, e.message, e.hint) : new Error(e.message);
  if (e.name && !(err instanceof UserError)) err.name = e.name;
  if (e.stack) err.stack = `${err.name}: ${e.message}\n    [engine thread]\n${e.stack.split('\n').slice(1).join('\n')}`;
  return err;
}
