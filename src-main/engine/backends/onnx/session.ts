/**
 * One onnxruntime InferenceSession built from an OnnxModel, with our option names.
 * `run` takes and returns HostTensors (CPU typed arrays); `runOrt` is the raw form used by the
 * GPU-resident state code, where outputs may stay in 'gpu-buffer' tensors.
 * run() blocks the calling thread for the whole run: call it from the engine worker, not a UI thread.
 */
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../../onnx/encode';
import type { OnnxGraph, OnnxModel } from '../../onnx/spec';
import { ensureXdgRuntimeDir } from '../../runtime/env';
import { patchForEp } from './patches';
import type { HostTensor } from '../../runtime/tensor';
import { fromOrt, toOrt } from './ort-tensor';

export type EpName = 'cpu' | 'webgpu' | 'cuda';
export type OptLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface EngineSessionOptions {
  /** Execution provider; 'cpu' unless told (selection with reasons lives in ep.ts). */
  ep?: EpName;
  /** Intra-op threads for the CPU EP (and CPU fallback nodes); ORT's default when unset. */
  threads?: number;
  /** ORT graph optimization level; 'all' unless told. 'disabled' keeps our node count exact. */
  optLevel?: OptLevel;
  /** Fail session creation instead of quietly running unsupported nodes on the CPU. */
  disableCpuFallback?: boolean;
  /** Folder that external-data `location`s are relative to; required when the model has any. */
  externalDataDir?: string;
  /** WebGPU only: keep these outputs (or all, with `true`) on the GPU as 'gpu-buffer' tensors. */
  gpuOutputs?: boolean | string[];
  /** WebGPU: storage buffers one shader may bind; wider Split/Concat nodes are rewritten (8 unless told). */
  maxStorageBuffers?: number;
  /** ORT log severity (0 verbose .. 4 fatal); 3 (errors) unless told. Verbose prints node placement. */
  logSeverity?: 0 | 1 | 2 | 3 | 4;
  /**
   * Host-memory switches (measured in BENCHMARKS.md, "Real-size models"): `prepacking` lets MatMul/Gemm keep a
   * repacked copy of every constant weight (a second copy of the model); `cpuArena` keeps freed activation
   * blocks for reuse; `memPattern` preallocates one block per run from the first run's pattern.
   */
  memory?: { prepacking?: boolean; cpuArena?: boolean; memPattern?: boolean };
}

export class EngineSession {
  private disposed = false;

  private constructor(
    readonly ort: ort.InferenceSession,
    readonly ep: EpName,
    /** Nodes in the graph handed to ORT (after EP patches; before ORT's own optimizations). -1 for raw bytes. */
    readonly nodeCount: number,
    /** EP workarounds applied to the graph, one line each. */
    readonly patches: string[],
  ) {}

  get inputNames(): readonly string[] { return this.ort.inputNames; }
  get outputNames(): readonly string[] { return this.ort.outputNames; }

  static async create(model: OnnxModel | Uint8Array, opts: EngineSessionOptions = {}): Promise<EngineSession> {
    const ep = opts.ep ?? 'cpu';
    // EP-specific rewrites around kernels that run but compute wrongly (see patches.ts).
    const patched = model instanceof Uint8Array ? undefined : patchForEp(model, ep, { maxStorageBuffers: opts.maxStorageBuffers });
    const bytes = patched ? encodeModel(patched.model) : (model as Uint8Array);
    const nodeCount = patched ? countNodes(patched.model.graph) : -1;
    if (patched && hasExternalData(patched.model.graph) && !opts.externalDataDir) {
      throw new Error('EngineSession.create: the model references external data; pass externalDataDir ' +
        '(the folder its locations are relative to).');
    }
    if (ep === 'webgpu') ensureXdgRuntimeDir();
    try {
      const s = await ort.InferenceSession.create(bytes, sessionOptions(ep, opts));
      return new EngineSession(s, ep, nodeCount, patched?.applied ?? []);
    } catch (e) {
      let msg = `Could not create an onnxruntime session on the ${ep} EP: ${errorText(e)}`;
      if (opts.disableCpuFallback && /fallback to CPU EP has been explicitly disabled/.test(errorText(e)) && !(model instanceof Uint8Array)) {
        // Name the culprits: ORT's error does not say which nodes would have gone to the CPU.
        const { reportPlacement, describeFallback } = await import('./placement');
        const report = await reportPlacement(patched!.model, { ...opts, ep }).catch(() => undefined);
        if (report) msg += ` ${describeFallback(report)}`;
      }
      throw new Error(msg, { cause: e });
    }
  }

  /** Runs with host tensors in and out. Every requested output must be on the CPU. */
  async run(feeds: Record<string, HostTensor>, fetches?: string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
    const out = await this.runOrt(ortFeeds, fetches);
    const res: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(out)) {
      if (v.location !== 'cpu') {
        for (const t of Object.values(out)) if (t.location !== 'cpu') t.dispose();
        throw new Error(`EngineSession.run: output ${k} is on ${v.location}; use runOrt and a copy-out session for GPU outputs.`);
      }
      res[k] = fromOrt(v);
    }
    return res;
  }

  async runOrt(feeds: Record<string, ort.Tensor>, fetches?: string[]): Promise<Record<string, ort.Tensor>> {
    if (this.disposed) throw new Error('EngineSession.run: the session was disposed.');
    const missing = this.ort.inputNames.filter((n) => !(n in feeds));
    if (missing.length) {
      throw new Error(`EngineSession.run: missing input(s) ${missing.join(', ')}; the model takes ${this.ort.inputNames.join(', ')}.`);
    }
    return fetches ? this.ort.run(feeds, fetches) : this.ort.run(feeds);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.ort.release();
  }
}

/** One-shot: build a session, run it once, dispose it. Handy for tests and finite-difference checks. */
export async function runModel(
  model: OnnxModel | Uint8Array, feeds: Record<string, HostTensor>, opts: EngineSessionOptions = {},
): Promise<Record<string, HostTensor>> {
  const s = await EngineSession.create(model, opts);
  try {
    return await s.run(feeds);
  } finally {
    await s.dispose();
  }
}

export function sessionOptions(ep: EpName, opts: EngineSessionOptions): ort.InferenceSession.SessionOptions {
  const session: Record<string, string> = {};
  if (opts.disableCpuFallback) session.disable_cpu_ep_fallback = '1';
  if (opts.externalDataDir) session.model_external_initializers_file_folder_path = opts.externalDataDir;
  // CPU EP defaults (BENCHMARKS.md, "Real-size models": Qwen2.5-0.5B shape 7.7 -> 5.0 GB peak): no prepacked
  // copy of the weights (they stay in the mapped external-data files) and no arena keeping freed blocks
  const mem = { ...(ep === 'cpu' ? { prepacking: false, cpuArena: false } : {}), ...opts.memory };
  if (mem.prepacking === false) session.disable_prepacking = '1';
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: [ep],
    graphOptimizationLevel: opts.optLevel ?? 'all',
    logSeverityLevel: opts.logSeverity ?? 3,
    extra: { session },
  };
  if (mem.cpuArena !== undefined) o.enableCpuMemArena = mem.cpuArena;
  if (mem.memPattern !== undefined) o.enableMemPattern = mem.memPattern;
  if (opts.threads !== undefined) {
    o.intraOpNumThreads = opts.threads;
    o.interOpNumThreads = 1;
  }
  if (opts.gpuOutputs) {
    if (ep !== 'webgpu') throw new Error(`gpuOutputs needs the webgpu EP; this session is on ${ep}.`);
    o.preferredOutputLocation = opts.gpuOutputs === true
      ? 'gpu-buffer'
      : Object.fromEntries(opts.gpuOutputs.map((n) => [n, 'gpu-buffer' as const]));
  }
  return o;
}

export function countNodes(g: OnnxGraph): number {
  let n = 0;
  for (const node of g.nodes) {
    n++;
    for (const a of Object.values(node.attributes ?? {})) if (a.type === 'graph') n += countNodes(a.value);
  }
  return n;
}

function hasExternalData(g: OnnxGraph): boolean {
  return g.initializers.some((t) => t.data.kind === 'external');
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
