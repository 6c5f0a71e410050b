/**
 * The KV-cache step graph on Lathe's GPU backend (engine/backends/webgpu): two programs planned from
 * graph.ts's step graph with fixed token counts, a decode program (Tc = 1) and, when the prefill chunk is
 * longer, a prefill program (Tc = chunk; shorter prompt pieces are padded: their rows are not copied into
 * the cache and their logits are not picked). The KV caches k{i}/v{i} [1, K, S, D] and the adapter `params`
 * are state slots resident on the GPU, owned by the decode program and borrowed by the prefill program (one
 * cache); a step reads the cache as it is, attends over [cache | its own new keys], and its n new rows per
 * kv head are copied into the cache in place on the GPU (the graph built with `gpu: true`); the model's weights are the device's shared uploads
 * (program.ts), so a trainer's step, validation and generation programs hold one copy. The host feeds the
 * small per-step inputs (ids, write/keep, masks, cos/sin, pick) and reads back one row of logits, or
 * (runSampled) picks the next token on the GPU from that row and reads back its id: 4 bytes.
 */
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import type { LoraLayout } from '../llm/lora';
import type { WeightSource } from '../llm/forward';
import type { HostTensor } from '../runtime/tensor';
import { GpuProgram, type RowCopy } from '../backends/webgpu/program';
import { openGpu } from '../backends/webgpu/device';
import { GpuTokenSampler, type GpuDraw } from '../backends/webgpu/sample';
import { buildStepGraph, type StepGraph } from './graph';

export class GpuStepPrograms {
  private sampler: GpuTokenSampler | null = null;
  private last: GpuProgram;
  /** Bytes read back from the GPU by the steps so far (logits rows, or 4 per GPU-sampled token). */
  readbackBytes = 0;

  private constructor(
    /** The graph whose feeds the host builds: the prefill graph (or the decode graph when chunk = 1). */
    readonly graph: StepGraph,
    private readonly decodeProg: GpuProgram,
    private readonly prefillProg: GpuProgram | null,
    readonly chunk: number,
    private readonly kv: { heads: number; capacity: number; dim: number },
  ) {
    this.last = decodeProg;
  }

  static async create(cfg: ModelConfig, layout: WeightsLayout, src: WeightSource, lora: LoraLayout | null, capacity: number, chunk: number): Promise<GpuStepPrograms> {
    const gsrc: WeightSource = { ...src, bf16InPlace: true };
    const spec = (g: StepGraph) => ({
      graph: g.graph, fetch: ['logits'], keep: g.cache.map((c) => `${c.input}_new`),
      state: [...g.cache.map((c) => ({ name: c.input, input: c.input, output: c.output })), ...(lora ? [{ name: 'params', input: 'params', output: 'params_out' }] : [])],
    });
    const dg = await buildStepGraph(cfg, layout, gsrc, lora, { chunk: 1, capacity, gpu: true });
    const decode = await GpuProgram.create(spec(dg), { externalDataDir: src.dir });
    let prefill: GpuProgram | null = null;
    try {
      const { numKvHeads: K, headDim: D } = cfg;
      await decode.init(Object.fromEntries([
        ...dg.cache.map((c) => [c.input, { type: 'float32', dims: [1, K, capacity, D], data: new Float32Array(K * capacity * D) } as HostTensor]),
        ...(lora ? [['params', { type: 'float32', dims: [lora.size], data: new Float32Array(lora.size) } as HostTensor]] : []),
      ]));
      const kv = { heads: K, capacity, dim: D };
      if (chunk === 1) return new GpuStepPrograms(dg, decode, null, 1, kv);
      const pg = await buildStepGraph(cfg, layout, gsrc, lora, { chunk, capacity, gpu: true });
      prefill = await GpuProgram.create(spec(pg), { externalDataDir: src.dir, shareStateWith: decode });
      return new GpuStepPrograms(pg, decode, prefill, chunk, kv);
    } catch (e) {
      await prefill?.dispose();
      await decode.dispose();
      throw e;
    }
  }

  /** Token rows a run of `n` new tokens is planned for (the host pads its feeds to this). */
  rowsFor(n: number): number {
    return n === 1 || !this.prefillProg ? 1 : this.chunk;
  }

  /** New adapter values: written once into the resident `params` slot (both programs read it). */
  async setParams(params: Float32Array): Promise<void> {
    await this.decodeProg.setState({ params: { type: 'float32', dims: [params.length], data: params } });
  }

  /**
   * One step over `n` tokens at positions [start, start + n) (feeds padded to rowsFor(n) rows); returns the
   * picked row's logits. The step's n new key/value rows per kv head are then copied into the cache rows on
   * the GPU (in the same command buffer): nothing else of the cache is touched.
   */
  async run(n: number, start: number, feeds: Record<string, HostTensor>): Promise<Float32Array> {
    const { prog, used, copies } = this.prepare(n, start, feeds);
    const logits = (await prog.step(used, copies))['logits']!.data as Float32Array;
    this.readbackBytes += logits.byteLength;
    return logits;
  }

  /** run() that reads nothing back (a prompt piece before the last: only its cache rows matter). */
  async advance(n: number, start: number, feeds: Record<string, HostTensor>): Promise<void> {
    const { prog, used, copies } = this.prepare(n, start, feeds);
    await prog.step(used, copies, { fetch: [] });
  }


  /**
   * Why the next token cannot be picked on the GPU (null when it can): the sampler reads the f32 logits row
   * in place.
   */
  get samplingBlocker(): string | null {
    const t = this.decodeProg.outputBuffer('logits');
    return t.storage === 'f32' ? null : `the logits are stored as ${t.storage}`;
  }

  /**
   * run() with the next token picked on the GPU (backends/webgpu/sample.ts) from the picked logits row:
   * 4 bytes come back, the token id, or GPU_SAMPLE_AMBIGUOUS / GPU_SAMPLE_NONFINITE, after which readLogits()
   * gives the row for the host to decide. `seen`: the host sampler's repetition-penalty ids.
   */
  async runSampled(n: number, start: number, feeds: Record<string, HostTensor>, draw: GpuDraw, seen: ReadonlySet<number>): Promise<number> {
    const { prog, used, copies } = this.prepare(n, start, feeds);
    const logits = prog.outputBuffer('logits');
    this.sampler ??= await GpuTokenSampler.create(await openGpu(), logits.numel, this.kv.capacity + 2);
    const sampler = this.sampler;
    sampler.sync(seen);
    await prog.step(used, copies, { fetch: [], encode: (enc) => sampler.encode(enc, logits, draw) });
    const id = await sampler.read();
    this.readbackBytes += 4;
    return id;
  }

  /** The logits row of the last run, read back now (after runSampled could not decide). */
  async readLogits(): Promise<Float32Array> {
    const logits = (await this.last.readOutputs(['logits']))['logits']!.data as Float32Array;
    this.readbackBytes += logits.byteLength;
    return logits;
  }

  private prepare(n: number, start: number, feeds: Record<string, HostTensor>): { prog: GpuProgram; used: Record<string, HostTensor>; copies: RowCopy[] } {
    const prog = n === 1 || !this.prefillProg ? this.decodeProg : this.prefillProg;
    const used: Record<string, HostTensor> = {};
    for (const k of prog.info.feeds) {
      if (!(k in feeds)) throw new Error(`GpuStepPrograms: no value for ${k}.`);
      used[k] = feeds[k]!;
    }
    const rows = this.rowsFor(n), { heads, capacity: S, dim: D } = this.kv;
    const copies = this.graph.cache.flatMap((c) => Array.from({ length: heads }, (_, h) => ({
      from: `${c.input}_new`, fromAt: h * rows * D, to: c.input, toAt: (h * S + start) * D, count: n * D,
    })));
    this.last = prog;
    return { prog, used, copies };
  }

  /** GPU dispatches per decode step and per prefill piece (for reports). */
  get dispatches(): { decode: number; prefill: number } {
    return { decode: this.decodeProg.info.dispatches, prefill: (this.prefillProg ?? this.decodeProg).info.dispatches };
  }

  async dispose(): Promise<void> {
    this.sampler?.dispose();
    this.sampler = null;
    await this.prefillProg?.dispose(); // (borrows the decode program's state)
    await this.decodeProg.dispose();
  }
}
