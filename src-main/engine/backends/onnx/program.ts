/**
 * A Program is a step graph plus named state slots that persist between steps (weights, optimizer
 * moments, step counter). Each slot is one graph input (value before the step) and one graph output
 * (value after); `step` feeds per-step data (tokens, learning rate), returns the fetched outputs
 * (loss etc.) and keeps the new state for the next step.
 *
 * On WebGPU the state never leaves the GPU: slot outputs are 'gpu-buffer' tensors fed straight back
 * as next-step inputs and the old ones disposed. Values get onto the GPU through an upload session
 * (Identity, GPU outputs) and back through a copy-out session (Identity, CPU outputs), because JS
 * cannot wrap GPU buffers and getData() on a gpu-buffer tensor aborts the process (ORT 1.30).
 * On CPU/CUDA the state is kept as CPU tensors (the Node binding has no CUDA-resident outputs).
 *
 * Not thread-safe by itself: the engine worker runs one call at a time.
 */
import type * as ort from 'onnxruntime-node';
import type { OnnxModel, OnnxValueInfo } from '../../onnx/spec';
import { EngineSession, type EngineSessionOptions } from './session';
import type { HostTensor, StateSlot } from '../../runtime/tensor';
import { fromOrt, toOrt } from './ort-tensor';

export type { StateSlot } from '../../runtime/tensor';

export interface ProgramSpec {
  model: OnnxModel;
  state: StateSlot[];
  /** Outputs returned to the host after each step (small: loss, grad norm...). */
  fetch: string[];
}

export interface ProgramInfo {
  ep: string;
  nodeCount: number;
  /** Graph inputs the caller feeds at each step. */
  feeds: string[];
  state: string[];
  fetch: string[];
  /** True when the state lives on the GPU between steps. */
  gpuResident: boolean;
  /** EP workarounds applied to the step graph (see patches.ts). */
  patches: string[];
}

export class Program {
  private state = new Map<string, ort.Tensor>();
  private upload?: EngineSession;
  private copyOut?: EngineSession;
  private disposed = false;
  private initialized = false;
  steps = 0;

  private constructor(
    private readonly spec: ProgramSpec,
    private readonly session: EngineSession,
    private readonly opts: EngineSessionOptions,
    readonly info: ProgramInfo,
  ) {}

  static async create(spec: ProgramSpec, opts: EngineSessionOptions = {}): Promise<Program> {
    const g = spec.model.graph;
    const inputs = new Map(g.inputs.map((v) => [v.name, v]));
    const outputs = new Map(g.outputs.map((v) => [v.name, v]));
    const seen = new Set<string>();
    for (const s of spec.state) {
      if (seen.has(s.name)) throw new Error(`Program: state slot "${s.name}" is listed twice.`);
      seen.add(s.name);
      const i = inputs.get(s.input), o = outputs.get(s.output);
      if (!i) throw new Error(`Program: state slot "${s.name}" names input "${s.input}", which the graph does not have (inputs: ${[...inputs.keys()].join(', ')}).`);
      if (!o) throw new Error(`Program: state slot "${s.name}" names output "${s.output}", which the graph does not have (outputs: ${[...outputs.keys()].join(', ')}).`);
      if (i.type !== o.type) throw new Error(`Program: state slot "${s.name}" goes in as ${i.type} but comes out as ${o.type}.`);
    }
    const stateOutputs = spec.state.map((s) => s.output);
    for (const f of spec.fetch) {
      if (!outputs.has(f)) throw new Error(`Program: fetch "${f}" is not a graph output (outputs: ${[...outputs.keys()].join(', ')}).`);
      if (stateOutputs.includes(f)) throw new Error(`Program: "${f}" is a state output; read state with read(), not fetch.`);
    }
    const ep = opts.ep ?? 'cpu';
    const gpuResident = ep === 'webgpu';
    const session = await EngineSession.create(spec.model, { ...opts, gpuOutputs: gpuResident ? stateOutputs : undefined });
    const stateInputs = new Set(spec.state.map((s) => s.input));
    const info: ProgramInfo = {
      ep, nodeCount: session.nodeCount, gpuResident, patches: session.patches,
      feeds: g.inputs.map((v) => v.name).filter((n) => !stateInputs.has(n)),
      state: spec.state.map((s) => s.name), fetch: [...spec.fetch],
    };
    return new Program(spec, session, opts, info);
  }

  /** Sets every state slot (uploads to the GPU on WebGPU). Replaces and disposes previous values. */
  async init(values: Record<string, HostTensor>): Promise<void> {
    this.check();
    const missing = this.spec.state.filter((s) => !(s.name in values)).map((s) => s.name);
    if (missing.length) throw new Error(`Program.init: no value for state slot(s) ${missing.join(', ')}.`);
    const next = new Map<string, ort.Tensor>();
    if (this.info.gpuResident && this.spec.state.length > 0) {
      this.upload ??= await EngineSession.create(identityModel('upload', this.slotInfos()), { ...this.opts, gpuOutputs: true, optLevel: 'disabled' });
      const feeds: Record<string, ort.Tensor> = {};
      this.spec.state.forEach((s, i) => { feeds[`in${i}`] = toOrt(values[s.name]!); });
      const out = await this.upload.runOrt(feeds);
      this.spec.state.forEach((s, i) => next.set(s.name, out[`out${i}`]!));
    } else {
      for (const s of this.spec.state) next.set(s.name, toOrt(values[s.name]!));
    }
    this.replaceState(next);
    this.initialized = true;
  }

  /** One step: feeds per-step inputs, advances the state, returns the fetched outputs. */
  async step(feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    this.check();
    if (!this.initialized) throw new Error('Program.step: call init() with the starting state first.');
    const extra = Object.keys(feeds).filter((k) => !this.info.feeds.includes(k));
    if (extra.length) throw new Error(`Program.step: ${extra.join(', ')} are not per-step inputs (those are: ${this.info.feeds.join(', ') || 'none'}).`);
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
    for (const s of this.spec.state) ortFeeds[s.input] = this.state.get(s.name)!;
    const out = await this.session.runOrt(ortFeeds, [...this.spec.fetch, ...this.spec.state.map((s) => s.output)]);
    const next = new Map<string, ort.Tensor>();
    for (const s of this.spec.state) next.set(s.name, out[s.output]!);
    this.replaceState(next);
    this.steps++;
    const res: Record<string, HostTensor> = {};
    for (const f of this.spec.fetch) res[f] = copyHost(fromOrt(out[f]!));
    return res;
  }

  /** Current state values on the host (all slots, or the named ones). */
  async read(names?: string[]): Promise<Record<string, HostTensor>> {
    this.check();
    if (!this.initialized) throw new Error('Program.read: the state is not initialised yet.');
    const want = names ?? this.info.state;
    for (const n of want) if (!this.state.has(n)) throw new Error(`Program.read: no state slot "${n}" (slots: ${this.info.state.join(', ')}).`);
    const res: Record<string, HostTensor> = {};
    if (want.length === 0) return res;
    if (!this.info.gpuResident) {
      for (const n of want) res[n] = copyHost(fromOrt(this.state.get(n)!));
      return res;
    }
    this.copyOut ??= await EngineSession.create(identityModel('copy_out', this.slotInfos()), { ...this.opts, gpuOutputs: false, optLevel: 'disabled' });
    const feeds: Record<string, ort.Tensor> = {};
    this.spec.state.forEach((s, i) => { feeds[`in${i}`] = this.state.get(s.name)!; });
    const idx = new Map(this.spec.state.map((s, i) => [s.name, i]));
    const out = await this.copyOut.runOrt(feeds, want.map((n) => `out${idx.get(n)}`));
    for (const n of want) res[n] = fromOrt(out[`out${idx.get(n)}`]!);
    return res;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.replaceState(new Map());
    await this.session.dispose();
    await this.upload?.dispose();
    await this.copyOut?.dispose();
  }

  private replaceState(next: Map<string, ort.Tensor>): void {
    const keep = new Set(next.values());
    // GPU buffers are not garbage collected in time: free the previous step's explicitly.
    for (const t of this.state.values()) if (!keep.has(t) && t.location === 'gpu-buffer') t.dispose();
    this.state = next;
  }

  private slotInfos(): OnnxValueInfo[] {
    const inputs = new Map(this.spec.model.graph.inputs.map((v) => [v.name, v]));
    return this.spec.state.map((s) => inputs.get(s.input)!);
  }

  private check(): void {
    if (this.disposed) throw new Error('Program: used after dispose().');
  }
}

/** in{i} -> Identity -> out{i} for each slot (types and shapes as the step graph's state inputs). */
export function identityModel(name: string, slots: OnnxValueInfo[]): OnnxModel {
  return {
    opsets: [{ domain: '', version: 21 }],
    graph: {
      name, initializers: [],
      inputs: slots.map((v, i) => ({ ...v, name: `in${i}` })),
      outputs: slots.map((v, i) => ({ ...v, name: `out${i}` })),
      nodes: slots.map((_, i) => ({ op: 'Identity', name: `${name}_${i}`, inputs: [`in${i}`], outputs: [`out${i}`] })),
    },
  };
}

/** Detaches host data from ORT-owned memory (ORT may reuse output buffers). */
function copyHost(t: HostTensor): HostTensor {
  return { type: t.type, dims: [...t.dims], data: t.data.slice() };
}
