/**
 * Text generation with a KV cache: ONE session of graph.ts's step graph with a symbolic token count runs
 * prefill (the prompt in pieces of up to `chunk` tokens) and decode (one token) over fixed-capacity caches that stay on the device between
 * steps (WebGPU: 'gpu-buffer' outputs fed straight back; CPU/CUDA: ORT CPU tensors). Sampling, stop ids,
 * stop strings, streaming and cancellation happen on the host (sampling.ts).
 *
 *   const gen = await Generator.open(modelDir, { ep: 'cpu' });
 *   for await (const ev of gen.stream(await gen.encode('Hello'), { maxTokens: 20, greedy: true })) process.stdout.write(ev.text);
 *   await gen.dispose();
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { openModel } from '../models';
import { nonFiniteOutputError } from '../models/finite';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import type { ModelWeights } from '../safetensors';
import { TokenRows, type LoraLayout } from '../llm/lora';
import { EngineSession, identityModel, type EpName } from '../backends/onnx';
import { LatheTokenizer } from '../../tokenizer';
import { UserError } from '../../util/progress';
import { buildStepGraph, ropeRows, type StepGraph } from './graph';
import { DEFAULT_SAMPLING, Sampler, type SamplingOptions } from './sampling';
import { openWeightSource } from '../weights/source';
import type { WeightSource } from '../llm/forward';
import type { HostTensor } from '../runtime/tensor';
import { GpuStepPrograms } from './gpu-step';

const NEG_INF = -1e9; // as forward.ts: exp() underflows to exactly 0 in f32

export interface GeneratorOptions {
  /** An onnxruntime EP, or 'gpu': Lathe's own GPU backend (prefill + decode programs, KV cache on the GPU). */
  ep?: EpName | 'gpu';
  /** Cache capacity S in positions (prompt + new tokens); default min(maxPositions, 512). */
  capacity?: number;
  /** Prefill chunk: the prompt runs in pieces of at most this many tokens; default 128 (capped by the capacity). */
  chunk?: number;
  /** CPU intra-op threads. */
  threads?: number;
  /** An unmerged LoRA adapter: its layout and flat params (replace later with setAdapter). */
  lora?: { layout: LoraLayout; params: Float32Array } | null;
  /** Tokenizer folder when it differs from the model's (an extended tokenizer with new tokens). */
  tokenizerDir?: string;
  /**
   * The weight source to build from (the trainer's: QLoRA's NF4 codes); on ep 'gpu' generation then reads
   * the very buffers the train step uploaded. Default: the model's weights as they are.
   */
  src?: WeightSource;
  /**
   * ep 'gpu': pick each next token on the GPU (backends/webgpu/sample.ts), reading back its id (4 bytes)
   * instead of the logits row; the same token as the host sampler with the same draw. Default true.
   */
  gpuSampling?: boolean;
}

export interface GenerateOptions extends Partial<SamplingOptions> {
  /** New tokens at most (default 128). */
  maxTokens?: number;
  /** Stop when the text contains one of these (the stop string is not part of the result). */
  stopStrings?: string[];
  /** Token ids that end the output besides the model's EOS ids (e.g. the template's end-of-turn). */
  stopIds?: number[];
  /** Do not stop on the model's EOS ids (benchmarks). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /** Called for each token as it is produced (same events as stream()). */
  onToken?: (ev: TokenEvent) => void;
}

export interface TokenEvent {
  /** 0-based index of the new token. */
  index: number;
  id: number;
  /** Text that became final with this token (may be '' while a multi-byte character or a stop string is pending). */
  text: string;
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'capacity' | 'cancelled';

export interface GenerateResult {
  text: string;
  /** Generated ids (the stop id included when it ended the output). */
  ids: number[];
  finish: FinishReason;
  promptTokens: number;
  timings: { prefillMs: number; decodeMs: number; prefillTokensPerSecond: number; decodeTokensPerSecond: number };
  /**
   * ep 'gpu': where the tokens were picked. 'gpu': by the GPU sampler, except `hostPicks` tokens whose draw
   * sat within rounding of a boundary (the host decided from the logits row, with the same draw); 'host':
   * every token from the logits row, `reason` says why. `readbackBytes`: bytes read back for this generation.
   */
  sampling?: { on: 'gpu' | 'host'; reason?: string; hostPicks: number; readbackBytes: number };
}

interface Shared {
  config: ModelConfig;
  layout: WeightsLayout;
  weights: ModelWeights;
}

export class Generator {
  /** Tokens now in the cache. */
  length = 0;
  private caches = new Map<string, ort.Tensor>();
  /** Token ids <-> logit columns (new-token rows of an extended tokenizer come after the base V). */
  readonly rows: TokenRows;
  /** Length of the logits returned by prefill/decode: indexed by token id. */
  readonly vocab: number;
  private params: ort.Tensor | null = null;
  private disposed = false;
  /** The weights the graph reads and the adapter's values, to name a broken tensor when the logits are NaN. */
  private weights: ModelWeights | null = null;
  private adapterValues: Float32Array | null = null;

  private constructor(
    readonly config: ModelConfig,
    readonly tokenizer: LatheTokenizer | null,
    readonly ep: EpName | 'gpu',
    readonly capacity: number,
    /** Prefill chunk: the prompt runs in pieces of at most this many tokens. */
    readonly chunk: number,
    /** One step graph with a symbolic token count T: prefill pieces and decode steps share one session. */
    private readonly graph: StepGraph,
    private readonly session: EngineSession | null,
    private readonly lora: LoraLayout | null,
    private readonly upload: EngineSession | null,
    private readonly owned: ModelWeights | null,
    /** Sampling defaults from generation_config.json over transformers' defaults. */
    readonly defaults: SamplingOptions,
    /** ep 'gpu': the step graph's programs on Lathe's GPU backend (then `session` is null). */
    private readonly gpu: GpuStepPrograms | null = null,
    private readonly gpuSampling = true,
  ) {
    this.rows = new TokenRows(config.vocabSize, lora?.newRows);
    this.vocab = Math.max(config.vocabSize, ...(lora?.newRows?.ids.map((id) => id + 1) ?? []));
  }

  /** Opens a model folder (weights referenced in place) and builds both sessions. */
  static async open(modelDir: string, opts: GeneratorOptions = {}): Promise<Generator> {
    const { config, layout, weights } = await openModel(modelDir);
    try {
      return await Generator.create({ config, layout, weights }, modelDir, opts, true);
    } catch (e) {
      await weights.close();
      throw e;
    }
  }

  /** From an already opened model (the trainer's); the caller keeps ownership of the weights unless `own`. */
  static async create(m: Shared, modelDir: string, opts: GeneratorOptions = {}, own = false): Promise<Generator> {
    const { config, layout, weights } = m;
    const ep = opts.ep ?? 'cpu';
    const capacity = Math.min(opts.capacity ?? 512, config.maxPositions);
    if (!Number.isInteger(capacity) || capacity < 2) {
      throw new UserError('generate.capacity', `The context for generation must hold at least 2 tokens (got ${capacity}).`, 'Ask for more context, or use a model with more positions.');
    }
    const chunk = Math.max(1, Math.min(opts.chunk ?? 128, capacity));
    const lora = opts.lora?.layout ?? null;
    if (opts.lora && opts.lora.params.length !== opts.lora.layout.size) {
      throw new UserError('generate.adapter', `The adapter has ${opts.lora.params.length} values but its layout needs ${opts.lora.layout.size}.`, 'Use the adapter trained for this model.');
    }
    const src = opts.src ?? openWeightSource(weights);
    const tokDir = opts.tokenizerDir ?? modelDir;
    const tokenizer = existsSync(path.join(tokDir, 'tokenizer.json')) ? LatheTokenizer.fromDir(tokDir) : null;
    if (ep === 'gpu') {
      const gpu = await GpuStepPrograms.create(config, layout, src, lora, capacity, chunk);
      const gen = new Generator(config, tokenizer, ep, capacity, chunk, gpu.graph, null, lora, null,
        own ? weights : null, readGenerationDefaults(modelDir), gpu, opts.gpuSampling ?? true);
      gen.weights = weights;
      try {
        if (opts.lora) await gen.setAdapter(opts.lora.params);
      } catch (e) {
        await gpu.dispose();
        throw e;
      }
      return gen;
    }
    const graph = await buildStepGraph(config, layout, src, lora, { chunk: 'dynamic', capacity });
    const sessionOpts = (g: StepGraph) => ({
      ep, threads: opts.threads, externalDataDir: src.dir,
      gpuOutputs: ep === 'webgpu' ? g.cache.map((c) => c.output) : undefined,
    });
    const session = await EngineSession.create(graph.model, sessionOpts(graph));
    const upload = ep === 'webgpu' && lora
      ? await EngineSession.create(identityModel('upload_params', [{ name: 'params', type: 'float32', shape: [lora.size] }]), { ep, gpuOutputs: true, optLevel: 'disabled' })
      : null;
    const gen = new Generator(config, tokenizer, ep, capacity, chunk, graph, session, lora, upload,
      own ? weights : null, readGenerationDefaults(modelDir));
    gen.weights = weights;
    if (opts.lora) await gen.setAdapter(opts.lora.params);
    return gen;
  }

  /** Replaces the adapter's values (e.g. the trainer's current params). */
  async setAdapter(params: Float32Array): Promise<void> {
    if (!this.lora) throw new Error('Generator.setAdapter: this generator was built without a LoRA layout.');
    if (params.length !== this.lora.size) throw new Error(`Generator.setAdapter: ${params.length} values for a layout of ${this.lora.size}.`);
    if (this.gpu) {
      this.adapterValues = Float32Array.from(params);
      await this.gpu.setParams(this.adapterValues);
      return;
    }
    const host = new ort.Tensor('float32', Float32Array.from(params), [params.length]);
    this.adapterValues = host.data as Float32Array;
    const old = this.params;
    if (this.upload) {
      const out = await this.upload.runOrt({ in0: host });
      this.params = out['out0']!;
    } else {
      this.params = host;
    }
    if (old && old.location === 'gpu-buffer') old.dispose();
  }

  /** Tokenizes text as plain text (with BOS when the tokenizer adds one). */
  async encode(text: string, addSpecialTokens = true): Promise<number[]> {
    if (!this.tokenizer) throw new UserError('generate.noTokenizer', 'This model folder has no tokenizer.json, so text cannot be turned into tokens.', 'Copy the tokenizer files into the model folder.');
    return (await this.tokenizer.encode(text, { addSpecialTokens })).ids;
  }

  /** Runs the prompt from position 0 (the cache restarts) and returns the last position's logits [V]. */
  async prefill(ids: number[]): Promise<Float32Array> {
    this.checkPrompt(ids);
    this.length = 0;
    let logits: Float32Array = new Float32Array(0);
    for (let s = 0; s < ids.length; s += this.chunk) logits = await this.step(ids.slice(s, s + this.chunk));
    return logits;
  }

  /**
   * ep 'gpu': why the next tokens are picked on the host from the logits row (null: on the GPU, reading
   * back 4 bytes a token).
   */
  get gpuSamplingOff(): string | null {
    if (!this.gpu) return 'not on the GPU backend';
    if (!this.gpuSampling) return 'GPU sampling is turned off (gpuSampling: false)';
    if (this.rows.active) return 'the adapter adds new-token rows, whose logit columns are mapped to ids on the host';
    return this.gpu.samplingBlocker;
  }

  private checkPrompt(ids: number[]): void {
    if (ids.length === 0) throw new UserError('generate.emptyPrompt', 'The prompt is empty.', 'Type a prompt (or start from the BOS token).');
    if (ids.length >= this.capacity) {
      throw new UserError('generate.tooLong', `The prompt has ${ids.length} tokens; this generator holds ${this.capacity} positions in all.`, 'Shorten the prompt or raise the context length.');
    }
    const bad = ids.find((i) => !Number.isInteger(i) || !this.rows.has(i));
    if (bad !== undefined) throw new UserError('generate.badId', `Token id ${bad} is outside the model's vocabulary (0..${this.config.vocabSize - 1}${this.rows.active ? ' and its new tokens' : ''}).`, 'Use the tokenizer the model (or adapter) was trained with.');
  }

  /** prefill() with the first new token picked on the GPU (stream() on ep 'gpu'). */
  private async prefillPick(ids: number[], sampler: Sampler, picks: { host: number }): Promise<number> {
    this.checkPrompt(ids);
    this.length = 0;
    const last = Math.floor((ids.length - 1) / this.chunk) * this.chunk;
    for (let s = 0; s < last; s += this.chunk) {
      const { feeds, n, start } = this.feedsFor(ids.slice(s, s + this.chunk));
      await this.gpu!.advance(n, start, hostFeeds(feeds));
      this.length = start + n;
    }
    return this.stepPick(ids.slice(last), sampler, picks, true);
  }

  /**
   * One step whose next token is picked on the GPU with the sampler's draw; where the GPU cannot decide
   * exactly (a draw within rounding of a boundary, a non-finite logit) the logits row is read back and the
   * host sampler decides with the same draw, so the token is always the host sampler's.
   */
  private async stepPick(ids: number[], sampler: Sampler, picks: { host: number }, checkFinite: boolean): Promise<number> {
    const { feeds, n, start } = this.feedsFor(ids);
    const u = sampler.draw(), o = sampler.opts;
    const got = await this.gpu!.runSampled(n, start, hostFeeds(feeds), {
      greedy: o.greedy, temperature: o.temperature, topK: o.topK, topP: o.topP, repetitionPenalty: o.repetitionPenalty, u,
    }, sampler.seenIds);
    this.length = start + n;
    if (got >= 0) {
      sampler.remember(got);
      return got;
    }
    picks.host++;
    const logits = await this.gpu!.readLogits();
    if (checkFinite && this.weights && logits.some((x) => Number.isNaN(x) || x === Number.POSITIVE_INFINITY)) {
      throw await nonFiniteOutputError(this.weights, 'the next-token logits', this.adapterValues ?? undefined);
    }
    return sampler.nextWith(logits, u);
  }

  /** Appends one token and returns the logits [V] for the next position. */
  async decode(id: number): Promise<Float32Array> {
    if (this.length >= this.capacity) throw new Error(`Generator.decode: the cache is full (${this.capacity} positions).`);
    return this.step([id]);
  }

  /** Streams new tokens for a prompt; the return value is the whole result. */
  async *stream(promptIds: number[], opts: GenerateOptions = {}): AsyncGenerator<TokenEvent, GenerateResult> {
    const sampling: SamplingOptions = { ...this.defaults };
    for (const k of Object.keys(DEFAULT_SAMPLING) as (keyof SamplingOptions)[]) {
      if (opts[k] !== undefined) (sampling as unknown as Record<string, unknown>)[k] = opts[k];
    }
    // asking for a temperature, top-k or top-p means sampling, unless greedy is said explicitly
    if (opts.greedy === undefined && (opts.temperature !== undefined || opts.topK !== undefined || opts.topP !== undefined)) sampling.greedy = false;
    const maxTokens = opts.maxTokens ?? 128;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new UserError('generate.maxTokens', `Max tokens must be a whole number ≥ 1 (got ${maxTokens}).`);
    const sampler = new Sampler(sampling, promptIds);
    const stopIds = new Set<number>(opts.stopIds ?? []);
    if (!opts.ignoreEos) {
      for (const id of this.config.eosTokenIds) stopIds.add(id);
      if (this.tokenizer?.eosId !== undefined) stopIds.add(this.tokenizer.eosId);
    }
    const stops = (opts.stopStrings ?? []).filter((s) => s.length > 0);
    const out: number[] = [];
    let text = '', emitted = 0;
    let finish: FinishReason = 'length';
    const t0 = performance.now();
    // ep 'gpu': the next token is picked on the GPU (its id comes back), else on the host from the logits row
    const offGpu = this.gpu ? this.gpuSamplingOff : null;
    const picks = { host: 0 }, bytes0 = this.gpu?.readbackBytes ?? 0;
    let logits: Float32Array = new Float32Array(0), next = -1;
    if (this.gpu && offGpu === null) {
      next = await this.prefillPick(promptIds, sampler, picks);
    } else {
      logits = await this.prefill(promptIds);
      // Masked columns may be -Infinity by design; a NaN (or +Inf) means broken weights or adapter.
      if (this.weights && logits.some((x) => Number.isNaN(x) || x === Number.POSITIVE_INFINITY)) {
        throw await nonFiniteOutputError(this.weights, 'the next-token logits', this.adapterValues ?? undefined);
      }
    }
    const t1 = performance.now();
    for (let i = 0; i < maxTokens; i++) {
      if (opts.signal?.aborted) { finish = 'cancelled'; break; }
      const id = next >= 0 ? next : sampler.next(logits);
      out.push(id);
      if (stopIds.has(id)) {
        finish = 'eos';
        break;
      }
      text = this.tokenizer ? await this.tokenizer.decode(out, { skipSpecialTokens: true }) : '';
      const hit = firstStop(text, stops);
      if (hit >= 0) {
        text = text.slice(0, hit);
        finish = 'stop';
        break;
      }
      // hold back an unfinished character and a tail that could still become a stop string
      const safe = Math.min(text.endsWith('\uFFFD') ? text.lastIndexOf('\uFFFD') : text.length, text.length - pendingStop(text, stops));
      const ev: TokenEvent = { index: i, id, text: safe > emitted ? text.slice(emitted, safe) : '' };
      emitted = Math.max(emitted, safe);
      opts.onToken?.(ev);
      yield ev;
      if (i === maxTokens - 1) break;
      if (this.length >= this.capacity) { finish = 'capacity'; break; }
      if (next >= 0) next = await this.stepPick([id], sampler, picks, false);
      else logits = await this.decode(id);
    }
    if (finish === 'eos' && this.tokenizer) text = await this.tokenizer.decode(out.slice(0, -1), { skipSpecialTokens: true });
    if (emitted < text.length) {
      const ev: TokenEvent = { index: out.length - 1, id: out[out.length - 1] ?? -1, text: text.slice(emitted) };
      opts.onToken?.(ev);
      yield ev;
    }
    const t2 = performance.now();
    const decodeSteps = Math.max(0, out.length - 1);
    return {
      text, ids: out, finish, promptTokens: promptIds.length,
      timings: {
        prefillMs: t1 - t0, decodeMs: t2 - t1,
        prefillTokensPerSecond: promptIds.length / Math.max((t1 - t0) / 1000, 1e-9),
        decodeTokensPerSecond: decodeSteps / Math.max((t2 - t1) / 1000, 1e-9),
      },
      ...(this.gpu ? {
        sampling: {
          on: offGpu === null ? 'gpu' as const : 'host' as const, ...(offGpu === null ? {} : { reason: offGpu }),
          hostPicks: offGpu === null ? picks.host : out.length, readbackBytes: this.gpu.readbackBytes - bytes0,
        },
      } : {}),
    };
  }

  /** stream() collected: the whole result (tokens still go to opts.onToken as they come). */
  async generate(promptIds: number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
    const it = this.stream(promptIds, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.caches.values()) if (t.location === 'gpu-buffer') t.dispose();
    this.caches.clear();
    if (this.params?.location === 'gpu-buffer') this.params.dispose();
    await this.session?.dispose();
    await this.gpu?.dispose();
    await this.upload?.dispose();
    await this.owned?.close();
  }

  /** One run of a step graph over `ids` at positions [length, length + n); returns the last token's logits. */
  private async step(ids: number[]): Promise<Float32Array> {
    const { feeds, n, start } = this.feedsFor(ids);
    const cols = this.gpu ? await this.gpu.run(n, start, hostFeeds(feeds)) : await this.runOrt(feeds);
    this.length = start + n;
    if (!this.rows.active) return Float32Array.from(cols);
    // columns -> token ids: base columns, then each new token's column at its id (gaps: -inf)
    const V = this.config.vocabSize;
    const byId = new Float32Array(this.vocab).fill(Number.NEGATIVE_INFINITY);
    byId.set(cols.subarray(0, V));
    for (const [id, j] of this.rows.index) byId[id] = cols[V + j]!;
    return byId;
  }

  /** The feeds of a step over `ids` at positions [length, length + n). */
  private feedsFor(ids: number[]): { feeds: Record<string, ort.Tensor>; n: number; start: number } {
    const graph = this.graph;
    if (this.disposed) throw new Error('Generator: used after dispose().');
    const cfg = this.config;
    const S = graph.shape.capacity;
    // ONNX: the graph's symbolic T, no padding; GPU backend: the program's fixed row count (pieces padded)
    const Tc = this.gpu ? this.gpu.rowsFor(ids.length) : ids.length;
    const n = ids.length, start = this.length;
    if (start + n > S) throw new Error(`Generator: ${start + n} positions do not fit the cache of ${S}.`);
    const G = cfg.numHeads / cfg.numKvHeads;
    const window = cfg.slidingWindow;
    const idArr = new BigInt64Array(Tc);
    const newIdx = new BigInt64Array(Tc), isNew = new Float32Array(Tc);
    ids.forEach((id, j) => {
      const [base, row, flag] = this.rows.input(id);
      idArr[j] = BigInt(base); newIdx[j] = BigInt(row); isNew[j] = flag;
    });
    const write = new Float32Array(S * Tc);
    const keep = new Float32Array(S).fill(1);
    for (let j = 0; j < n; j++) { write[(start + j) * Tc + j] = 1; keep[start + j] = 0; }
    // mask rows in the grouped order [G, Tc]: row (g, j) sees absolute positions s <= start + j
    // ('maskWindow': only the last `window` of them, for sliding-window layers)
    const makeMask = (window: number | null): Float32Array => {
      const mask = new Float32Array(G * Tc * S).fill(NEG_INF);
      for (let gi = 0; gi < G; gi++) {
        for (let j = 0; j < Tc; j++) {
          const row = (gi * Tc + j) * S;
          const p = start + Math.min(j, n - 1); // padded rows: like the last real one (their output is unused)
          for (let s = 0; s <= p; s++) if (window === null || p - s < window) mask[row + s] = 0;
        }
      }
      return mask;
    };
    const feeds: Record<string, ort.Tensor> = {
      ids: new ort.Tensor('int64', idArr, [1, Tc]),
      write: new ort.Tensor('float32', write, [S, Tc]),
      keep: new ort.Tensor('float32', keep, [S, 1]),
    };
    if (this.gpu) {
      // GPU step graph: the cache part sees old positions only (s < start), the new keys their own causal part
      const maskOld = (win: number | null): Float32Array => {
        const m = new Float32Array(G * Tc * S).fill(NEG_INF);
        for (let r = 0; r < G * Tc; r++) {
          const p = start + Math.min(r % Tc, n - 1);
          for (let s = 0; s < start; s++) if (win === null || p - s < win) m[r * S + s] = 0;
        }
        return m;
      };
      const maskNew = (win: number | null): Float32Array => {
        const m = new Float32Array(G * Tc * Tc).fill(NEG_INF);
        for (let r = 0; r < G * Tc; r++) {
          const jr = Math.min(r % Tc, n - 1);
          for (let j = 0; j <= jr; j++) if (win === null || jr - j < win) m[r * Tc + j] = 0;
        }
        return m;
      };
      for (const [name, win] of [['mask', null], ['maskWindow', window]] as const) {
        if (!graph.feeds.includes(name)) continue;
        feeds[name] = new ort.Tensor('float32', maskOld(win), [G * Tc, S]);
        feeds[`${name}New`] = new ort.Tensor('float32', maskNew(win), [G * Tc, Tc]);
      }
    } else {
      if (graph.feeds.includes('mask')) feeds['mask'] = new ort.Tensor('float32', makeMask(null), [G * Tc, S]);
      if (graph.feeds.includes('maskWindow')) feeds['maskWindow'] = new ort.Tensor('float32', makeMask(window), [G * Tc, S]);
    }
    const positions = Array.from({ length: Tc }, (_, j) => start + Math.min(j, n - 1));
    for (const [sfx, params] of [['', cfg.rope], ['Local', cfg.localRope]] as const) {
      if (!params || !graph.feeds.includes(`cos${sfx}`)) continue;
      const { cos, sin } = ropeRows(cfg, params, positions);
      feeds[`cos${sfx}`] = new ort.Tensor('float32', cos, [Tc, cfg.headDim]);
      feeds[`sin${sfx}`] = new ort.Tensor('float32', sin, [Tc, cfg.headDim]);
    }
    if (graph.feeds.includes('pos')) feeds['pos'] = new ort.Tensor('int64', BigInt64Array.from(positions, BigInt), [Tc]);
    if (graph.feeds.includes('pick')) { // (a dynamic graph always takes it)
      const pick = new Float32Array(Tc);
      pick[n - 1] = 1;
      feeds['pick'] = new ort.Tensor('float32', pick, [1, Tc]);
    }
    if (this.lora && !this.gpu) feeds['params'] = this.params!;
    if (graph.feeds.includes('newIdx')) {
      feeds['newIdx'] = new ort.Tensor('int64', newIdx, [1, Tc]);
      feeds['isNew'] = new ort.Tensor('float32', isNew, [Tc, 1]);
    }
    return { feeds, n, start };
  }

  /** The step on onnxruntime: caches fed from and kept as the session's tensors (GPU buffers on WebGPU). */
  private async runOrt(feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
    const graph = this.graph, session = this.session!;
    for (const c of graph.cache) feeds[c.input] = this.caches.get(c.input) ?? this.zeros(graph.shape.capacity);
    const out = await session.runOrt(feeds, ['logits', ...graph.cache.map((c) => c.output)]);
    const next = new Map<string, ort.Tensor>();
    for (const c of graph.cache) next.set(c.input, out[c.output]!);
    for (const [k, t] of this.caches) if (t.location === 'gpu-buffer' && next.get(k) !== t) t.dispose();
    this.caches = next;
    return out['logits']!.data as Float32Array;
  }

  private zeros(S: number): ort.Tensor {
    const { numKvHeads: K, headDim: D } = this.config;
    return new ort.Tensor('float32', new Float32Array(K * S * D), [1, K, S, D]);
  }
}

/** ort tensors built for a step -> the host tensors the GPU backend takes. */
function hostFeeds(feeds: Record<string, ort.Tensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(feeds)) out[k] = { type: t.type, dims: [...t.dims], data: t.data } as HostTensor;
  return out;
}

/** Index of the earliest stop string in text, or -1. */
function firstStop(text: string, stops: string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Length of the longest tail of text that is a proper prefix of a stop string. */
function pendingStop(text: string, stops: string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > best; k--) {
      if (text.endsWith(s.slice(0, k))) { best = k; break; }
    }
  }
  return best;
}

/** generation_config.json's sampling fields over transformers' defaults. */
export function readGenerationDefaults(modelDir: string): SamplingOptions {
  const d: SamplingOptions = { ...DEFAULT_SAMPLING };
  const file = path.join(modelDir, 'generation_config.json');
  if (!existsSync(file)) return d;
  try {
    const g = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const num = (k: string) => (typeof g[k] === 'number' ? (g[k] as number) : undefined);
    if (g['do_sample'] === true) d.greedy = false;
    d.temperature = num('temperature') ?? d.temperature;
    d.topK = num('top_k') ?? d.topK;
    d.topP = num('top_p') ?? d.topP;
    d.repetitionPenalty = num('repetition_penalty') ?? d.repetitionPenalty;
  } catch {
    // a damaged generation_config.json only loses its defaults
  }
  return d;
}
