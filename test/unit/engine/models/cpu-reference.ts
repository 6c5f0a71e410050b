/**
 * A plain float64 JS forward pass driven by ModelConfig + WeightsLayout: an independent check that
 * the PyTorch fixtures and our config/layout reading agree (and a slow oracle for small tests).
 * N = B·T tokens; other letters as in src-main/engine/models/config.ts.
 */
import { ropeInvFreq, type ModelConfig } from '../../../../src-main/engine/models/config';
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

function norm(x: Arr, rows: number, dim: number, w: NormWeights, kind: 'rms' | 'layer', eps: number, W: (n: string) => Float32Array): Arr {
  const g = W(w.weight);
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
  const inv = cfg.rope ? ropeInvFreq(cfg) : null;
  const rope = (x: Arr, heads: number): void => { // x [N, heads·D], rotate-half
    for (let n = 0; n < N; n++) {
      const t = n % T;
      for (let hh = 0; hh < heads; hh++) {
        const o = n * heads * D + hh * D;
        for (let i = 0; i < D / 2; i++) {
          const a = t * inv![i]!;
          const c = Math.cos(a), s = Math.sin(a);
          const x1 = x[o + i]!, x2 = x[o + i + D / 2]!;
          x[o + i] = x1 * c - x2 * s;
          x[o + i + D / 2] = x2 * c + x1 * s;
        }
      }
    }
  };
  for (let li = 0; li < cfg.numLayers; li++) {
    const L = layout.layers[li]!;
    const x = norm(h, N, C, L.attnNorm, cfg.norm, cfg.normEps, W);
    let q: Arr, k: Arr, v: Arr;
    if (L.qkv) {
      const qkv = linear(x, N, C, 3 * C, L.qkv, W, lora); // [N, 3C] = q | k | v
      q = new Float64Array(N * C); k = new Float64Array(N * C); v = new Float64Array(N * C);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) {
        q[n * C + c] = qkv[n * 3 * C + c]!; k[n * C + c] = qkv[n * 3 * C + C + c]!; v[n * C + c] = qkv[n * 3 * C + 2 * C + c]!;
      }
    } else {
      q = linear(x, N, C, H * D, L.q!, W, lora);
      k = linear(x, N, C, K * D, L.k!, W, lora);
      v = linear(x, N, C, K * D, L.v!, W, lora);
    }
    if (L.qNorm) q = norm(q, N * H, D, L.qNorm, 'rms', cfg.normEps, W);
    if (L.kNorm) k = norm(k, N * K, D, L.kNorm, 'rms', cfg.normEps, W);
    if (cfg.ropeLayers[li]) { rope(q, H); rope(k, K); }
    const att = new Float64Array(N * H * D); // [N, H·D]
    const scale = 1 / Math.sqrt(D);
    for (let b = 0; b < B; b++) for (let hh = 0; hh < H; hh++) {
      const kh = Math.floor(hh / G); // repeat_kv: query head hh reads kv head hh / G
      for (let t = 0; t < T; t++) {
        const sc = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[(b * T + t) * H * D + hh * D + i]! * k[(b * T + s) * K * D + kh * D + i]!;
          sc[s] = d * scale;
          mx = Math.max(mx, sc[s]!);
        }
        let z = 0;
        for (let s = 0; s <= t; s++) { sc[s] = Math.exp(sc[s]! - mx); z += sc[s]!; }
        for (let i = 0; i < D; i++) {
          let o = 0;
          for (let s = 0; s <= t; s++) o += sc[s]! * v[(b * T + s) * K * D + kh * D + i]!;
          att[(b * T + t) * H * D + hh * D + i] = o / z;
        }
      }
    }
    const o = linear(att, N, H * D, C, L.o, W, lora);
    for (let i = 0; i < h.length; i++) h[i]! += o[i]!;
    const x2 = norm(h, N, C, L.mlpNorm, cfg.norm, cfg.normEps, W);
    const up = linear(x2, N, C, F, L.up, W, lora);
    if (L.gate) {
      const gate = linear(x2, N, C, F, L.gate, W, lora);
      for (let i = 0; i < up.length; i++) up[i] = silu(gate[i]!) * up[i]!;
    } else {
      for (let i = 0; i < up.length; i++) up[i] = cfg.activation === 'gelu_new' ? geluNew(up[i]!) : NaN;
    }
    const down = linear(up, N, F, C, L.down, W, lora);
    for (let i = 0; i < h.length; i++) h[i]! += down[i]!;
  }
  h = norm(h, N, C, layout.finalNorm, cfg.norm, cfg.normEps, W);
  const head = W(layout.lmHead ?? layout.embed); // [V, C]
  const logits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) for (let vv = 0; vv < V; vv++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += h[n * C + c]! * head[vv * C + c]!;
    logits[n * V + vv] = s;
  }
  return logits;
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
