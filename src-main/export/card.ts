/** README.md model cards for exports: what was trained, how, and how to load it. */
import type { ModelConfig } from '../engine/models/config';
import type { FloatDtypeName } from '../engine/safetensors/dtype';
import type { RunSummaryInfo, TrainedAdapter } from './adapter';
import type { Verification } from './verify';
import { describeMethod } from '../engine/train/config';

export interface CardInput {
  format: 'merged' | 'peft';
  baseModel: string;
  config: ModelConfig;
  adapter: TrainedAdapter;
  targetModules: string[];
  dtype: FloatDtypeName;
  vocabSize: number;
  summary: RunSummaryInfo | null;
  verification: Verification | null;
}

const fmt = (x: number | null | undefined, digits = 4): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));

export function modelCard(c: CardInput): string {
  const t = c.adapter.train;
  const lines: string[] = [
    '---',
    `base_model: ${JSON.stringify(c.baseModel)}`,
    `library_name: ${c.format === 'peft' ? 'peft' : 'transformers'}`,
    'pipeline_tag: text-generation',
    'tags:',
    '- lathe',
    '- lora',
    ...(t.method && t.method !== 'lm' ? [`- ${t.method}`] : []),
    ...(c.format === 'peft' ? ['- base_model:adapter:' + c.baseModel] : []),
    '---',
    '',
    `# ${c.format === 'peft' ? 'LoRA adapter' : 'Fine-tuned model'} (${c.config.architecture})`,
    '',
    c.format === 'peft'
      ? `A LoRA adapter for \`${c.baseModel}\`, trained with Lathe and saved in PEFT's format.`
      : `\`${c.baseModel}\` with a LoRA adapter trained by Lathe merged into its weights (W' = W + scale·B·A), saved as ${c.dtype}.`,
    '',
    '## Training',
    '',
    `- Base model: \`${c.baseModel}\` (${c.config.architecture}, ${c.config.numLayers} layers, hidden size ${c.config.hiddenSize})`,
    `- LoRA: rank ${t.lora.rank}, alpha ${t.lora.alpha}, scale ${fmt(c.adapter.lora.scale)}${t.lora.rslora ? ' (rsLoRA: alpha/√r)' : ' (alpha/r)'}, dropout ${t.lora.dropout}`,
    `- Target modules: ${c.targetModules.join(', ')} (${c.adapter.lora.modules.length} layers adapted)`,
    `- Steps: ${c.adapter.step} (checkpoint \`${c.adapter.checkpointDir.split(/[\\/]/).slice(-1)[0]}\`)`,
    `- Optimizer: AdamW, peak learning rate ${t.optim.lr}, ${t.schedule.kind} schedule with ${t.schedule.warmupSteps} warmup steps, weight decay ${t.optim.weightDecay}`,
    ...(t.method && t.method !== 'lm' ? [`- Method: ${describeMethod(t)}; trained on preference pairs (chosen vs rejected replies)`] : []),
    `- Batch: ${t.batchSize} ${t.method && t.method !== 'lm' ? 'pairs' : 'blocks'} × ${t.gradAccum} accumulation`,
    `- Vocabulary: ${c.vocabSize}${c.vocabSize !== c.config.vocabSize ? ` (base ${c.config.vocabSize}, tokens added)` : ''}`,
  ];
  const s = c.summary;
  if (s) {
    lines.push('', '## Results', '');
    if (s.finalLoss !== null) lines.push(`- Final training loss: ${fmt(s.finalLoss)}`);
    const splits = Object.keys(s.val);
    if (splits.length > 0 && t.method && t.method !== 'lm') {
      // preference tuning: no perplexity; the share of held-out pairs ranked right and the reward margin
      type Pref = { loss: number; rewardAccuracy?: number; rewardMargin?: number } | undefined;
      lines.push('', '| Held-out pairs | Loss before | Loss after | Reward accuracy before | Reward accuracy after | Reward margin after |', '|---|---|---|---|---|---|');
      for (const k of splits) {
        const b = s.valBefore[k] as Pref, a = s.val[k] as Pref;
        lines.push(`| ${k} | ${fmt(b?.loss)} | ${fmt(a?.loss)} | ${fmt(b?.rewardAccuracy, 3)} | ${fmt(a?.rewardAccuracy, 3)} | ${fmt(a?.rewardMargin)} |`);
      }
    } else if (splits.length > 0) {
      lines.push('', '| Held-out set | Loss before | Loss after | Perplexity before | Perplexity after |', '|---|---|---|---|---|');
      for (const k of splits) {
        const b = s.valBefore[k], a = s.val[k]!;
        lines.push(`| ${k} | ${fmt(b?.loss)} | ${fmt(a.loss)} | ${fmt(b?.ppl, 2)} | ${fmt(a.ppl, 2)} |`);
      }
    }
  }
  if (c.verification) {
    const v = c.verification;
    lines.push('', '## Export check', '',
      `Reloaded after writing and compared with the trained model on a ${v.ids.length}-token prompt: ` +
      `largest logit difference ${v.maxAbsDiff.toExponential(2)} (relative ${v.relError.toExponential(2)}, allowed ${v.tolerance}).`);
  }
  lines.push('', '## Use', '', '```python');
  if (c.format === 'peft') {
    lines.push(
      'from transformers import AutoModelForCausalLM, AutoTokenizer',
      'from peft import PeftModel',
      `base = AutoModelForCausalLM.from_pretrained(${JSON.stringify(c.baseModel)})`,
      ...(c.vocabSize !== c.config.vocabSize ? [`base.resize_token_embeddings(${c.vocabSize})  # this adapter adds tokens`] : []),
      'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
    );
  } else {
    lines.push(
      'from transformers import AutoModelForCausalLM, AutoTokenizer',
      'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
      'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
    );
  }
  lines.push('```', '');
  return lines.join('\n');
}
