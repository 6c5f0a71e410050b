/**
 * A plain float64 JS forward pass driven by ModelConfig + WeightsLayout: an independent check that
 * the PyTorch fixtures and our config/layout reading agree (and a slow oracle for small tests).
 * N = B·T tokens; other letters as in src-main/engine/models/config.ts.
 */
import { ropeCosSin, type ModelConfig, type RopeParams } from '../../../../src-main/engine/models/config';
import type { LinearWeights, NormWeights, WeightsLayout } from '../../../../src-main/engine/models/layout';

type Arr = Float64Array;
export interface LoraInput {
  scale: number;
  /** A [r, in], B [out, r] for a module name (weight name without ".weight"). */
  get(module: string): { A: Float32Array; B: Float32Array; rank: number } | undefined;
}

function linear(x: Arr, N: number, inDim: number, outDim: number, w: LinearWeights, W: (n: string) => Float32Array, lora?: LoraInput): Arr {
  const Wt = W(w.weight);
  const y = new Float64Array(N * outDim);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      if (w.inOut) for (let i = 0; i < inDim; i++) s += x[n * inDim + i]! * Wt[i * outDim + o]!; // Conv1D [in, out]
      else for (let i = 0; i < inDim; i++) s += x[n * inDim + i]! * Wt[o * inDim + i]!; // Linear [out, in]
      y[n * outDim + o] = s;
    }
  }
  if (w.bias) {
    const b = W(w.bias);
    for (let n = 0; n < N; n++) for (let o = 0; o < outDim; o++) y[n * outDim + o]! += b[o]!;
  }
  const l = lora?.get(w.weight.replace(/\.weight$/, ''));
  if (l && lora) {
    const r = l.rank;
    for (let n = 0; n < N; n++) {
      const t = new Float64Array(r); // [r] = x[n] · Aᵀ
      for (let k = 0; k < r; k++) { let s = 0; for (let i = 0; i < inDim; i++) s += x[n * inDim + i]! * l.A[k * inDim + i]!; t[k] = s; }
      for (let o = 0; o < outDim; o++) { let s = 0; for (let k = 0; k < r; k++) s += t[k]! * l.B[o * r + k]!; y[n * outDim + o]! += lora.scale * s; }
    }
  }
  return y;
}

function norm(x: Arr, rows: number, dim: number, w: NormWeights, kind: 'rms' | 'layer', eps: number, W: (n: string) => Float32Array, unitOffset = false): Arr {
  const g = unitOffset ? W(w.weight).map((v) => 1 + v) : W(w.weight);
  const b = w.bias ? W(w.bias) : null;
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    if (kind === 'layer') { for (let i = 0; i < dim; i++) mean += x[r * dim + i]!; mean /= dim; }
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[r * dim + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i]! - mean) * inv * g[i]! + (b ? b[i]! : 0);
  }
  return y;
}

const silu = (x: number): number => x / (1 + Math.exp(-x));
const geluNew = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

export function referenceForward(
  cfg: ModelConfig, layout: WeightsLayout, W: (name: string) => Float32Array, ids: Int32Array, B: number, T: number, lora?: LoraInput,
): Float64Array {
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: F, vocabSize: V } = cfg;
  const N = B * T;
  const G = H / K;
  const emb = W(layout.embed);
  let h: Arr = new Float64Array(N * C); // [N, C]
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) h[n * C + c] = emb[ids[n]! * C + c]!;
  if (layout.positions) {
    const wpe = W(layout.positions);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) h[n * C + c]! += wpe[(n % T) * C + c]!;
  }
  for (let i = 0; i < h.length; i++) h[i]! *= cfg.embedScale;
  const nrm = (x: Arr, rows: number, dim: number, w: NormWeights): Arr => norm(x, rows, dim, w, cfg.norm, cfg.normEps, W, cfg.normUnitOffset);
  const tables = new Map<RopeParams, { cos: Float32Array; sin: Float32Array }>();
  const rope = (x: Arr, heads: number, params: RopeParams): void => { // x [N, heads·D], rotate-half over the rotary dims
    let tb = tables.get(params);
    if (!tb) tables.set(params, (tb = ropeCosSin(cfg, params, Array.from({ length: T }, (_, t) => t), T)));
    const R = params.rotaryDim ?? D;
    for (let n = 0; n < N; n++) {
      const t = n % T;
      for (let hh = 0; hh < heads; hh++) {
        const o = n * heads * D + hh * D;
        for (let i = 0; i < R / 2; i++) {
          const c = tb.cos[t * D + i]!, s = tb.sin[t * D + i]!;
          const x1 = x[o + i]!, x2 = x[o + i + R / 2]!;
          x[o + i] = x1 * c - x2 * s;
          x[o + i + R / 2] = x2 * c + x1 * s;
        }
      }
    }
  };
  const cap = (v: number, c: number | null): number => (c === null ? v : c * Math.tanh(v / c));
  const addResidual = (out: Arr, post: NormWeights | null): void => {
    const y = post ? nrm(out, N, C, post) : out;
    for (let i = 0; i < h.length; i++) h[i]! += y[i]! * cfg.residualScale;
  };
  for (let li = 0; li < cfg.numLayers; li++) {
    const L = layout.layers[li]!;
    const x = L.attnNorm ? nrm(h, N, C, L.attnNorm) : h;
    let q: Arr, k: Arr, v: Arr;
    if (L.qkv) {
      const QD = H * D, KD = K * D, W3 = QD + 2 * KD;
      const qkv = linear(x, N, C, W3, L.qkv, W, lora); // [N, (H + 2K)·D] = q | k | v
      q = new Float64Array(N * QD); k = new Float64Array(N * KD); v = new Float64Array(N * KD);
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < QD; c++) q[n * QD + c] = qkv[n * W3 + c]!;
        for (let c = 0; c < KD; c++) { k[n * KD + c] = qkv[n * W3 + QD + c]!; v[n * KD + c] = qkv[n * W3 + QD + KD + c]!; }
      }
    } else {
      q = linear(x, N, C, H * D, L.q!, W, lora);
      k = linear(x, N, C, K * D, L.k!, W, lora);
      v = linear(x, N, C, K * D, L.v!, W, lora);
    }
    const all = cfg.qkNormScope === 'all';
    if (L.qNorm) q = all ? nrm(q, N, H * D, L.qNorm) : nrm(q, N * H, D, L.qNorm);
    if (L.kNorm) k = all ? nrm(k, N, K * D, L.kNorm) : nrm(k, N * K, D, L.kNorm);
    const window = cfg.slidingWindow !== null && cfg.windowLayers[li] ? cfg.slidingWindow : Infinity;
    const params = cfg.localRope && window !== Infinity ? cfg.localRope : cfg.rope;
    if (cfg.ropeLayers[li] && params) { rope(q, H, params); rope(k, K, params); }
    const att = new Float64Array(N * H * D); // [N, H·D]
    for (let b = 0; b < B; b++) for (let hh = 0; hh < H; hh++) {
      const kh = Math.floor(hh / G); // repeat_kv: query head hh reads kv head hh / G
      for (let t = 0; t < T; t++) {
        const s0 = Math.max(0, t - window + 1);
        const sc = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let s = s0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[(b * T + t) * H * D + hh * D + i]! * k[(b * T + s) * K * D + kh * D + i]!;
          sc[s] = cap(d * cfg.attnScale, cfg.attnSoftcap);
          mx = Math.max(mx, sc[s]!);
        }
        let z = 0;
        for (let s = s0; s <= t; s++) { sc[s] = Math.exp(sc[s]! - mx); z += sc[s]!; }
        for (let i = 0; i < D; i++) {
          let o = 0;
          for (let s = s0; s <= t; s++) o += sc[s]! * v[(b * T + s) * K * D + kh * D + i]!;
          att[(b * T + t) * H * D + hh * D + i] = o / z;
        }
      }
    }
    addResidual(linear(att, N, H * D, C, L.o, W, lora), L.postAttnNorm);
    const x2 = L.mlpNorm ? nrm(h, N, C, L.mlpNorm) : h;
    let inner: Arr;
    if (L.gateUp) {
      const gu = linear(x2, N, C, 2 * F, L.gateUp, W, lora); // [N, 2F]: gate | up
      inner = new Float64Array(N * F);
      for (let n = 0; n < N; n++) for (let f = 0; f < F; f++) inner[n * F + f] = act(cfg, gu[n * 2 * F + f]!) * gu[n * 2 * F + F + f]!;
    } else if (L.gate) {
      const gate = linear(x2, N, C, F, L.gate, W, lora);
      inner = linear(x2, N, C, F, L.up!, W, lora);
      for (let i = 0; i < inner.length; i++) inner[i] = act(cfg, gate[i]!) * inner[i]!;
    } else {
      inner = linear(x2, N, C, F, L.up!, W, lora);
      for (let i = 0; i < inner.length; i++) inner[i] = act(cfg, inner[i]!);
    }
    addResidual(linear(inner, N, F, C, L.down, W, lora), L.postMlpNorm);
  }
  h = nrm(h, N, C, layout.finalNorm);
  const head = W(layout.lmHead ?? layout.embed); // [V, C]
  const logits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) for (let vv = 0; vv < V; vv++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += h[n * C + c]! * head[vv * C + c]!;
    logits[n * V + vv] = cap(s * cfg.logitScale, cfg.finalSoftcap);
  }
  return logits;
}

function act(cfg: ModelConfig, x: number): number {
  switch (cfg.activation) {
    case 'silu': return silu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh': return geluNew(x);
    default: return NaN;
  }
}

/** Mean cross-entropy over tokens whose mask is 1. logits [N, V]. */
export function maskedCrossEntropy(logits: ArrayLike<number>, labels: Int32Array, mask: Float32Array, V: number): number {
  let sum = 0;
  let count = 0;
  for (let n = 0; n < labels.length; n++) {
    if (mask[n] === 0) continue;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[n * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[n * V + v]! - mx);
    sum += (Math.log(z) + mx - logits[n * V + labels[n]!]!) * mask[n]!;
    count += mask[n]!;
  }
  return sum / count;
}
