/// <reference types="@webgpu/types" />
/**
 * A compiled GPU program: the plan (plan.ts) realised on the Dawn device. Every buffer of the plan is
 * created once; weights and constants are uploaded once, in their stored type (f32, f16 packed two per
 * word; an external weight is read from its file straight into the GPU buffer in chunks, never turned
 * into a host f32 copy); pipelines and bind groups are built once.
 *
 * A run writes the per-run feeds, encodes every dispatch into ONE compute pass of ONE command buffer,
 * copies state outputs onto the state inputs (state stays on the GPU) and the fetched outputs into a
 * staging buffer, submits, and maps only the staging buffer. Same contract as runtime/program.ts's
 * Program (init / step / read / dispose), so the trainer can hold either.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import type { GraphBuilder } from '../../graph/graph';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../onnx/pack';
import type { HostTensor } from '../../runtime/tensor';
import type { OnnxTensorData } from '../../onnx/spec';
import type { StateSlot } from '../../runtime/program';
import { openGpu, type GpuContext } from './device';
import { planGraph, type Plan, type PlannedTensor } from './plan';
import type { BufferSlot, Ref } from './wgsl';

export interface GpuProgramSpec {
  graph: GraphBuilder;
  state: StateSlot[];
  /** Outputs read back after each step (small: loss, grad norm...). */
  fetch: string[];
}

export interface GpuProgramOptions {
  /** Folder that external weight locations are relative to (the model folder). */
  externalDataDir?: string;
  gpu?: GpuContext;
  /**
   * Largest buffer bound to one kernel, in bytes (default: the adapter's maxStorageBufferBindingSize and
   * maxBufferSize). Weights above it are split by row blocks; tests lower it to exercise the split.
   */
  maxBindingBytes?: number;
  /** One dispatch per GEMM (planGraph's noGrouping: the reference the grouped GEMM dispatches are tested against). */
  noGrouping?: boolean;
  /** Storage buffers one kernel may bind (default: the adapter's maxStorageBuffersPerShaderStage); tests lower it. */
  maxStorageBuffers?: number;
}

export interface GpuProgramInfo {
  ep: 'gpu';
  dispatches: number;
  nodes: number;
  byKernel: Record<string, number>;
  /** GPU bytes allocated, by kind (weights, constants, feeds, state, outputs, temporaries). */
  bytes: Plan['bytes'];
  pipelines: number;
  feeds: string[];
  state: string[];
  fetch: string[];
  gpuResident: true;
}

const CHUNK = 1 << 24; // 16 MiB per file read / upload

export class GpuProgram {
  private gpuBufs = new Map<BufferSlot, GPUBuffer>();
  private passes: { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number, number] }[] = [];
  private staging?: GPUBuffer;
  private disposed = false;
  private initialized = false;
  steps = 0;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly spec: GpuProgramSpec,
    readonly plan: Plan,
    readonly info: GpuProgramInfo,
  ) {}

  static async create(spec: GpuProgramSpec, opts: GpuProgramOptions = {}): Promise<GpuProgram> {
    const g = spec.graph;
    for (const s of spec.state) {
      if (!g.inputs.some((v) => v.name === s.input)) throw new Error(`GpuProgram: state slot "${s.name}" names input "${s.input}", which the graph does not have.`);
      if (!g.outputs.some((o) => o.name === s.output)) throw new Error(`GpuProgram: state slot "${s.name}" names output "${s.output}", which the graph does not have.`);
    }
    const gpu = opts.gpu ?? await openGpu();
    const { limits } = gpu.report;
    const maxBinding = opts.maxBindingBytes ?? Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    const plan = planGraph(g, { outputs: [...spec.fetch, ...spec.state.map((s) => s.output)], state: spec.state.map((s) => s.input), maxBinding, gemm: gpu.report.gemm, maxStorageBuffers: opts.maxStorageBuffers ?? limits.maxStorageBuffersPerShaderStage, noGrouping: opts.noGrouping });
    const stateInputs = new Set(spec.state.map((s) => s.input));
    const info: GpuProgramInfo = {
      ep: 'gpu', dispatches: plan.dispatches.length, nodes: plan.nodes, byKernel: plan.byKernel, bytes: plan.bytes, pipelines: 0,
      feeds: [...plan.inputs.keys()].filter((n) => !stateInputs.has(n)),
      state: spec.state.map((s) => s.name), fetch: [...spec.fetch], gpuResident: true,
    };
    const p = new GpuProgram(gpu, spec, plan, info);
    await p.realise(opts.externalDataDir, maxBinding);
    return p;
  }

  private async realise(dir: string | undefined, limit: number): Promise<void> {
    const { device } = this.gpu;
    // weights were split into row blocks by the plan; an activation or state tensor this large is not split
    const big = this.plan.buffers.filter((b) => b.bytes > limit && b !== this.plan.paramsRef.buf); // (params: bound in slices)
    if (big.length) {
      throw new Error(`The GPU backend cannot bind ${big.map((b) => `${b.label} (${b.bytes} bytes)`).join(', ')}: this adapter binds at most ${limit} bytes per buffer. `
        + 'Weights are split into row blocks, activations are not: use a shorter sequence or a smaller batch.');
    }
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    for (const b of this.plan.buffers) {
      this.gpuBufs.set(b, device.createBuffer({ size: b.bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, label: b.label }));
    }
    for (const c of this.plan.consts) this.uploadConst(c.value, c.ref, dir, c.data);
    device.queue.writeBuffer(this.gpuBufs.get(this.plan.paramsRef.buf)!, 0, new Uint32Array(this.plan.paramsRef.numel).map((_, i) => this.plan.params[i] ?? 0));
    const pipelines = new Map<string, GPUComputePipeline>();
    for (const d of this.plan.dispatches) {
      let pipeline = pipelines.get(d.wgsl);
      if (!pipeline) {
        const module = device.createShaderModule({ code: d.wgsl, label: d.name });
        const info = await module.getCompilationInfo();
        const errs = info.messages.filter((m) => m.type === 'error');
        if (errs.length) throw new Error(`GPU kernel ${d.name} for ${d.node} does not compile: ${errs.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}\n${d.wgsl}`);
        pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: d.name });
        pipelines.set(d.wgsl, pipeline);
      }
      const bind = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: d.bindings.map((b, i) => ({
          binding: i,
          // kernels bind whole buffers (offsets are params), except their own slice of the params buffer
          resource: b.ref.buf === this.plan.paramsRef.buf
            ? { buffer: this.gpuBufs.get(b.ref.buf)!, offset: b.ref.offset * 4, size: b.ref.numel * 4 }
            : { buffer: this.gpuBufs.get(b.ref.buf)! },
        })),
      });
      this.passes.push({ pipeline, bind, groups: d.groups });
    }
    this.info.pipelines = pipelines.size;
    const oom = await device.popErrorScope();
    const bad = await device.popErrorScope();
    if (oom) throw new Error(`The GPU ran out of memory allocating the step's buffers (${Object.values(this.plan.bytes).reduce((a, b) => a + b, 0)} bytes): ${oom.message}`);
    if (bad) throw new Error(`GPU backend: the device refused the plan: ${bad.message}`);
  }

  /**
   * Uploads a constant in its stored type; external data is streamed from its file in chunks. `bytes`
   * (a node's own payload: NF4 codes) go up as they are.
   */
  private uploadConst(v: GpuProgramSpec['graph']['consts'][number], ref: Ref, dir: string | undefined, bytes?: OnnxTensorData): void {
    const q = this.gpu.device.queue;
    const d = bytes ?? v.constData!;
    // a split weight: part p holds stored bytes [p·E·b, (p+1)·E·b) of the tensor (b bytes per element)
    const per = ref.storage === 'f16' || ref.storage === 'bf16' ? 2 : 4;
    const pieces = ref.parts
      ? ref.parts.bufs.map((slot, p) => ({ buf: this.gpuBufs.get(slot)!, from: p * ref.parts!.elems * per, len: Math.min(ref.parts!.elems, ref.parts!.total - p * ref.parts!.elems) * per }))
      : [{ buf: this.gpuBufs.get(ref.buf)!, from: 0, len: Infinity }];
    if (d.kind === 'raw') {
      const all = bytes ? d.bytes : toStored(d.bytes, v.dtype);
      for (const pc of pieces) q.writeBuffer(pc.buf, 0, pad4(all.subarray(pc.from, pc.from + Math.min(pc.len, all.byteLength - pc.from))));
      return;
    }
    if (!bytes && v.dtype !== 'float32' && v.dtype !== 'float16') throw new Error(`GPU backend: external weight ${v.name} is ${v.dtype}; only float32/float16 files are read in place.`);
    if (!dir) throw new Error(`GPU backend: weight ${v.name} lives in ${d.location}; pass externalDataDir (the model folder).`);
    const fd = openSync(path.resolve(dir, d.location), 'r');
    try {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK, d.length + 4));
      for (const pc of pieces) {
        const len = Math.min(pc.len, d.length - pc.from);
        for (let at = 0; at < len; at += CHUNK) {
          const n = Math.min(CHUNK, len - at);
          const got = readSync(fd, chunk, 0, n, d.offset + pc.from + at);
          if (got !== n) throw new Error(`GPU backend: ${d.location} ended early reading weight ${v.name}.`);
          const m = Math.ceil(n / 4) * 4;
          chunk.fill(0, n, m);
          q.writeBuffer(pc.buf, at, chunk, 0, m);
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Sets every state slot (uploaded to its resident buffer). */
  async init(values: Record<string, HostTensor>): Promise<void> {
    this.check();
    const missing = this.spec.state.filter((s) => !(s.name in values)).map((s) => s.name);
    if (missing.length) throw new Error(`GpuProgram.init: no value for state slot(s) ${missing.join(', ')}.`);
    for (const s of this.spec.state) this.write(this.plan.inputs.get(s.input)!, values[s.name]!);
    this.initialized = true;
  }

  /** One run: feeds in, one command buffer, state advanced on the GPU, fetched outputs back. */
  async step(feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    this.check();
    if (!this.initialized && this.spec.state.length) throw new Error('GpuProgram.step: call init() with the starting state first.');
    const extra = Object.keys(feeds).filter((k) => !this.info.feeds.includes(k));
    if (extra.length) throw new Error(`GpuProgram.step: ${extra.join(', ')} are not per-step inputs (those are: ${this.info.feeds.join(', ') || 'none'}).`);
    const missing = this.info.feeds.filter((k) => !(k in feeds));
    if (missing.length) throw new Error(`GpuProgram.step: no value for input(s) ${missing.join(', ')}.`);
    for (const [k, t] of Object.entries(feeds)) this.write(this.plan.inputs.get(k)!, t);
    const { device } = this.gpu;
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (const p of this.passes) {
      pass.setPipeline(p.pipeline);
      pass.setBindGroup(0, p.bind);
      pass.dispatchWorkgroups(...p.groups);
    }
    pass.end();
    const fetched = this.spec.fetch.map((f) => this.plan.outputs.get(f)!);
    const layout = this.copyToStaging(enc, fetched.map((t) => t.ref));
    for (const s of this.spec.state) {
      const from = this.plan.outputs.get(s.output)!.ref, to = this.plan.inputs.get(s.input)!.ref;
      if (from.buf === to.buf && from.offset === to.offset) continue;
      enc.copyBufferToBuffer(this.gpuBufs.get(from.buf)!, from.offset * 4, this.gpuBufs.get(to.buf)!, 0, from.numel * 4);
    }
    device.queue.submit([enc.finish()]);
    const bad = await device.popErrorScope();
    if (bad) throw new Error(`GPU backend: the device refused the step: ${bad.message}`);
    const out = await this.readStaging(fetched, layout);
    this.steps++;
    return out;
  }

  /** Current state values (all slots, or the named ones), read back from the GPU. */
  async read(names?: string[]): Promise<Record<string, HostTensor>> {
    this.check();
    const want = names ?? this.info.state;
    const slots = want.map((n) => {
      const s = this.spec.state.find((x) => x.name === n);
      if (!s) throw new Error(`GpuProgram.read: no state slot "${n}" (slots: ${this.info.state.join(', ')}).`);
      return { n, t: this.plan.inputs.get(s.input)! };
    });
    const enc = this.gpu.device.createCommandEncoder();
    const layout = this.copyToStaging(enc, slots.map((s) => s.t.ref));
    this.gpu.device.queue.submit([enc.finish()]);
    const vals = await this.readStaging(slots.map((s) => s.t), layout);
    const res: Record<string, HostTensor> = {};
    slots.forEach((s) => { res[s.n] = vals[s.t.name]!; });
    return res;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.gpuBufs.values()) b.destroy();
    this.staging?.destroy();
    this.gpuBufs.clear();
  }

  // ---------- host <-> GPU ----------

  private write(t: PlannedTensor, h: HostTensor): void {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (h.data.length !== n) throw new Error(`GpuProgram: ${t.name} needs ${n} values ([${t.shape.join(', ')}]), got ${h.data.length}.`);
    const buf = this.gpuBufs.get(t.ref.buf)!;
    this.gpu.device.queue.writeBuffer(buf, t.ref.offset * 4, hostToStored(h, t));
  }

  private copyToStaging(enc: GPUCommandEncoder, refs: Ref[]): number[] {
    const offsets: number[] = [];
    let at = 0;
    for (const r of refs) {
      if (r.storage === 'f16' || r.storage === 'bf16') throw new Error('GpuProgram: packed weights cannot be read back.');
      offsets.push(at);
      at += r.numel * 4;
    }
    if (at === 0) return offsets;
    if (!this.staging || this.staging.size < at) {
      this.staging?.destroy();
      this.staging = this.gpu.device.createBuffer({ size: Math.ceil(at / 256) * 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'staging' });
    }
    refs.forEach((r, i) => enc.copyBufferToBuffer(this.gpuBufs.get(r.buf)!, r.offset * 4, this.staging!, offsets[i]!, r.numel * 4));
    return offsets;
  }

  private async readStaging(ts: PlannedTensor[], offsets: number[]): Promise<Record<string, HostTensor>> {
    const res: Record<string, HostTensor> = {};
    if (!ts.length) {
      await this.gpu.device.queue.onSubmittedWorkDone();
      return res;
    }
    const st = this.staging!;
    await st.mapAsync(GPUMapMode.READ);
    try {
      const all = st.getMappedRange();
      ts.forEach((t, i) => {
        const raw = new Uint8Array(all, offsets[i]!, t.ref.numel * 4).slice();
        res[t.name] = storedToHost(raw, t);
      });
    } finally {
      st.unmap();
    }
    return res;
  }

  private check(): void {
    if (this.disposed) throw new Error('GpuProgram: used after dispose().');
  }
}

/** Raw constant bytes in the IR type -> the bytes stored on the GPU (int64 -> int32, bool -> u32). */
function toStored(bytes: Uint8Array, dtype: string): Uint8Array {
  const c = bytes.slice();
  switch (dtype) {
    case 'int64': {
      const b = new BigInt64Array(c.buffer);
      return new Uint8Array(Int32Array.from(b, (x) => narrow(x)).buffer);
    }
    case 'bool': return new Uint8Array(Uint32Array.from(c).buffer);
    default: return c;
  }
}

function narrow(x: bigint): number {
  if (x > 2147483647n || x < -2147483648n) throw new Error(`GPU backend: int64 value ${x} does not fit the GPU's int32 indices.`);
  return Number(x);
}

function pad4(b: Uint8Array): Uint8Array {
  if (b.byteLength % 4 === 0) return b;
  const p = new Uint8Array(Math.ceil(b.byteLength / 4) * 4);
  p.set(b);
  return p;
}

/** A host tensor converted to the input's GPU storage. */
function hostToStored(h: HostTensor, t: PlannedTensor): Uint8Array {
  const d = h.data;
  switch (t.ref.storage) {
    case 'f32':
      return new Uint8Array(Float32Array.from(d as Float32Array).buffer);
    case 'f16r': {
      if (h.type !== 'float16') throw new Error(`GpuProgram: ${t.name} is float16, got ${h.type}.`);
      return new Uint8Array(Float32Array.from(d as Uint16Array, float16BitsToFloat32).buffer);
    }
    case 'i32':
      return new Uint8Array((d instanceof BigInt64Array ? Int32Array.from(d, narrow) : Int32Array.from(d as Int32Array)).buffer);
    case 'u32':
      return new Uint8Array(Uint32Array.from(d as Uint8Array, (x) => (x ? 1 : 0)).buffer);
    default:
      throw new Error(`GpuProgram: cannot feed ${t.name} stored as ${t.ref.storage}.`);
  }
}

/** Stored bytes -> a host tensor of the output's IR type. */
function storedToHost(raw: Uint8Array, t: PlannedTensor): HostTensor {
  const dims = [...t.shape];
  switch (t.dtype) {
    case 'float32': return { type: 'float32', dims, data: new Float32Array(raw.buffer) };
    case 'float16': return { type: 'float16', dims, data: Uint16Array.from(new Float32Array(raw.buffer), float32ToFloat16Bits) };
    case 'int32': return { type: 'int32', dims, data: new Int32Array(raw.buffer) };
    case 'int64': return { type: 'int64', dims, data: BigInt64Array.from(new Int32Array(raw.buffer), (x) => BigInt(x)) };
    case 'bool': return { type: 'bool', dims, data: Uint8Array.from(new Uint32Array(raw.buffer)) };
    default: throw new Error(`GpuProgram: cannot read back ${t.dtype}.`);
  }
}
