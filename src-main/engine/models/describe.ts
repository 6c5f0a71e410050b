/**
 * Plain-words facts about an architecture that set it apart from a plain Llama, for `lathe model inspect`
 * and the app's model card: one short phrase each, empty for a plain Llama.
 */
import type { ModelConfig, RopeParams } from './config';

const num = (x: number): string => (Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6))));

function ropeText(p: RopeParams, headDim: number): string {
  const sc = p.scaling;
  const scaling = !sc ? '' : sc.type === 'longrope'
    ? ` (longrope: short/long factors, switching past ${sc.originalMaxPositions} tokens; attention factor ${num(sc.attentionFactor)})`
    : ` (${sc.type} scaling, factor ${num(sc.factor)})`;
  const partial = p.rotaryDim !== undefined && p.rotaryDim !== headDim ? `, ${p.rotaryDim} of ${headDim} head dims rotate` : '';
  return `θ=${num(p.theta)}${scaling}${partial}`;
}

export function describeArchitecture(cfg: ModelConfig): string[] {
  const out: string[] = [];
  const L = cfg.numLayers;
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) out.push(`head dim ${cfg.headDim} ≠ hidden ${cfg.hiddenSize} / ${cfg.numHeads} heads`);
  if (cfg.slidingWindow !== null && cfg.slidingWindow < cfg.maxPositions) {
    const n = cfg.windowLayers.filter(Boolean).length;
    out.push(n === L ? `sliding-window attention (${cfg.slidingWindow} tokens) on every layer`
      : `sliding-window attention (${cfg.slidingWindow} tokens) on ${n} of ${L} layers, global attention on the rest`);
  }
  if (cfg.rope && cfg.localRope) out.push(`RoPE ${ropeText(cfg.rope, cfg.headDim)} on global layers, ${ropeText(cfg.localRope, cfg.headDim)} on sliding-window layers`);
  else if (cfg.rope?.rotaryDim !== undefined && cfg.rope.rotaryDim !== cfg.headDim) out.push(`partial rotary: ${cfg.rope.rotaryDim} of ${cfg.headDim} head dims rotate`);
  if (cfg.rope?.scaling?.type === 'longrope' && !cfg.localRope) out.push(`RoPE ${ropeText({ ...cfg.rope, rotaryDim: undefined }, cfg.headDim)}`);
  if (cfg.attnSoftcap !== null) out.push(`attention logits soft-capped at ${num(cfg.attnSoftcap)} (cap·tanh(x/cap))`);
  if (cfg.finalSoftcap !== null) out.push(`final logits soft-capped at ${num(cfg.finalSoftcap)}`);
  if (cfg.normPlacement === 'sandwich') out.push('norms before and after attention and MLP (4 per layer)');
  if (cfg.normPlacement === 'post') out.push('norms after attention and MLP (before the residual add)');
  if (cfg.normUnitOffset) out.push('RMSNorm scales by (1 + w)');
  if (cfg.qkNorm) out.push(cfg.qkNormScope === 'all' ? 'q/k RMSNorm over the whole projection' : 'q/k RMSNorm per head');
  if (cfg.activation === 'gelu_pytorch_tanh' && cfg.gatedMlp) out.push('GeGLU MLP (gelu, tanh approximation)');
  if (cfg.family === 'phi3') out.push('fused qkv_proj and gate_up_proj (LoRA targets the fused modules)');
  if (cfg.embedScale !== 1) out.push(`embeddings × ${num(cfg.embedScale)}`);
  const defaultScale = 1 / Math.sqrt(cfg.headDim);
  if (Math.abs(cfg.attnScale - defaultScale) > 1e-12 * defaultScale) out.push(`attention scores × ${num(cfg.attnScale)} (not 1/√${cfg.headDim})`);
  if (cfg.residualScale !== 1) out.push(`residual branches × ${num(cfg.residualScale)}`);
  if (cfg.logitScale !== 1) out.push(`logits ÷ ${num(1 / cfg.logitScale)}`);
  return out;
}
