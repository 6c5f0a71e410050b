/// <reference types="@webgpu/types" />
/**
 * Next-token sampling on the GPU: one workgroup reads the picked logits row where the step left it and
 * writes one i32, so a generation step reads back 4 bytes instead of the V·4-byte logits row.
 *
 * It follows the host Sampler (engine/generate/sampling.ts) step for step: repetition penalty -> greedy
 * argmax, or temperature -> candidates within 40 nats of the best -> top-k -> top-p -> the token whose
 * cumulative mass (descending logit order) crosses u·sum, with u the host RNG's draw (Sampler.draw()).
 * Instead of sorting, each cut is found by bisection over the logits' order-preserving u32 keys (count or
 * mass of the tokens at or above a key): a small state machine asks one query (one pass over V, one
 * reduction) a round, 2 rounds when greedy and up to about 100 with top-k and top-p, all in one dispatch
 * (one query site keeps the shader small: lavapipe compiles barrier-heavy shaders slowly).
 *
 * The host works in float64, the GPU in float32 (and WGSL's exp is accurate to a few ulp per unit of its
 * argument), so the two can disagree only where a decision sits within rounding of its boundary: the draw
 * within its estimated float32 error (the terms' exp and argument rounding, the summation) of a cumulative edge, the top-p mass at its cut, two logits within 1e-6
 * relative of each other at a cut or next to the chosen token (their order may differ), exact ties at a cut.
 * There the kernel returns -1 instead of guessing, and the caller reads the logits row back and samples on
 * the host with the same draw; -2 means a NaN or +Inf logit (the host reads the row and reports it). So a
 * GPU-sampled token is always the token the host sampler picks.
 */
import type { GpuContext } from './device';

/** What one GPU pick needs: the sampling options and the host's uniform draw. */
export interface GpuDraw {
  greedy: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  /** The host RNG's draw in [0, 1) (ignored when greedy). */
  u: number;
}

/** The kernel's answers besides a token id. */
export const GPU_SAMPLE_AMBIGUOUS = -1;
export const GPU_SAMPLE_NONFINITE = -2;

const WG = 256;

export const SAMPLE_WGSL = /* wgsl */ `
struct Params {
  off: u32, V: u32, nSeen: u32, greedy: u32,
  topK: u32, temp: f32, pen: f32, topP: f32,
  u: f32, pad0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> seen: array<u32>;
@group(0) @binding(3) var<storage, read_write> lv: array<f32>;
@group(0) @binding(4) var<storage, read_write> outv: array<i32>;

const WG: u32 = ${WG}u;
const NONE: u32 = 0xffffffffu;

// one query's statistics about a threshold key t (see query())
struct Q {
  cge: u32, ceq: u32, below: u32, above: u32, idx: u32, bmax: u32, bidx: u32,
  mge: f32, mgt: f32, err: f32,
}
var<workgroup> w1: array<Q, ${WG}>;
var<workgroup> w2: array<Q, 16>;
var<workgroup> wbad: atomic<u32>;
var<workgroup> wdone: u32;

// order-preserving key of a float (-inf < ... < +inf as unsigned integers)
fn okey(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn unkey(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}
// two values whose order float32 and float64 arithmetic may disagree on
fn near(a: f32, b: f32) -> bool {
  return abs(a - b) <= 1e-6 * max(abs(a), abs(b));
}
// an estimate of how far float32 may put p = exp(x - m) from the host's float64 value, relative to p: the
// argument's rounding (x, m, x - m: an ulp each) and exp's own error (WGSL: 3 + 2|arg| ulp), doubled
fn termErr(x: f32, m: f32) -> f32 {
  let d = abs(x - m);
  return 1.2e-7 * (3.0 + 3.0 * d + abs(x) + abs(m));
}

fn combine(a: Q, b: Q) -> Q {
  var r = a;
  r.cge = a.cge + b.cge;
  r.ceq = a.ceq + b.ceq;
  r.below = max(a.below, b.below);
  r.above = min(a.above, b.above);
  r.idx = min(a.idx, b.idx);
  if (b.bidx != NONE && (a.bidx == NONE || b.bmax > a.bmax || (b.bmax == a.bmax && b.bidx < a.bidx))) { r.bmax = b.bmax; r.bidx = b.bidx; }
  r.mge = a.mge + b.mge;
  r.mgt = a.mgt + b.mgt;
  r.err = a.err + b.err;
  return r;
}

// Over all tokens (key k of the scaled logit l): how many have k >= t and k == t, the largest key below t
// (and >= lo2; 0 when none), the smallest above t (NONE), the lowest index with k == t, the argmax; and
// with p = exp(l - m) for the kept tokens (k >= tlo): their mass at or above t, above t, and its error.
// Reduced in a fixed order (16 partial sums of 16), so every thread gets the same bits.
fn query(lid: u32, t: u32, lo2: u32, tlo: u32, m: f32) -> Q {
  var q = Q(0u, 0u, 0u, NONE, NONE, 0u, NONE, 0.0, 0.0, 0.0);
  for (var i = lid; i < P.V; i += WG) {
    let l = lv[i];
    let k = okey(l);
    if (k >= t) { q.cge += 1u; }
    if (k == t) { q.ceq += 1u; q.idx = min(q.idx, i); }
    if (k < t && k >= lo2) { q.below = max(q.below, k); }
    if (k > t) { q.above = min(q.above, k); }
    if (q.bidx == NONE || k > q.bmax) { q.bmax = k; q.bidx = i; }
    if (k >= tlo) {
      let p = exp(l - m);
      if (k >= t) { q.mge += p; }
      if (k > t) { q.mgt += p; }
      q.err += p * termErr(l, m);
    }
  }
  workgroupBarrier();
  w1[lid] = q;
  workgroupBarrier();
  if (lid < 16u) {
    var r = w1[lid * 16u];
    for (var j = 1u; j < 16u; j++) { r = combine(r, w1[lid * 16u + j]); }
    w2[lid] = r;
  }
  workgroupBarrier();
  var r = w2[0];
  for (var j = 1u; j < 16u; j++) { r = combine(r, w2[j]); }
  return r;
}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  let V = P.V;
  if (lid == 0u) { atomicStore(&wbad, 0u); wdone = 0u; }
  workgroupBarrier();
  for (var i = lid; i < V; i += WG) {
    let x = logits[P.off + i];
    let b = bitcast<u32>(x);
    // NaN or +Inf (a masked column may be -Inf)
    if ((b & 0x7f800000u) == 0x7f800000u && ((b & 0x007fffffu) != 0u || (b & 0x80000000u) == 0u)) { atomicOr(&wbad, 1u); }
    lv[i] = x;
  }
  storageBarrier();
  // repetition penalty over the distinct seen ids (host: logit > 0 ? l / p : l * p)
  for (var j = lid; j < P.nSeen; j += WG) {
    let id = seen[j];
    if (id < V) { let x = lv[id]; lv[id] = select(x * P.pen, x / P.pen, x > 0.0); }
  }
  storageBarrier();
  if (P.greedy == 0u) {
    for (var i = lid; i < V; i += WG) { lv[i] = lv[i] / P.temp; }
  }
  storageBarrier();

  // a little state machine, the same in every thread: each round asks one query() and moves on
  var ph = 0u;                 // 0 argmax, 1 greedy check, 2 candidates, 3 top-k bisection, 4 its check,
                               // 5 kept mass, 6 top-p bisection, 7 its check, 8 kept mass, 9 draw bisection, 10 its check
  var t = 0u;
  var lo2 = 0u;
  var tlo = NONE;
  var m = 0.0;
  var K = 0u;
  var id = 0u;
  var amb = false;
  var kc = 0u;
  var kk = 0u;
  var blo = 0u;
  var bhi = 0u;
  var pS = 0.0;
  var tolP = 0.0;
  var goal = 0.0;
  var tolD = 0.0;
  var done = false;
  for (var round = 0u; round < 200u; round++) {
    let q = query(lid, t, lo2, tlo, m);
    switch ph {
      case 0u: {
        K = q.bmax;
        id = q.bidx;
        if (P.greedy != 0u) { ph = 1u; t = K; lo2 = 0u; }
        else {
          m = unkey(K);
          amb = K <= okey(-3.0e38);
          kc = okey(m - 40.0);
          ph = 2u; t = kc;
        }
      }
      case 1u: {
        // with a penalty, the best's order against the runner-up may differ in float64
        amb = P.pen != 1.0 && (q.ceq > 1u || (q.below != 0u && near(unkey(K), unkey(q.below))));
        done = true;
      }
      case 2u: {
        let nC = q.cge;
        kk = nC;
        if (P.topK > 0u && P.topK < V) { kk = min(P.topK, nC); }
        if (kk == nC) { tlo = kc; ph = 5u; t = 0u; }
        else { blo = kc; bhi = K + 1u; ph = 3u; t = blo + (bhi - blo) / 2u; }
      }
      case 3u: {
        // top-k: the largest key with at least kk candidates at or above it
        if (q.cge >= kk) { blo = t; } else { bhi = t; }
        if (bhi - blo <= 1u) { ph = 4u; t = blo; lo2 = kc; } else { t = blo + (bhi - blo) / 2u; }
      }
      case 4u: {
        if (q.cge > kk || (q.below >= kc && q.below != 0u && near(unkey(t), unkey(q.below)))) { amb = true; }
        tlo = t; ph = 5u; t = 0u;
      }
      case 5u, 8u: {
        let S = q.mge;
        let tol = 2.0 * q.err + 2e-6 * S;
        if (ph == 5u && P.topP < 1.0) {
          // top-p: the lowest key whose mass strictly above it is below p·S (that token crosses p: kept)
          pS = P.topP * S;
          tolP = tol;
          blo = tlo - 1u; bhi = K; ph = 6u; t = blo + (bhi - blo) / 2u;
        } else {
          // the draw: the largest key whose mass at or above it exceeds u·S
          goal = P.u * S;
          tolD = tol + 1.2e-7 * goal;
          if (!(S > goal)) { amb = true; }
          blo = tlo; bhi = K + 1u; ph = 9u; t = blo + (bhi - blo) / 2u;
        }
      }
      case 6u: {
        if (q.mgt < pS) { bhi = t; } else { blo = t; }
        if (bhi - blo <= 1u) { ph = 7u; lo2 = tlo; t = bhi; } else { t = blo + (bhi - blo) / 2u; }
      }
      case 7u: {
        if (pS - q.mgt < tolP || q.mge - pS < tolP || q.ceq > 1u || (q.below >= lo2 && q.below != 0u && near(unkey(t), unkey(q.below)))) { amb = true; }
        tlo = t; ph = 8u; t = 0u;
      }
      case 9u: {
        if (q.mge > goal) { blo = t; } else { bhi = t; }
        if (bhi - blo <= 1u) { ph = 10u; t = blo; lo2 = tlo; } else { t = blo + (bhi - blo) / 2u; }
      }
      default: {
        if (q.mge - goal < tolD || goal - q.mgt < tolD || q.ceq != 1u) { amb = true; }
        if (q.below >= lo2 && q.below != 0u && near(unkey(t), unkey(q.below))) { amb = true; }
        if (q.above != NONE && near(unkey(t), unkey(q.above))) { amb = true; }
        id = q.idx;
        done = true;
      }
    }
    if (lid == 0u && done) { wdone = 1u; }
    if (workgroupUniformLoad(&wdone) != 0u) { break; }
  }
  if (lid == 0u) {
    var r = i32(id);
    if (amb || !done) { r = -1; }
    if (atomicLoad(&wbad) != 0u) { r = -2; }
    outv[0] = r;
  }
}
`;

/**
 * The sampler's pipeline and buffers on one device: `encode` adds the pick to a step's command buffer (it
 * reads the logits row in place), `read` maps the 4-byte answer. The repetition penalty's ids live on the
 * GPU and grow by appends (sync()).
 */
export class GpuTokenSampler {
  private readonly pipeline: GPUComputePipeline;
  private readonly params: GPUBuffer;
  private readonly seen: GPUBuffer;
  private readonly lv: GPUBuffer;
  private readonly out: GPUBuffer;
  private readonly staging: GPUBuffer;
  private readonly binds = new Map<GPUBuffer, GPUBindGroup>();
  private written: number[] = [];
  private writtenSet = new Set<number>();
  private source: ReadonlySet<number> | null = null;
  /** Bytes read back by read() so far (4 a pick). */
  readbackBytes = 0;

  private constructor(private readonly gpu: GpuContext, readonly vocab: number, private readonly maxSeen: number, pipeline: GPUComputePipeline) {
    const { device } = gpu;
    this.pipeline = pipeline;
    const buf = (size: number, usage: number, label: string) => device.createBuffer({ size: Math.max(16, Math.ceil(size / 16) * 16), usage, label });
    const S = GPUBufferUsage.STORAGE;
    this.params = buf(48, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, 'sample params');
    this.seen = buf(maxSeen * 4, S | GPUBufferUsage.COPY_DST, 'sample seen ids');
    this.lv = buf(vocab * 4, S, 'sample logits');
    this.out = buf(4, S | GPUBufferUsage.COPY_SRC, 'sample out');
    this.staging = buf(4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 'sample staging');
  }

  /** The sampler for rows of `vocab` logits and up to `maxSeen` repetition-penalty ids; throws if the device refuses it. */
  static async create(gpu: GpuContext, vocab: number, maxSeen: number): Promise<GpuTokenSampler> {
    const { device } = gpu;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: SAMPLE_WGSL, label: 'sample' });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: 'sample' });
    const bad = await device.popErrorScope();
    if (bad) throw new Error(`GPU backend: the device refused the sampling kernel: ${bad.message}`);
    return new GpuTokenSampler(gpu, vocab, maxSeen, pipeline);
  }

  /**
   * Makes the GPU's penalty ids those of `ids` (the host Sampler's seenIds): a new set starts over, the
   * same set growing appends only its new ids.
   */
  sync(ids: ReadonlySet<number>): void {
    if (ids !== this.source || ids.size < this.written.length) {
      this.source = ids;
      this.written = [];
      this.writtenSet = new Set();
    }
    const from = this.written.length;
    for (const id of ids) {
      if (this.writtenSet.has(id)) continue;
      this.writtenSet.add(id);
      this.written.push(id);
    }
    if (this.written.length > this.maxSeen) throw new Error(`GpuTokenSampler: ${this.written.length} penalty ids, room for ${this.maxSeen}.`);
    if (this.written.length > from) this.gpu.device.queue.writeBuffer(this.seen, from * 4, Uint32Array.from(this.written.slice(from)));
  }

  /** Encodes one pick over `count` = vocab logits at element `offset` of `logits` (f32). */
  encode(enc: GPUCommandEncoder, logits: { buffer: GPUBuffer; offset: number }, d: GpuDraw): void {
    const p = new ArrayBuffer(48), u32 = new Uint32Array(p), f32 = new Float32Array(p);
    u32[0] = logits.offset; u32[1] = this.vocab; u32[2] = d.repetitionPenalty === 1 ? 0 : this.written.length; u32[3] = d.greedy ? 1 : 0;
    u32[4] = d.topK; f32[5] = d.temperature; f32[6] = d.repetitionPenalty; f32[7] = d.topP; f32[8] = d.u;
    this.gpu.device.queue.writeBuffer(this.params, 0, p);
    let bind = this.binds.get(logits.buffer);
    if (!bind) {
      bind = this.gpu.device.createBindGroup({
        layout: this.pipeline.getBindGroupLayout(0),
        entries: [logits.buffer, this.params, this.seen, this.lv, this.out].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      this.binds.set(logits.buffer, bind);
    }
    const pass = enc.beginComputePass({ label: 'sample' });
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(this.out, 0, this.staging, 0, 4);
  }

  /** The answer of the last encoded pick (after its command buffer was submitted): an id, or GPU_SAMPLE_*. */
  async read(): Promise<number> {
    await this.staging.mapAsync(GPUMapMode.READ);
    try {
      this.readbackBytes += 4;
      return new Int32Array(this.staging.getMappedRange(0, 4))[0]!;
    } finally {
      this.staging.unmap();
    }
  }

  dispose(): void {
    for (const b of [this.params, this.seen, this.lv, this.out, this.staging]) b.destroy();
    this.binds.clear();
  }
}
