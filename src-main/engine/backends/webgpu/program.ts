/// <reference types="@webgpu/types" />
/**
 * A compiled GPU program: the plan (plan.ts) realised on the Dawn device. Every buffer of the plan is
 * created once; weights and constants are uploaded once, in their stored type (f32, f16 packed two per
 * word; an external weight is read from its file straight into the GPU buffer in chunks, never turned
 * into a host f32 copy); pipelines and bind groups are built once.
 *
 * A run writes the per-run feeds, encodes every dispatch into ONE compute pass of ONE command buffer,
 * copies state outputs onto the state inputs (state stays on the GPU) and the fetched outputs into a
 * staging buffer, submits, and maps only the staging buffer. Same contract as backends/onnx/program.ts's
 * Program (init / step / read / dispose), so the trainer can hold either.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { GraphBuilder } from '../../graph/graph';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../onnx/pack';
import type { HostTensor, StateSlot } from '../../runtime/tensor';
import type { OnnxTensorData } from '../../onnx/spec';
import { openGpu, type GpuContext } from './device';
import { planGraph, type Plan, type PlannedTensor } from './plan';
import { elementBytes, type BufferSlot, type Ref } from './wgsl';

export interface GpuProgramSpec {
  graph: GraphBuilder;
  state: StateSlot[];
  /** Outputs read back after each step (small: loss, grad norm...). */
  fetch: string[];
  /**
   * Per-step inputs kept in host memory (the paged optimizer's m and v, memory/paged.ts): written into a
   * mappable upload buffer, copied into a pool buffer just before their first reader (plan.ts `late`).
   */
  hostInputs?: string[];
  /** Outputs computed and kept on the GPU (not read back): sources of `step`'s row copies. */
  keep?: string[];
}

/** After a run, `count` elements of output `from` (from element `fromAt`) copied into state slot `to` at element `toAt`, on the GPU. */
export interface RowCopy { from: string; fromAt: number; to: string; toAt: number; count: number }

/** Per-run extras of GpuProgram.step. */
export interface StepExtra {
  /** Outputs read back this run instead of the spec's `fetch` (planned outputs only). */
  fetch?: string[];
  /** Encodes more work into the step's command buffer after the program's dispatches and copies. */
  encode?: (enc: GPUCommandEncoder) => void;
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
  /**
   * Another program on the same device whose state buffers this one uses for its state slots of the same
   * input name (the generator's prefill and decode programs share one KV cache). Sizes must match; the
   * other program owns them (dispose it last).
   */
  shareStateWith?: GpuProgram;
  /** Store f16 activations as array<f16> (default: where the device has shader-f16); false = the f16r emulation. */
  shaderF16?: boolean;
  /** bf16 compute: the graph's float16 values are bfloat16 (PlanOptions.halfType). */
  halfType?: 'float16' | 'bfloat16';
  /** Plan without fusion (one dispatch per op, every Concat copies): the reference the fused plan is tested against. */
  noFusion?: boolean;
  /**
   * Called with the plan's bytes by kind and the adapter's report after planning, before any buffer is
   * created or weight read: may throw to refuse the program (the trainer's memory check, memory/oom.ts).
   */
  checkPlan?: (bytes: Plan['bytes'], report: GpuContext['report']) => void;
  /** One dispatch per GEMM (planGraph's noGrouping: the reference the grouped GEMM dispatches are tested against). */
  noGrouping?: boolean;
  /** Grouped GEMM dispatches (planGraph's `grouping`: on unless false or `noGrouping`). */
  grouping?: boolean;
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
  /** Weight bytes this program found already on the GPU (uploaded by another program: shared, not copied). */
  sharedWeightBytes: number;
}

/**
 * Weights read from a file are uploaded once per device and shared by every program that reads them (the
 * trainer's step, its evaluation and generation programs): keyed by file, byte range, stored type and
 * row-block split; each buffer is destroyed when its last program is disposed.
 */
interface SharedWeight { bufs: GPUBuffer[]; bytes: number; users: number }
const weightCache = new WeakMap<GPUDevice, Map<string, SharedWeight>>();

/** The weights resident on this device now: distinct uploads and their bytes (tests assert one upload). */
export function gpuWeightCache(gpu: GpuContext): { weights: number; buffers: number; bytes: number } {
  const m = weightCache.get(gpu.device);
  let buffers = 0, bytes = 0;
  for (const w of m?.values() ?? []) { buffers += w.bufs.length; bytes += w.bytes; }
  return { weights: m?.size ?? 0, buffers, bytes };
}

const CHUNK = 1 << 24; // 16 MiB per file read / upload

export class GpuProgram {
  private gpuBufs = new Map<BufferSlot, GPUBuffer>();
  private passes: { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number, number] }[] = [];
  private staging?: GPUBuffer;
  /** Buffers this program does not own: shared weights (key) and another program's state. */
  private borrowed = new Set<BufferSlot>();
  private sharedKeys: string[] = [];
  /** Upload buffers (MAP_WRITE | COPY_SRC: host-visible memory) of the host-kept inputs. */
  private uploads = new Map<string, GPUBuffer>();
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
    const plan = planGraph(g, { outputs: [...new Set([...spec.fetch, ...(spec.keep ?? []), ...spec.state.map((s) => s.output)])], state: spec.state.map((s) => s.input), maxBinding, gemm: gpu.report.gemm, shaderF16: opts.shaderF16 ?? gpu.report.features.includes('shader-f16'), ...(opts.halfType ? { halfType: opts.halfType } : {}), ...(spec.hostInputs ? { late: spec.hostInputs } : {}), ...(opts.noFusion ? { noFusion: true } : {}), maxStorageBuffers: opts.maxStorageBuffers ?? limits.maxStorageBuffersPerShaderStage, noGrouping: opts.noGrouping, grouping: opts.grouping });
    const stateInputs = new Set(spec.state.map((s) => s.input));
    // a state output computed in place over a state input (AdamWStep) must be that input's own slot's output:
    // otherwise the end-of-step copies would read a buffer another slot's copy has already overwritten
    for (const s of spec.state) {
      const buf = plan.outputs.get(s.output)!.ref.buf;
      const other = spec.state.find((x) => x !== s && plan.inputs.get(x.input)?.ref.buf === buf);
      if (other) throw new Error(`GpuProgram: state output "${s.output}" is computed in place over state input "${other.input}" (slot "${other.name}"), not its own slot's input "${s.input}".`);
    }
    const info: GpuProgramInfo = {
      ep: 'gpu', dispatches: plan.dispatches.length, nodes: plan.nodes, byKernel: plan.byKernel, bytes: plan.bytes, pipelines: 0,
      feeds: [...plan.inputs.keys()].filter((n) => !stateInputs.has(n)),
      state: spec.state.map((s) => s.name), fetch: [...spec.fetch], gpuResident: true, sharedWeightBytes: 0,
    };
    opts.checkPlan?.(plan.bytes, gpu.report);
    const p = new GpuProgram(gpu, spec, plan, info);
    try {
      await p.realise(opts.externalDataDir, maxBinding, opts.shareStateWith);
    } catch (e) {
      await p.dispose(); // (releases the shared weights it registered or borrowed)
      throw e;
    }
    return p;
  }

  private async realise(dir: string | undefined, limit: number, other?: GpuProgram): Promise<void> {
    const { device } = this.gpu;
    // weights were split into row blocks by the plan; an activation or state tensor this large is not split
    const big = this.plan.buffers.filter((b) => b.bytes > limit && b !== this.plan.paramsRef.buf); // (params: bound in slices)
    if (big.length) {
      throw new Error(`The GPU backend cannot bind ${big.map((b) => `${b.label} (${b.bytes} bytes)`).join(', ')}: this adapter binds at most ${limit} bytes per buffer. `
        + 'Weights are split into row blocks, activations are not: use a shorter sequence or a smaller batch.');
    }
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    if (other) this.borrowState(other);
    let cache = weightCache.get(device);
    if (!cache) weightCache.set(device, cache = new Map());
    const toUpload: typeof this.plan.consts = [];
    const fresh: { key: string; slots: BufferSlot[] }[] = [];
    // a buffer holding several constants (a packed NF4 weight, plan.ts: its pieces at word offsets) is cached under
    // the key of the piece at offset 0 with the others' keys (an in-graph piece, scale2, offset, the dynamic map:
    // by its bytes' digest, so the file-read codes stay shared); the pieces of a buffer taken from the cache are not
    // uploaded again
    const pieces = new Map<BufferSlot, typeof this.plan.consts>();
    for (const c of this.plan.consts) if (!c.ref.parts) pieces.set(c.ref.buf, [...(pieces.get(c.ref.buf) ?? []), c]);
    const keyOf = (c: (typeof this.plan.consts)[number]): string | null => {
      const all = pieces.get(c.ref.buf);
      if (!all || all.length === 1) return weightKey(c, dir);
      if (c.ref.offset !== 0) return null;
      const keys = [...all].sort((a, b) => a.ref.offset - b.ref.offset).map((x) => weightKey(x, dir) ?? rawKey(x));
      return keys.every((x) => x !== null) ? `${keys.join('&')}|${c.ref.buf.bytes}` : null;
    };
    const cachedSlots = new Set<BufferSlot>();
    for (const c of this.plan.consts) {
      if (cachedSlots.has(c.ref.buf)) continue;
      const key = keyOf(c);
      const slots = c.ref.parts ? c.ref.parts.bufs : [c.ref.buf];
      const hit = key ? cache.get(key) : undefined;
      if (hit && hit.bufs.length === slots.length) {
        slots.forEach((sl, i) => { this.gpuBufs.set(sl, hit.bufs[i]!); this.borrowed.add(sl); });
        hit.users++;
        this.sharedKeys.push(key!);
        this.info.sharedWeightBytes += hit.bytes;
        cachedSlots.add(c.ref.buf);
        continue;
      }
      toUpload.push(c);
      if (key && !fresh.some((f) => f.key === key)) fresh.push({ key, slots });
    }
    for (const b of this.plan.buffers) {
      if (this.gpuBufs.has(b)) continue;
      this.gpuBufs.set(b, device.createBuffer({ size: b.bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, label: b.label }));
    }
    for (const { name } of this.plan.late ?? []) {
      const t = this.plan.inputs.get(name)!;
      this.uploads.set(name, device.createBuffer({ size: t.ref.numel * 4, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, label: `${name} (host upload)` }));
    }
    for (const c of toUpload) if (!cachedSlots.has(c.ref.buf)) this.uploadConst(c.value, c.ref, dir, c.data);
    for (const f of fresh) {
      cache.set(f.key, { bufs: f.slots.map((sl) => this.gpuBufs.get(sl)!), bytes: f.slots.reduce((a, sl) => a + sl.bytes, 0), users: 1 });
      f.slots.forEach((sl) => this.borrowed.add(sl));
      this.sharedKeys.push(f.key);
    }
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
    // (a piece of a buffer holding several constants, a packed NF4 weight: at its offset; 4-byte elements)
    const at0 = ref.parts ? 0 : ref.offset * 4;
    if (d.kind === 'raw') {
      const all = bytes ? d.bytes : toStored(d.bytes, v.dtype);
      for (const pc of pieces) q.writeBuffer(pc.buf, at0, pad4(all.subarray(pc.from, pc.from + Math.min(pc.len, all.byteLength - pc.from))));
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
          q.writeBuffer(pc.buf, at0 + at, chunk, 0, m);
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

  /** Overwrites the named state slots (e.g. new adapter values), leaving the others as they are. */
  async setState(values: Record<string, HostTensor>): Promise<void> {
    this.check();
    for (const [name, v] of Object.entries(values)) {
      const s = this.spec.state.find((x) => x.name === name);
      if (!s) throw new Error(`GpuProgram.setState: no state slot "${name}" (slots: ${this.info.state.join(', ')}).`);
      this.write(this.plan.inputs.get(s.input)!, v);
    }
  }

  /**
   * One run: feeds in, one command buffer, state advanced on the GPU, fetched outputs back. `more.fetch`
   * replaces the spec's fetch list for this run (any planned output; [] reads nothing back), and
   * `more.encode` adds work at the end of the same command buffer (the GPU sampler reading `logits`).
   */
  async step(feeds: Record<string, HostTensor>, copies: RowCopy[] = [], more: StepExtra = {}): Promise<Record<string, HostTensor>> {
    this.check();
    if (!this.initialized && this.spec.state.length) throw new Error('GpuProgram.step: call init() with the starting state first.');
    const extra = Object.keys(feeds).filter((k) => !this.info.feeds.includes(k));
    if (extra.length) throw new Error(`GpuProgram.step: ${extra.join(', ')} are not per-step inputs (those are: ${this.info.feeds.join(', ') || 'none'}).`);
    const missing = this.info.feeds.filter((k) => !(k in feeds));
    if (missing.length) throw new Error(`GpuProgram.step: no value for input(s) ${missing.join(', ')}.`);
    for (const [k, t] of Object.entries(feeds)) {
      const up = this.uploads.get(k);
      if (!up) { this.write(this.plan.inputs.get(k)!, t); continue; }
      const pt = this.plan.inputs.get(k)!;
      if (t.data.length !== pt.ref.numel) throw new Error(`GpuProgram: ${k} needs ${pt.ref.numel} values, got ${t.data.length}.`);
      await up.mapAsync(GPUMapMode.WRITE);
      new Uint8Array(up.getMappedRange()).set(hostToStored(t, pt));
      up.unmap();
    }
    const { device } = this.gpu;
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder();
    let pass = enc.beginComputePass();
    let at = 0;
    for (const p of this.passes) {
      pass = this.copyHostInputs(enc, pass, at++);
      pass.setPipeline(p.pipeline);
      pass.setBindGroup(0, p.bind);
      pass.dispatchWorkgroups(...p.groups);
    }
    pass.end();
    const fetched = (more.fetch ?? this.spec.fetch).map((f) => this.output(f));
    const layout = this.copyToStaging(enc, fetched.map((t) => t.ref));
    for (const s of this.spec.state) {
      const from = this.plan.outputs.get(s.output)!.ref, to = this.plan.inputs.get(s.input)!.ref;
      if (from.buf === to.buf && from.offset === to.offset) continue;
      if (from.storage !== to.storage) throw new Error(`GpuProgram: state ${s.name} is computed as ${from.storage} but stored as ${to.storage}.`);
      enc.copyBufferToBuffer(this.gpuBufs.get(from.buf)!, from.offset * 4, this.gpuBufs.get(to.buf)!, 0, from.numel * 4);
    }
    for (const c of copies) {
      const from = this.plan.outputs.get(c.from)?.ref, slot = this.spec.state.find((s) => s.name === c.to);
      const to = slot ? this.plan.inputs.get(slot.input)?.ref : undefined;
      if (!from || !to) throw new Error(`GpuProgram.step: cannot copy ${c.from} -> ${c.to} (a kept output and a state slot are needed).`);
      if (c.fromAt + c.count > from.numel || c.toAt + c.count > to.numel || c.count < 0) throw new Error(`GpuProgram.step: copy ${c.from} -> ${c.to} out of range.`);
      if (c.count) enc.copyBufferToBuffer(this.gpuBufs.get(from.buf)!, (from.offset + c.fromAt) * 4, this.gpuBufs.get(to.buf)!, (to.offset + c.toAt) * 4, c.count * 4);
    }
    more.encode?.(enc);
    device.queue.submit([enc.finish()]);
    const bad = await device.popErrorScope();
    if (bad) throw new Error(`GPU backend: the device refused the step: ${bad.message}`);
    const out = await this.readStaging(fetched, layout);
    this.steps++;
    return out;
  }

  /**
   * A planned output's GPU buffer as the last step left it (valid until the next step): its element
   * offset, length and storage. For work encoded after the step (StepExtra.encode) that reads it in place.
   */
  outputBuffer(name: string): { buffer: GPUBuffer; offset: number; numel: number; storage: string } {
    this.check();
    const r = this.output(name).ref;
    return { buffer: this.gpuBufs.get(r.buf)!, offset: r.offset, numel: r.numel, storage: r.storage };
  }

  /** Planned outputs (fetched or kept) as the last step left them, read back now. */
  async readOutputs(names: string[]): Promise<Record<string, HostTensor>> {
    this.check();
    const ts = names.map((n) => this.output(n));
    const enc = this.gpu.device.createCommandEncoder();
    const layout = this.copyToStaging(enc, ts.map((t) => t.ref));
    this.gpu.device.queue.submit([enc.finish()]);
    return this.readStaging(ts, layout);
  }

  private output(name: string): PlannedTensor {
    const t = this.plan.outputs.get(name);
    if (!t) throw new Error(`GpuProgram: "${name}" is not a planned output (those are: ${[...this.plan.outputs.keys()].join(', ')}).`);
    return t;
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
    for (const [slot, b] of this.gpuBufs) if (!this.borrowed.has(slot)) b.destroy();
    const cache = weightCache.get(this.gpu.device);
    for (const k of this.sharedKeys) {
      const w = cache?.get(k);
      if (!w || --w.users > 0) continue;
      for (const b of w.bufs) b.destroy();
      cache!.delete(k);
    }
    for (const b of this.uploads.values()) b.destroy();
    this.staging?.destroy();
    this.gpuBufs.clear();
  }

  /** State inputs take `other`'s buffers for the slots both have (same input name and size). */
  private borrowState(other: GpuProgram): void {
    if (other.gpu.device !== this.gpu.device) throw new Error('GpuProgram: shareStateWith needs a program on the same device.');
    for (const s of this.spec.state) {
      const mine = this.plan.inputs.get(s.input), theirs = other.plan.inputs.get(s.input);
      if (!mine || !theirs || theirs.ref.buf.kind !== 'state') continue;
      if (mine.ref.buf.bytes !== theirs.ref.buf.bytes) throw new Error(`GpuProgram: state ${s.input} has ${mine.ref.buf.bytes} bytes here and ${theirs.ref.buf.bytes} in the program it shares with.`);
      this.gpuBufs.set(mine.ref.buf, other.gpuBufs.get(theirs.ref.buf)!);
      this.borrowed.add(mine.ref.buf);
    }
    this.initialized = true; // (the owner's init() set the shared state)
  }

  // ---------- host <-> GPU ----------

  /**
   * Host-kept inputs whose first reader is dispatch `at`: the compute pass ends, their upload buffers are
   * copied into their pool buffers, and a new pass goes on (returned; `pass` itself when there is none).
   */
  private copyHostInputs(enc: GPUCommandEncoder, pass: GPUComputePassEncoder, at: number): GPUComputePassEncoder {
    const here = (this.plan.late ?? []).filter((l) => l.at === at);
    if (!here.length) return pass;
    pass.end();
    for (const l of here) {
      const ref = this.plan.inputs.get(l.name)!.ref;
      enc.copyBufferToBuffer(this.uploads.get(l.name)!, 0, this.gpuBufs.get(ref.buf)!, ref.offset * 4, ref.numel * 4);
    }
    return enc.beginComputePass();
  }

  private write(t: PlannedTensor, h: HostTensor): void {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (h.data.length !== n) throw new Error(`GpuProgram: ${t.name} needs ${n} values ([${t.shape.join(', ')}]), got ${h.data.length}.`);
    const buf = this.gpuBufs.get(t.ref.buf)!;
    this.gpu.device.queue.writeBuffer(buf, t.ref.offset * 4, hostToStored(h, t));
  }

  private copyToStaging(enc: GPUCommandEncoder, refs: Ref[]): number[] {
    const offsets: number[] = [];
    let at = 0;
    // (a 16-bit tensor may start or end mid-word: its 4-byte-aligned range is copied, `offsets` give its first element)
    const ranges: [number, number][] = [];
    for (const r of refs) {
      if (r.storage === 'f16' || r.storage === 'bf16') throw new Error('GpuProgram: packed weights cannot be read back.');
      const eb = elementBytes(r.storage), from = r.offset * eb;
      const a0 = Math.floor(from / 4) * 4, a1 = Math.ceil((from + r.numel * eb) / 4) * 4;
      ranges.push([a0, a1 - a0]);
      offsets.push(at + from - a0);
      at += a1 - a0;
    }
    if (at === 0) return offsets;
    if (!this.staging || this.staging.size < at) {
      this.staging?.destroy();
      this.staging = this.gpu.device.createBuffer({ size: Math.ceil(at / 256) * 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'staging' });
    }
    let to = 0;
    refs.forEach((r, i) => {
      enc.copyBufferToBuffer(this.gpuBufs.get(r.buf)!, ranges[i]![0], this.staging!, to, ranges[i]![1]);
      to += ranges[i]![1];
    });
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
        const raw = new Uint8Array(all, offsets[i]!, t.ref.numel * elementBytes(t.ref.storage)).slice();
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

/** The weight cache key of a constant read from a file (null: an in-graph constant, uploaded per program). */
function weightKey(c: { value: { constData?: OnnxTensorData | undefined }; ref: Ref; data?: OnnxTensorData }, dir: string | undefined): string | null {
  const d = c.data ?? c.value.constData; // (a node's payload: NF4 codes in the weight cache's files)
  if (!d || d.kind === 'raw' || !dir) return null;
  return [c.data ? 'payload' : 'value', path.resolve(dir, d.location), d.offset, d.length, c.ref.storage, c.ref.numel, c.ref.parts?.elems ?? 0].join('|');
}

/** The key of an in-graph constant's bytes (a piece of a packed NF4 weight): their digest and where it lies. */
function rawKey(c: { value: { constData?: OnnxTensorData | undefined }; ref: Ref; data?: OnnxTensorData }): string | null {
  const d = c.data ?? c.value.constData;
  if (!d || d.kind !== 'raw') return null;
  return ['raw', createHash('sha256').update(d.bytes).digest('hex'), c.ref.offset, c.ref.numel, c.ref.storage].join('|');
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

function pad4(b: Uint8Array): Uint8Array<ArrayBuffer> {
  if (b.byteLength % 4 === 0 && b.buffer instanceof ArrayBuffer) return b as Uint8Array<ArrayBuffer>;
  const p = new Uint8Array(Math.ceil(b.byteLength / 4) * 4);
  p.set(b);
  return p;
}

/** A host tensor converted to the input's GPU storage. */
function hostToStored(h: HostTensor, t: PlannedTensor): Uint8Array<ArrayBuffer> {
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
  if (t.ref.storage === 'hb16') {
    // bf16 bits in 16-bit slots: the upper halves of f32 words
    const f = Float32Array.from(new Uint16Array(raw.buffer), (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);
    if (t.dtype === 'float32') return { type: 'float32', dims, data: f };
    if (t.dtype === 'float16') return { type: 'float16', dims, data: Uint16Array.from(f, float32ToFloat16Bits) };
  }
  if (t.ref.storage === 'h16') {
    // f16 values (an f16 tensor, or an f32 view of one: a Cast that cost nothing)
    const bits = new Uint16Array(raw.buffer);
    if (t.dtype === 'float16') return { type: 'float16', dims, data: bits };
    if (t.dtype === 'float32') return { type: 'float32', dims, data: Float32Array.from(bits, float16BitsToFloat32) };
  }
  switch (t.dtype) {
    case 'float32': return { type: 'float32', dims, data: new Float32Array(raw.buffer) };
    case 'float16': return { type: 'float16', dims, data: Uint16Array.from(new Float32Array(raw.buffer), float32ToFloat16Bits) };
    case 'int32': return { type: 'int32', dims, data: new Int32Array(raw.buffer) };
    case 'int64': return { type: 'int64', dims, data: BigInt64Array.from(new Int32Array(raw.buffer), (x) => BigInt(x)) };
    case 'bool': return { type: 'bool', dims, data: Uint8Array.from(new Uint32Array(raw.buffer)) };
    default: throw new Error(`GpuProgram: cannot read back ${t.dtype}.`);
  }
}
