/**
 * One normalized description of a decoder-only LLM, whatever its Hugging Face config.json looked like.
 * Each architecture family (llama.ts, mistral.ts, qwen2.ts, qwen3.ts, smollm3.ts, gpt2.ts) turns its own
 * HF field names into this; everything downstream (weights layout, graph building, export) reads only this.
 *
 * Dimension letters used in shape comments: V = vocab, C = hidden size, L = layers, H = heads,
 * K = kv heads, D = head dim, F = MLP (intermediate) size, P = learned positions.
 */
import { UserError } from '../../util/progress';

export type Family = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'smollm3' | 'gpt2' | 'granite' | 'olmo2' | 'gemma2' | 'gemma3' | 'phi3';

export type RopeScaling =
  /** Llama 3.1+: low frequencies divided by `factor`, high ones kept, a smooth ramp between. */
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  /** Positions divided by `factor` (same as dividing every inverse frequency). */
  | { type: 'linear'; factor: number }
  /**
   * Phi-3.5 / Phi-4-mini "longrope" (older name "su"): inverse frequencies divided per dimension by
   * `longFactor` when the sequence is longer than `originalMaxPositions`, else by `shortFactor`; cos and
   * sin multiplied by `attentionFactor`.
   */
  | { type: 'longrope'; shortFactor: number[]; longFactor: number[]; originalMaxPositions: number; attentionFactor: number };

/** RoPE parameters: base, scaling, and how many dims of each head rotate (Phi-4-mini: 0.75·D; else D). */
export interface RopeParams { theta: number; scaling: RopeScaling | null; rotaryDim?: number }

export interface ModelConfig {
  family: Family;
  /** HF class name from `architectures[0]`, e.g. "LlamaForCausalLM". */
  architecture: string;
  /** HF `model_type`, e.g. "llama". */
  modelType: string;
  vocabSize: number; // V: rows of the embedding (and lm_head)
  hiddenSize: number; // C
  numLayers: number; // L
  numHeads: number; // H
  numKvHeads: number; // K (GQA when K < H; H % K == 0)
  headDim: number; // D (usually C / H; Qwen3 and newer Llama/Mistral configs may set it)
  intermediateSize: number; // F
  maxPositions: number;
  norm: 'rms' | 'layer';
  normEps: number;
  activation: 'silu' | 'gelu_new' | 'gelu' | 'gelu_pytorch_tanh' | 'relu';
  /** SwiGLU-style MLP: down(act(gate(x)) * up(x)); otherwise down(act(up(x))) (GPT-2 c_fc/c_proj). */
  gatedMlp: boolean;
  positions: 'rope' | 'learned';
  rope: RopeParams | null;
  /** Gemma 3: the RoPE of the sliding-window layers (rope_local_base_freq, unscaled); null: `rope` everywhere. */
  localRope: RopeParams | null;
  /** Per layer: whether RoPE is applied (false for SmolLM3's NoPE layers). All false without RoPE. */
  ropeLayers: boolean[];
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** Qwen3 / Gemma 3: RMSNorm over D on q and k (per head) before RoPE; OLMo 2: over the whole projection. */
  qkNorm: boolean;
  qkNormScope: 'head' | 'all';
  /** lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Mistral v0.1 / Qwen2 with use_sliding_window: attention limited to this many previous tokens. */
  slidingWindow: number | null;
  /** Per layer: whether `slidingWindow` applies (Gemma 2: every other layer; Gemma 3: 5 of every 6). */
  windowLayers: boolean[];
  /**
   * Where the norms sit in a block: 'pre' (Llama: norm → attn → add), 'sandwich' (Gemma 2/3: norm → attn →
   * norm → add, the same around the MLP), 'post' (OLMo 2: attn → norm → add).
   */
  normPlacement: 'pre' | 'sandwich' | 'post';
  /** Gemma: RMSNorm scales by (1 + w) instead of w (every norm, q/k norms included). */
  normUnitOffset: boolean;
  /** Embedding output multiplied by this (Gemma: √C; Granite: embedding_multiplier; else 1). */
  embedScale: number;
  /** Attention scores q·kᵀ multiplied by this (1/√D; Gemma: query_pre_attn_scalar^-½; Granite: attention_multiplier). */
  attnScale: number;
  /** Gemma 2: scores = cap · tanh(scores / cap) before the mask; null: none. */
  attnSoftcap: number | null;
  /** Granite: attention and MLP outputs multiplied by residual_multiplier before the residual add. */
  residualScale: number;
  /** Granite: logits multiplied by this (1 / logits_scaling). */
  logitScale: number;
  /** Gemma 2: logits = cap · tanh(logits / cap); null: none. */
  finalSoftcap: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /** `torch_dtype` / `dtype` as written in config.json ("bfloat16", ...), or null. */
  torchDtype: string | null;
}

/** Reads config.json fields with types checked, so a bad field is named in the error. */
export class ConfigReader {
  constructor(readonly raw: Record<string, unknown>, readonly what = 'config.json') {}

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw this.missing(key, 'an integer');
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw this.invalid(key, `an integer ≥ ${min}`, v);
    return v;
  }

  num(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw this.missing(key, 'a number');
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.invalid(key, 'a number', v);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw this.invalid(key, 'true or false', v);
    return v;
  }

  str(key: string, fallback: string): string {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') throw this.invalid(key, 'a string', v);
    return v;
  }

  optInt(key: string): number | null {
    return this.has(key) ? this.int(key, undefined, 0) : null;
  }

  /** `eos_token_id` may be one id or a list (Llama 3). */
  intList(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (typeof v === 'number' && Number.isSafeInteger(v)) return [v];
    if (Array.isArray(v) && v.every((x) => Number.isSafeInteger(x))) return v as number[];
    throw this.invalid(key, 'an integer or a list of integers', v);
  }

  missing(key: string, what: string): UserError {
    return new UserError('model-config-invalid', `${this.what} has no "${key}" (${what} is needed).`, 'The model folder looks incomplete or edited. Download config.json again.');
  }

  invalid(key: string, what: string, got: unknown): UserError {
    return new UserError('model-config-invalid', `${this.what} field "${key}" must be ${what}, got ${JSON.stringify(got)}.`, 'The model folder looks incomplete or edited. Download config.json again.');
  }
}

/** Checks shared by every family: head counts that divide, a sane head dim. */
export function checkAttentionShape(cfg: ModelConfig, r: ConfigReader): void {
  if (cfg.numHeads % cfg.numKvHeads !== 0) {
    throw r.invalid('num_key_value_heads', `a divisor of num_attention_heads (${cfg.numHeads})`, cfg.numKvHeads);
  }
  if (cfg.positions === 'rope' && cfg.headDim % 2 !== 0) throw r.invalid('head_dim', 'even (RoPE rotates pairs)', cfg.headDim);
  if (cfg.ropeLayers.length !== cfg.numLayers) throw new Error(`ropeLayers has ${cfg.ropeLayers.length} entries for ${cfg.numLayers} layers.`);
}

/** The rope_scaling object of a config.json, normalized; null when absent. Unknown types are refused. */
export function parseRopeScaling(r: ConfigReader): RopeScaling | null {
  // transformers >= 4.57 may write everything RoPE under "rope_parameters" (rope_type, rope_theta, ...).
  const v = r.raw.rope_scaling ?? r.raw.rope_parameters;
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw r.invalid('rope_scaling', 'an object or null', v);
  const s = new ConfigReader(v as Record<string, unknown>, 'config.json rope_scaling');
  const type = s.str('rope_type', s.str('type', 'default'));
  switch (type) {
    case 'default':
      return null;
    case 'llama3':
      return {
        type: 'llama3',
        factor: s.num('factor'),
        lowFreqFactor: s.num('low_freq_factor'),
        highFreqFactor: s.num('high_freq_factor'),
        originalMaxPositions: s.int('original_max_position_embeddings'),
      };
    case 'linear':
      return { type: 'linear', factor: s.num('factor') };
    case 'longrope':
    case 'su': {
      const list = (key: string): number[] => {
        const v = s.raw[key];
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) throw s.invalid(key, 'a list of positive numbers', v);
        return v as number[];
      };
      // Phi-3 keeps original_max_position_embeddings at the top level; newer configs inside rope_scaling.
      const orig = s.has('original_max_position_embeddings') ? s.int('original_max_position_embeddings') : r.int('original_max_position_embeddings');
      const maxPos = r.int('max_position_embeddings', orig);
      const factor = s.num('factor', maxPos / orig);
      const attentionFactor = s.has('attention_factor') ? s.num('attention_factor')
        : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
      return { type: 'longrope', shortFactor: list('short_factor'), longFactor: list('long_factor'), originalMaxPositions: orig, attentionFactor };
    }
    default:
      throw new UserError(
        'model-unsupported',
        `This model uses RoPE scaling "${type}", which Lathe does not support yet (supported: llama3, linear, longrope, none).`,
        'Pick a model without that rope_scaling, or remove rope_scaling from config.json if you only train on short texts.',
      );
  }
}

/**
 * RoPE inverse frequencies, rotaryDim/2 of them, exactly as HF computes them (in float64 here; HF computes
 * base^(arange(0, d, 2)/d) in float32 — the differences are ~1e-7 relative). `seqLen` picks longrope's
 * long factors when it exceeds the original context (HF: max position + 1 > original_max_position_embeddings).
 */
export function ropeInvFreq(cfg: ModelConfig, params: RopeParams | null = cfg.rope, seqLen = 0): Float64Array {
  if (!params) throw new Error(`${cfg.architecture} has no RoPE.`);
  const D = params.rotaryDim ?? cfg.headDim;
  const inv = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) inv[i] = 1 / params.theta ** ((2 * i) / D);
  const sc = params.scaling;
  if (sc?.type === 'linear') {
    for (let i = 0; i < inv.length; i++) inv[i]! /= sc.factor;
  } else if (sc?.type === 'longrope') {
    const ext = seqLen > sc.originalMaxPositions ? sc.longFactor : sc.shortFactor;
    for (let i = 0; i < inv.length; i++) inv[i]! /= ext[i]!;
  } else if (sc?.type === 'llama3') {
    const lowWavelen = sc.originalMaxPositions / sc.lowFreqFactor;
    const highWavelen = sc.originalMaxPositions / sc.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) continue; // high frequency: unchanged
      if (wavelen > lowWavelen) { inv[i] = f / sc.factor; continue; } // low frequency: scaled
      const smooth = (sc.originalMaxPositions / wavelen - sc.lowFreqFactor) / (sc.highFreqFactor - sc.lowFreqFactor);
      inv[i] = (1 - smooth) * (f / sc.factor) + smooth * f;
    }
  }
  return inv;
}

/**
 * cos/sin rows [n, D] for absolute positions (HF: angle t·inv_freq in f32, emb = cat(freqs, freqs) over the
 * rotary dims, times longrope's attention factor). Dims past the rotary ones (partial rotary) get cos 1 and
 * sin 0, so x·cos + rotate(x)·sin leaves them as they are. Rows past `positions.length` stay zero.
 */
export function ropeCosSin(cfg: ModelConfig, params: RopeParams, positions: ArrayLike<number>, seqLen: number, rows = positions.length): { cos: Float32Array; sin: Float32Array } {
  const D = cfg.headDim, R = params.rotaryDim ?? D;
  const inv = ropeInvFreq(cfg, params, seqLen);
  const af = params.scaling?.type === 'longrope' ? params.scaling.attentionFactor : 1;
  const cos = new Float32Array(rows * D), sin = new Float32Array(rows * D);
  for (let r = 0; r < positions.length; r++) {
    const t = positions[r]!;
    for (let i = 0; i < R / 2; i++) {
      const a = Math.fround(Math.fround(t) * Math.fround(inv[i]!));
      cos[r * D + i] = cos[r * D + i + R / 2] = Math.fround(Math.cos(a)) * af;
      sin[r * D + i] = sin[r * D + i + R / 2] = Math.fround(Math.sin(a)) * af;
    }
    for (let i = R; i < D; i++) cos[r * D + i] = 1;
  }
  return { cos, sin };
}

/** rope_theta, from the top level or from "rope_parameters". */
export function ropeTheta(r: ConfigReader, fallback: number): number {
  const rp = r.raw.rope_parameters;
  if (!r.has('rope_theta') && rp && typeof rp === 'object' && !Array.isArray(rp)) {
    return new ConfigReader(rp as Record<string, unknown>, 'config.json rope_parameters').num('rope_theta', fallback);
  }
  return r.num('rope_theta', fallback);
}

/** `torch_dtype` (or `dtype`, its newer name) as written. */
export function storedDtype(raw: Record<string, unknown>): string | null {
  return typeof raw.torch_dtype === 'string' ? raw.torch_dtype : typeof raw.dtype === 'string' ? raw.dtype : null;
}

/** Trainable parameter count implied by a config (tied lm_head counted once). */
export function parameterCount(cfg: ModelConfig): number {
  const { vocabSize: V, hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: F } = cfg;
  const qkNorm = !cfg.qkNorm ? 0 : cfg.qkNormScope === 'all' ? H * D + K * D : 2 * D;
  const attn = C * H * D + 2 * C * K * D + H * D * C
    + (cfg.qkvBias ? H * D + 2 * K * D : 0) + (cfg.oBias ? C : 0) + qkNorm;
  const mlp = (cfg.gatedMlp ? 3 * C * F : 2 * C * F) + (cfg.mlpBias ? (cfg.gatedMlp ? 2 * F + C : F + C) : 0);
  const normSize = cfg.norm === 'layer' ? 2 * C : C;
  const layerNorms = { pre: 2, sandwich: 4, post: 2 }[cfg.normPlacement];
  const layer = attn + mlp + layerNorms * normSize;
  return V * C + (cfg.positions === 'learned' ? cfg.maxPositions * C : 0) + cfg.numLayers * layer + normSize
    + (cfg.tieWordEmbeddings ? 0 : V * C);
}
