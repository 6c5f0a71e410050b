/**
 * Sample generations for fixed prompts with given adapter values: what the trainer shows every N steps
 * ("the model at step 200 answers ...") and what the evaluation report shows before/after.
 *
 * A SampleRunner builds its sessions once and is reused with new params (setAdapter uploads P floats);
 * `sampleGenerations` is the one-shot form.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ChatMessage } from '../../templates';
import { openModel } from '../models';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import type { ModelWeights } from '../safetensors';
import type { LoraLayout } from '../llm/lora';
import type { WeightSource } from '../llm/forward';
import type { EpName } from '../backends/onnx';
import { chatFormat, renderChatPrompt, type ChatFormat } from './chat';
import { Generator, type FinishReason } from './generator';

export interface SampleOptions {
  ep?: EpName | 'gpu';
  /** New tokens per prompt (default 48: enough to see the style, cheap enough to run often). */
  maxTokens?: number;
  /** Greedy by default, so the same step always shows the same text. */
  greedy?: boolean;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Render each prompt as a user message through the chat template (SFT runs); plain continuation otherwise. */
  chat?: boolean;
  /** Tokenizer folder when it differs from the model's (extended tokenizer). */
  tokenizerDir?: string;
  /** ep 'gpu': the trainer's weight source (its uploaded weights are shared; QLoRA: NF4). */
  src?: WeightSource;
  signal?: AbortSignal;
}

export interface SampleGeneration {
  prompt: string;
  text: string;
  finish: FinishReason;
  tokens: number;
  ms: number;
}

export interface SampleGenerationsResult {
  samples: SampleGeneration[];
  /** Wall time of all generations (ms). */
  ms: number;
  /** Time spent building the sessions (0 when reused). */
  buildMs: number;
}

export class SampleRunner {
  private buildMs: number;
  private constructor(private readonly gen: Generator, private readonly fmt: ChatFormat | null, private readonly opts: SampleOptions,
    private readonly owned: ModelWeights | null, buildMs: number) {
    this.buildMs = buildMs;
  }

  /** `model` lets the trainer pass its already opened model (no second open of the weights files). */
  static async create(modelDir: string, lora: LoraLayout | null, opts: SampleOptions = {},
    model?: { config: ModelConfig; layout: WeightsLayout; weights: ModelWeights }): Promise<SampleRunner> {
    const t0 = performance.now();
    const m = model ?? await openModel(modelDir);
    try {
      const gen = await Generator.create(m, modelDir, {
        ep: opts.ep, capacity: Math.min(m.config.maxPositions, 1024),
        lora: lora ? { layout: lora, params: new Float32Array(lora.size) } : null, tokenizerDir: opts.tokenizerDir,
        ...(opts.src ? { src: opts.src } : {}),
      });
      const fmt = opts.chat && gen.tokenizer ? chatFormat(modelDir, gen.tokenizer) : null;
      return new SampleRunner(gen, fmt, opts, model ? null : m.weights, performance.now() - t0);
    } catch (e) {
      if (!model) await m.weights.close();
      throw e;
    }
  }

  /** Generations for each prompt with these adapter values (null: the model as it is). */
  async run(params: Float32Array | null, prompts: string[]): Promise<SampleGenerationsResult> {
    const o = this.opts;
    if (params) await this.gen.setAdapter(params);
    const t0 = performance.now();
    const samples: SampleGeneration[] = [];
    for (const prompt of prompts) {
      if (o.signal?.aborted) break;
      const s0 = performance.now();
      let ids: number[];
      let stopIds: number[] = [], stopStrings: string[] = [];
      if (this.fmt && this.gen.tokenizer) {
        const messages: ChatMessage[] = [{ role: 'user', content: prompt }];
        ids = (await renderChatPrompt(this.fmt, this.gen.tokenizer, messages)).ids;
        stopIds = this.fmt.stopIds; stopStrings = this.fmt.stopStrings;
      } else {
        ids = await this.gen.encode(prompt);
        if (ids.length === 0 && this.gen.config.bosTokenId !== null) ids = [this.gen.config.bosTokenId];
      }
      const maxTokens = Math.max(1, Math.min(o.maxTokens ?? 48, this.gen.capacity - ids.length - 1));
      const r = await this.gen.generate(ids, {
        maxTokens, greedy: o.greedy ?? (o.temperature === undefined && o.topP === undefined), temperature: o.temperature, topP: o.topP,
        seed: o.seed ?? 0, stopIds, stopStrings, signal: o.signal,
      });
      samples.push({ prompt, text: r.text, finish: r.finish, tokens: r.ids.length, ms: performance.now() - s0 });
    }
    const buildMs = this.buildMs;
    this.buildMs = 0;
    return { samples, ms: performance.now() - t0, buildMs };
  }

  async dispose(): Promise<void> {
    await this.gen.dispose();
    await this.owned?.close();
  }
}

/** One-shot: build, generate for every prompt with `params` (an unmerged adapter), dispose. */
export async function sampleGenerations(modelDir: string, params: Float32Array | null, lora: LoraLayout | null,
  prompts: string[], opts: SampleOptions = {}): Promise<SampleGenerationsResult> {
  const runner = await SampleRunner.create(modelDir, lora, opts);
  try {
    return await runner.run(params, prompts);
  } finally {
    await runner.dispose();
  }
}

export interface StepSamples extends SampleGenerationsResult {
  step: number;
}

/**
 * The trainer's sample generations: every `sampleEvery` steps the run's prompts are answered with the
 * current adapter values and appended to RUN/samples.jsonl ({step, prompt, text, finish, tokens, ms}), so
 * the user sees the model change step by step.
 */
export class TrainingSamples {
  private constructor(private readonly runner: SampleRunner, private readonly prompts: string[], private readonly file: string) {}

  static async create(cfg: { model: string; out: string; samplePrompts: string[]; sampleMaxTokens: number }, lora: LoraLayout,
    model: { config: ModelConfig; layout: WeightsLayout; weights: ModelWeights }, opts: { chat: boolean; ep: EpName | 'gpu'; tokenizerDir?: string; src?: WeightSource }): Promise<TrainingSamples> {
    const runner = await SampleRunner.create(cfg.model, lora, { ep: opts.ep, maxTokens: cfg.sampleMaxTokens, chat: opts.chat, tokenizerDir: opts.tokenizerDir, ...(opts.src ? { src: opts.src } : {}) }, model);
    return new TrainingSamples(runner, cfg.samplePrompts, path.join(cfg.out, 'samples.jsonl'));
  }

  async at(step: number, params: Float32Array): Promise<StepSamples> {
    const r = await this.runner.run(params, this.prompts);
    mkdirSync(path.dirname(this.file), { recursive: true });
    appendFileSync(this.file, r.samples.map((s) => JSON.stringify({ step, ...s })).join('\n') + '\n');
    return { step, ...r };
  }

  async dispose(): Promise<void> {
    await this.runner.dispose();
  }
}

/** Samples recorded by a run (samples.jsonl), grouped by step; a torn last line is skipped. */
export function readRunSamples(runDir: string): { step: number; samples: SampleGeneration[] }[] {
  const file = path.join(runDir, 'samples.jsonl');
  if (!existsSync(file)) return [];
  const byStep = new Map<number, SampleGeneration[]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const { step, ...s } = JSON.parse(line) as SampleGeneration & { step: number };
      if (!byStep.has(step)) byStep.set(step, []);
      byStep.get(step)!.push(s);
    } catch {
      // torn line from a crash mid-write
    }
  }
  return [...byStep].sort((a, b) => a[0] - b[0]).map(([step, samples]) => ({ step, samples }));
}
