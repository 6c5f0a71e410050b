/**
 * LoRA configuration and the trainable-parameter layout.
 *
 * A LoRA on a linear layer y = x Wᵀ (+ b) adds scale · (x Aᵀ) Bᵀ with A [r, in], B [out, r]; scale is
 * alpha / r, or alpha / √r with rsLoRA. Standard init (PEFT's): A ~ U(-1/√in, 1/√in) (kaiming-uniform with
 * a = √5), B = 0, so training starts exactly at the base model.
 *
 * All trainable tensors live in ONE flat f32 vector (one graph input, one optimizer state per moment);
 * `LoraLayout` says where each tensor sits. Names follow PEFT's adapter keys so export is a rename-free copy.
 */
import type { ModelConfig } from '../models/config';
import type { LinearWeights, WeightsLayout } from '../models/layout';
import { Rng } from '../models/rng';
import { UserError } from '../../util/progress';

/**
 * Roles of linear layers inside a decoder block. GPT-2's c_attn and Phi-3's qkv_proj are 'qkv'; Phi-3's
 * gate_up_proj is 'gate_up' (LoRA on the fused module, as PEFT targets it: B is [2F, r]).
 */
export type LinearRole = 'q' | 'k' | 'v' | 'qkv' | 'o' | 'gate' | 'up' | 'down' | 'gate_up';
// (order matters: the index seeds LoRA dropout, so new roles go at the end)
export const ALL_ROLES: readonly LinearRole[] = ['q', 'k', 'v', 'qkv', 'o', 'gate', 'up', 'down', 'gate_up'];

export const TARGET_PRESETS = {
  /** q, k, v, o (and GPT-2's c_attn / attention c_proj). */
  attention: ['q', 'k', 'v', 'qkv', 'o'],
  /** gate, up, down (GPT-2: c_fc, mlp c_proj; Phi-3: gate_up_proj, down_proj). */
  mlp: ['gate', 'up', 'down', 'gate_up'],
  /** Every linear layer of every block (QLoRA paper's recommendation). */
  'all-linear': ALL_ROLES,
} as const satisfies Record<string, readonly LinearRole[]>;
export type TargetPreset = keyof typeof TARGET_PRESETS;

export interface LoraConfig {
  /** Rank r of the update. */
  rank: number;
  /** Scaling numerator: scale = alpha / r (or alpha / √r with rsLoRA). */
  alpha: number;
  /** Dropout on the LoRA branch's input (0 = off). */
  dropout: number;
  /** Rank-stabilized scaling (alpha / √r). */
  rslora: boolean;
  /** Preset name or explicit roles. */
  targets: TargetPreset | LinearRole[];
  /** Seed for A's init. */
  seed: number;
}

export const DEFAULT_LORA: LoraConfig = { rank: 8, alpha: 16, dropout: 0, rslora: false, targets: 'all-linear', seed: 1234 };

export function loraScale(c: Pick<LoraConfig, 'alpha' | 'rank' | 'rslora'>): number {
  return c.rslora ? c.alpha / Math.sqrt(c.rank) : c.alpha / c.rank;
}

export function targetRoles(c: Pick<LoraConfig, 'targets'>): Set<LinearRole> {
  const roles = typeof c.targets === 'string' ? TARGET_PRESETS[c.targets] : c.targets;
  if (!roles) throw new UserError('lora.targets', `Unknown LoRA target preset "${String(c.targets)}".`, `Use one of: ${Object.keys(TARGET_PRESETS).join(', ')}.`);
  return new Set(roles);
}

export interface LoraModule {
  layer: number;
  role: LinearRole;
  /** HF module path, e.g. "model.layers.0.self_attn.q_proj" (PEFT key prefix). */
  module: string;
  inFeatures: number;
  outFeatures: number;
  /** Offsets (in floats) of A [r, in] and B [out, r] in the flat vector. */
  aOffset: number;
  bOffset: number;
}

export interface LoraLayout {
  modules: LoraModule[];
  rank: number;
  scale: number;
  /** Total trainable floats. */
  size: number;
  /** Trainable embedding / lm_head rows for new tokens (after the LoRA tensors in the flat vector). */
  newRows?: NewRowsLayout | null;
}

/** The linear layers of one block by role (null where the architecture has none). */
export function layerLinears(layout: WeightsLayout, i: number): [LinearRole, LinearWeights][] {
  const l = layout.layers[i]!;
  const out: [LinearRole, LinearWeights][] = [];
  const add = (role: LinearRole, w: LinearWeights | null) => { if (w) out.push([role, w]); };
  add('q', l.q); add('k', l.k); add('v', l.v); add('qkv', l.qkv); add('o', l.o);
  add('gate', l.gate); add('up', l.up); add('gate_up', l.gateUp); add('down', l.down);
  return out;
}

export function buildLoraLayout(cfg: ModelConfig, layout: WeightsLayout, c: LoraConfig): LoraLayout {
  if (!Number.isInteger(c.rank) || c.rank < 1) throw new UserError('lora.rank', `LoRA rank must be a whole number ≥ 1 (got ${c.rank}).`);
  const roles = targetRoles(c);
  const modules: LoraModule[] = [];
  let offset = 0;
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const [role, w] of layerLinears(layout, i)) {
      if (!roles.has(role)) continue;
      const shape = layout.shapes.get(w.weight)!;
      const [outF, inF] = w.inOut ? [shape[1]!, shape[0]!] : [shape[0]!, shape[1]!];
      const aOffset = offset; offset += c.rank * inF;
      const bOffset = offset; offset += outF * c.rank;
      modules.push({ layer: i, role, module: w.weight.replace(/\.weight$/, ''), inFeatures: inF, outFeatures: outF, aOffset, bOffset });
    }
  }
  if (modules.length === 0) throw new UserError('lora.noTargets', 'The chosen LoRA targets match no layer of this model.', 'Choose "all-linear" or another preset.');
  return { modules, rank: c.rank, scale: loraScale(c), size: offset };
}

/** Standard init: A uniform in ±1/√in, B zero. Deterministic by seed. */
export function initLoraParams(l: LoraLayout, seed: number): Float32Array {
  const p = new Float32Array(l.size);
  const rng = new Rng(seed);
  for (const m of l.modules) {
    const bound = 1 / Math.sqrt(m.inFeatures);
    for (let i = 0; i < l.rank * m.inFeatures; i++) p[m.aOffset + i] = (rng.next() * 2 - 1) * bound;
  }
  return p;
}

// ---- trainable rows for new tokens (tokenizer extension) ---------------------------------------------

/**
 * Token ids whose embedding (and lm_head) rows are trained along with the LoRA weights: the tokens a
 * domain tokenizer added. Ids below the model's row count V reuse existing (untrained padding) rows; ids
 * at or past V are beyond the base matrix. In the graph the r trainable rows sit in the flat params vector
 * and the logits grow to V + r columns (base columns of re-used rows are masked out), so no [V, C] matrix
 * is ever copied or differentiated.
 */
export interface NewRowsLayout {
  /** Ascending token ids. */
  ids: number[];
  /** Base embedding rows (V). */
  baseRows: number;
  hidden: number;
  /** Offsets (floats) of the [r, C] embedding rows and, for untied models, the [r, C] lm_head rows. */
  embedOffset: number;
  headOffset: number | null;
}

export function addNewRows(l: LoraLayout, cfg: ModelConfig, ids: number[]): LoraLayout {
  if (ids.length === 0) return l;
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  if (sorted[0]! < 0) throw new UserError('newRows.id', `New token id ${sorted[0]} is negative.`);
  const C = cfg.hiddenSize, r = sorted.length;
  const embedOffset = l.size;
  const headOffset = cfg.tieWordEmbeddings ? null : embedOffset + r * C;
  const size = embedOffset + r * C * (cfg.tieWordEmbeddings ? 1 : 2);
  return { ...l, size, newRows: { ids: sorted, baseRows: cfg.vocabSize, hidden: C, embedOffset, headOffset } };
}

/** Maps token ids to graph inputs/targets when some rows are trainable (identity without new rows). */
export class TokenRows {
  readonly index = new Map<number, number>();
  /** Number of logit columns: V, or V + r with new rows. */
  readonly classes: number;
  constructor(readonly baseRows: number, readonly newRows: NewRowsLayout | null | undefined) {
    newRows?.ids.forEach((id, j) => this.index.set(id, j));
    this.classes = baseRows + (newRows?.ids.length ?? 0);
  }
  get active(): boolean { return this.index.size > 0; }
  /** Whether the model (with its new rows) has an embedding for `id`. */
  has(id: number): boolean { return (id >= 0 && id < this.baseRows) || this.index.has(id); }
  /** Input id for the base Gather (clamped into the base matrix), index into the new rows, and the new flag. */
  input(id: number): [number, number, number] {
    const j = this.index.get(id);
    return j === undefined ? [id, 0, 0] : [id < this.baseRows ? id : 0, j, 1];
  }
  /** Logit column of `id`: its base column, or V + j for a trainable row. */
  target(id: number): number {
    const j = this.index.get(id);
    return j === undefined ? id : this.baseRows + j;
  }
}
