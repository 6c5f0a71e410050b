/**
 * The training loop: LoRA fine-tuning of a causal LM on a prepared dataset (packed blocks), with
 * gradient accumulation, LR schedule, validation on held-out domain and general text, checkpoints,
 * pause/stop, resume that continues exactly as an uninterrupted run, and non-finite loss handling.
 *
 * The model file knows nothing of the loop; the loop knows the model only through the step graph.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openModel } from '../models';
import { findNonFiniteWeight, nonFiniteWeightError } from '../models/finite';
import type { ModelConfig } from '../models/config';
import { openDataset } from '../../data/pack/dataset';
import { openEvalSession } from './infer';
import { Program, hostTensor, selectEp, type EpName, type HostTensor } from '../backends/onnx';
import { adamwScalars } from '../nn/layers';
import { buildEvalGraph, buildTrainGraph } from '../../engine/llm/train-graph';
import { WEBGPU_VOCAB_CHUNK_BYTES, type WeightSource } from '../../engine/llm/forward';
import { learningRateAt } from './schedule';
import { MetricsLog } from './metrics';
import { CheckpointManager, type Checkpoint } from './checkpoints';
import { describeMethod, resolveTrainConfig, type TrainConfig } from './config';
import { CancelledError, UserError, throwIfCancelled, type WorkOptions } from '../../util/progress';
import { writeFileAtomicSync } from '../../util/atomic';
import { Rng } from '../models/rng';
import { evaluateSplit, feedsOf, readBatch, scalarOf, type Batch } from './batch';
import { initTrainable, trainableLayout } from './trainable';
import { dropoutSeed } from '../llm/dropout';
import { PagedMoments, pagedProgramSpec, pagedSlots } from '../memory/paged';
import { TrainingSamples, type StepSamples } from '../generate/samples';
import { isOutOfMemory, refuseIfGpuPlanTooBig, refuseIfTooBig, trainOomContext, withOomGuidance } from '../memory/oom';
import { planFromTrainConfig } from '../memory/estimate';
import { buildPreferenceEvalGraph, buildPreferenceTrainGraph } from '../llm/preference-graph';
import { evaluatePairs, pairFeeds, preferenceLossOf, readPairs, RewardStats, type PairBatch } from './preference';
import { openWeightSource } from '../weights/source';
import { GpuProgram, GpuSession, chooseGpuBackend, closeGpu, gpuUnsupported, hasGpuDevice } from '../backends/webgpu';

export interface TrainHooks extends WorkOptions {
  /** Live metrics (one object per optimizer step / evaluation). */
  onMetric?: (m: Record<string, number>) => void;
  /** Pause point: resolves when the job may continue; throws CancelledError on stop. */
  checkpoint?: () => Promise<void>;
  /** Sample generations for cfg.samplePrompts (at the start and every cfg.sampleEvery steps). */
  onSamples?: (s: StepSamples) => void;
  /** The device the run trains on and why (then the reason is not also logged: the caller says it). */
  onDevice?: (d: { device: EpName | 'gpu'; reason: string }) => void;
}

export interface TrainSummary {
  runDir: string;
  /** 'gpu' = Lathe's own GPU backend (engine/backends/webgpu), else the onnxruntime EP. */
  ep: EpName | 'gpu';
  epReason: string;
  steps: number;
  resumedFrom: number | null;
  trainableParams: number;
  finalLoss: number | null;
  val: Record<string, { loss: number; ppl: number }>;
  valBefore: Record<string, { loss: number; ppl: number }>;
  tokensPerSecond: number;
  nodes: { forward: number; backward: number; total: number };
  stopped: boolean;
  bestCheckpoint: string | null;
  /** Checkpoints found damaged on resume (newest first), set aside; the run resumed from an earlier one. */
  damagedCheckpoints: Array<{ checkpoint: string; step: number; reason: string; movedTo: string; message: string }>;
}

export async function chooseEp(pref: Exclude<TrainConfig['ep'], 'gpu'>): Promise<{ ep: EpName; reason: string }> {
  if (pref !== 'auto') return selectEp({ prefer: pref });
  if (!process.env['LATHE_EP'] && !hasGpuDevice()) {
    return { ep: 'cpu', reason: 'Using CPU: no GPU device was found on this machine (a software Vulkan driver would be slower than the CPU).' };
  }
  return selectEp();
}

/** Deterministic permutation of 0..n-1 for an epoch. */
function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const rng = new Rng((seed * 1_000_003 + epoch * 7919) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = order[i]!; order[i] = order[j]!; order[j] = t;
  }
  return order;
}

export async function train(input: unknown, hooks: TrainHooks = {}): Promise<TrainSummary> {
  // allocation failures become a plain-words UserError with a configuration that fits (memory/oom.ts)
  let usedEp: EpName = 'cpu';
  return withOomGuidance(() => runTraining(input, hooks, (e) => (usedEp = e)), async () => trainOomContext(resolveTrainConfig(input), usedEp));
}

async function runTraining(input: unknown, hooks: TrainHooks, onEp: (ep: EpName) => void): Promise<TrainSummary> {
  const cfg = resolveTrainConfig(input);
  const report = (stage: string, fraction?: number, message?: string) => hooks.onProgress?.({ stage, fraction, message });
  const log = (m: string) => hooks.onLog?.('info', m);

  report('Opening the model');
  const { config: model, layout, weights } = await openModel(cfg.model);
  // BF16 and QLoRA weights are converted/quantized once into the weight cache and referenced there
  report('Preparing the weights');
  // bf16 compute: the f16-compute graph, its float16 values planned as bfloat16 on the GPU backend (PlanOptions.halfType)
  const bf16 = cfg.compute === 'bfloat16';
  const src: WeightSource = openWeightSource(weights, { quantize: cfg.quantization, compute: cfg.compute === 'bfloat16' ? 'float16' : cfg.compute });
  if (bf16) src.bf16Compute = true;
  const programs: { dispose(): Promise<void> }[] = [];
  let usedGpu = false;
  try {
    report('Opening the dataset');
    const ds = openDataset(cfg.dataset);
    const manifest = ds.manifest;
    const packed = manifest.kind === 'sft'; // several chat samples per row: per-sample attention and positions
    const pref = preferenceLossOf(cfg); // DPO / ORPO: pairs instead of rows, another graph, the same loop
    checkMethod(cfg, manifest.kind);
    const trainable = trainableLayout(model, layout, cfg);
    const { lora, rows } = trainable;
    const rowsAvailable = Math.max(model.vocabSize, ...(lora.newRows?.ids.map((id) => id + 1) ?? []));
    if (manifest.tokenizer.vocabSize > rowsAvailable) {
      throw new UserError('train.vocab', `The dataset was tokenized with ${manifest.tokenizer.vocabSize} tokens but the model has ${rowsAvailable} embeddings.`,
        cfg.tokenizer ? 'Prepare the dataset with the extended tokenizer you train with.' : 'Prepare the dataset with this model\'s tokenizer, or pass the extended tokenizer (tokenizer setting) it was made with.');
    }
    const trainSplit = ds.split('train');
    const valSplits = Object.keys(manifest.splits).filter((s) => s.startsWith('val')).map((s) => ds.split(s));
    const T = manifest.blockSize, B = cfg.batchSize, A = cfg.gradAccum;
    // what one batch item is: a block (row) of the dataset, or a pair (two rows) in preference tuning
    const units = pref ? Math.floor(trainSplit.rows / 2) : trainSplit.rows;
    if (pref && lora.newRows) throw new UserError('train.preferenceNewTokens', 'Preference tuning cannot train new-token rows yet.', 'Train the extended tokenizer\'s rows with SFT first, merge that adapter, then run DPO/ORPO on the merged model.');
    if (units < B) throw new UserError('train.tooLittleData', `The training split has ${units} ${pref ? 'pairs' : 'blocks'}, fewer than one batch (${B}).`, `Lower the batch size or add more ${pref ? 'pairs' : 'text'}.`);
    const stepsPerEpoch = Math.max(1, Math.floor(units / (B * A)));
    const totalSteps = cfg.maxSteps ?? Math.max(1, Math.round(cfg.epochs * stepsPerEpoch));

    const P = lora.size;
    // Lathe's own GPU backend runs the train step, validation and samples
    const gpuPick = await chooseGpuBackend(cfg.ep, gpuUnsupported(cfg), hasGpuDevice());
    const ep = gpuPick.use ? { ep: 'cpu' as EpName, reason: gpuPick.reason }
      : gpuPick.softwareOnly && !process.env['LATHE_EP'] ? { ep: 'cpu' as EpName, reason: 'Using CPU: the only GPU adapter is a software one (slower than the CPU).' }
        : await chooseEp(cfg.ep === 'gpu' ? 'auto' : cfg.ep);
    usedGpu = gpuPick.use;
    // onnxruntime's WebGPU EP: vocabulary matrices in chunks a shader can bind (forward.ts vocabRows)
    if (ep.ep === 'webgpu') src.vocabChunkBytes = WEBGPU_VOCAB_CHUNK_BYTES;
    onEp(gpuPick.use ? 'webgpu' : ep.ep); // (out-of-memory guidance: estimated as a GPU run)
    const epWhy = gpuPick.use ? ep.reason : cfg.ep === 'auto' && gpuPick.reason ? `${ep.reason} (GPU backend not used: ${gpuPick.reason})` : ep.reason;
    if (hooks.onDevice) hooks.onDevice({ device: gpuPick.use ? 'gpu' : ep.ep, reason: epWhy });
    else log(epWhy);
    if (cfg.compute === 'float16' && ep.ep === 'cpu' && !gpuPick.use) { // (the GPU backend runs f16 compute, evaluation included)
      throw new UserError('train.f16OnCpu', 'Half-precision (f16) compute needs a GPU; this run would use the CPU.', 'Set compute to float32, or choose a GPU device.');
    }
    if (bf16 && !gpuPick.use) {
      throw new UserError('train.bf16NeedsGpu', 'bf16 compute runs on Lathe\'s GPU backend only; this run would not use it.', 'Set compute to float32 or float16, or choose the gpu device.');
    }
    if (cfg.compute === 'float16' && cfg.quantization === 'nf4' && !gpuPick.use) { // (Lathe's GPU backend runs f16 over NF4)
      throw new UserError('train.f16Qlora', 'QLoRA with f16 compute runs on Lathe\'s GPU backend only; this run would not use it.', 'Set compute to float32, or choose the gpu device.');
    }

    // a run that cannot fit is refused before any conversion, graph or session (estimate and fix named)
    // (the GPU backend: its buffer plan is checked instead, when GpuProgram.create has planned it)
    if (!gpuPick.use) refuseIfTooBig(model, planFromTrainConfig(cfg, T), ep.ep);

    report('Building the training graph');
    // a gradient accumulator (gacc state, 4·P bytes) only where micro-batches accumulate: with gradAccum = 1 each
    // micro-batch's gradient feeds the optimizer step directly (the same numbers, bit for bit)
    const accumulate = A > 1;
    const gaccInit = (): Record<string, HostTensor> => (accumulate ? { gacc: hostTensor('float32', [P], new Float32Array(P)) } : {});
    const tg = pref
      ? await buildPreferenceTrainGraph(model, layout, gpuPick.use ? { ...src, bf16InPlace: true } : src, lora, { pairs: B, seqLen: T, dropout: cfg.lora.dropout, recompute: cfg.recompute, fused: gpuPick.use, accumulate }, pref, cfg.optim)
      : await buildTrainGraph(model, layout, gpuPick.use ? { ...src, bf16InPlace: true } : src, lora, { batch: B, seqLen: T, packed, dropout: cfg.lora.dropout, recompute: cfg.recompute, fused: gpuPick.use, accumulate }, cfg.optim);
    if (pref) log(`Preference tuning: ${describeMethod(cfg)}.`);
    log(`Training graph: ${tg.nodes.total} nodes (${tg.nodes.forward} forward, ${tg.nodes.backward} backward); ${P.toLocaleString('en-US')} trainable parameters (LoRA r=${lora.rank} on ${lora.modules.length} layers).`);
    // Paged optimizer: AdamW moments live in host memory and pass through the device each step.
    const spec = { get model() { return tg.model; }, state: tg.state, fetch: tg.fetch };
    const moments = cfg.pagedOptimizer ? new PagedMoments(P) : null;
    const prog = gpuPick.use
      ? await GpuProgram.create({ graph: tg.graph, ...(moments ? pagedSlots(tg) : { state: tg.state, fetch: tg.fetch }) }, {
        externalDataDir: src.dir,
        ...(bf16 ? { halfType: 'bfloat16' as const } : {}),
        checkPlan: (bytes, gpu) => refuseIfGpuPlanTooBig(model, bytes, { software: gpu.software, ...(moments ? { pagedLoraParams: P } : {}) }),
      })
      : await Program.create(moments ? pagedProgramSpec(spec) : spec, { ep: ep.ep, externalDataDir: src.dir });
    if (prog instanceof GpuProgram) log(`GPU backend: ${prog.info.dispatches} dispatches per micro-batch, ${(Object.values(prog.info.bytes).reduce((a, b) => a + b, 0) / 2 ** 20).toFixed(1)} MiB of GPU buffers.`);
    programs.push(prog);
    // validation (held-out rows or pairs): on the GPU backend with the step (same weight buffers: uploaded once)
    const prefEval = pref ? await openEvalSession((w) => buildPreferenceEvalGraph(model, layout, w, lora, { pairs: B, seqLen: T, fused: gpuPick.use }, pref), src, gpuPick.use ? 'gpu' : ep.ep,
      ['loss_sum', 'logps', ...(pref.method === 'dpo' ? ['ref_logps'] : [])]) : null;
    const evalSession = prefEval ?? await openEvalSession((w) => buildEvalGraph(model, layout, w, lora, { batch: B, seqLen: T, packed, fused: gpuPick.use }), src, gpuPick.use ? 'gpu' : ep.ep, ['loss_sum']);
    programs.push(evalSession);
    if (evalSession instanceof GpuSession) log(`GPU backend: validation runs on it too (${evalSession.program.info.dispatches} dispatches per batch), reading the step's weight buffers (${(evalSession.program.info.sharedWeightBytes / 2 ** 20).toFixed(1)} MiB shared, not uploaded again).`);

    mkdirSync(cfg.out, { recursive: true });
    writeFileAtomicSync(path.join(cfg.out, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
    const metrics = new MetricsLog(path.join(cfg.out, 'metrics.jsonl'));
    const ckpts = new CheckpointManager(path.join(cfg.out, 'checkpoints'), cfg.keepLast);

    // ---- start or resume ----
    let step = 0, adamSteps = 0, cursor = 0;
    let resumedFrom: number | null = null;
    const usable = await ckpts.latestUsable();
    const latest: Checkpoint | null = usable.checkpoint;
    // A damaged checkpoint (truncated file, unreadable state) is said, set aside, and the run resumes from the one before.
    const damagedCheckpoints: TrainSummary['damagedCheckpoints'] = [];
    for (const d of usable.damaged) {
      const name = path.basename(d.dir);
      const movedTo = await ckpts.setAside(d.dir);
      const message = `Checkpoint ${name} is damaged (${d.reason}); ${latest ? `resuming from ${path.basename(latest.dir)}` : 'no earlier checkpoint is usable, starting over'}. It was moved to ${path.basename(movedTo)}.`;
      damagedCheckpoints.push({ checkpoint: name, step: d.step, reason: d.reason, movedTo, message });
      hooks.onLog?.('warn', message);
    }
    if (latest) {
      checkResumable(latest, cfg, model, P);
      step = latest.state.step;
      adamSteps = Number(latest.state.extra?.['adamSteps'] ?? step);
      cursor = latest.state.dataPosition['cursor'] ?? 0;
      resumedFrom = step;
      const m = latest.tensors.get('m')!, v = latest.tensors.get('v')!;
      moments?.load(m, v);
      await prog.init({
        params: hostTensor('float32', [P], latest.tensors.get('params')!),
        ...(moments ? {} : { m: hostTensor('float32', [P], m), v: hostTensor('float32', [P], v) }),
        ...gaccInit(),
      });
      // The crashed attempt's records after this step are re-run now: drop them (atomically) so each step is recorded once.
      MetricsLog.truncateAfter(metrics.file, step);
      metrics.append({ kind: 'event', step, event: 'resumed' });
      log(`Resumed from the checkpoint at step ${step}.`);
    } else {
      // A fresh start in a folder a crashed attempt wrote to before its first checkpoint: its records go.
      if (existsSync(metrics.file)) MetricsLog.truncateAfter(metrics.file, -1);
      const zeros = () => hostTensor('float32', [P], new Float32Array(P));
      await prog.init({ params: hostTensor('float32', [P], await initTrainable(trainable, model, layout, weights, cfg)), ...(moments ? {} : { m: zeros(), v: zeros() }), ...gaccInit() });
    }

    const readParams = async () => (await prog.read(['params']))['params']!;
    const runEval = async (): Promise<Record<string, { loss: number; ppl: number }>> => {
      const params = await readParams();
      const out: Record<string, { loss: number; ppl: number }> = {};
      for (const s of valSplits) {
        // preference: loss and reward metrics of held-out pairs (no perplexity: the loss is not a token NLL)
        out[s.split] = pref ? { ppl: NaN, ...await evaluatePairs(prefEval!, s, params, B, T, rows, cfg.evalBlocks, pref) }
          : await evaluateSplit(evalSession, s, manifest, params, B, T, rows, cfg.evalBlocks);
      }
      return out;
    };
    const valRecord = (v: { loss: number; ppl: number }): Record<string, number> => {
      if (!pref) return { loss: v.loss, ppl: v.ppl };
      const { ppl: _unused, ...rest } = v;
      return rest;
    };
    const saveCheckpoint = async (valLoss: number | null) => {
      const st = await prog.read(moments ? ['params'] : ['params', 'm', 'v']);
      const tensors = new Map<string, Float32Array>([
        ['params', st['params']!.data as Float32Array],
        ['m', moments ? moments.m : st['m']!.data as Float32Array],
        ['v', moments ? moments.v : st['v']!.data as Float32Array],
      ]);
      const dir = await ckpts.save({ step, rng: { seed: cfg.seed }, dataPosition: { cursor }, valLoss, config: cfg, extra: { adamSteps, loraSize: P } }, tensors);
      metrics.append({ kind: 'event', step, event: 'checkpoint', dir: path.basename(dir) });
    };

    // generations for the user's sample prompts with the current adapter (engine/generate; cost in the log)
    const sampler = cfg.sampleEvery > 0 && cfg.samplePrompts.length
      ? await TrainingSamples.create(cfg, lora, { config: model, layout, weights }, { chat: packed || !!pref, ep: gpuPick.use ? 'gpu' : ep.ep, tokenizerDir: cfg.tokenizer, ...(gpuPick.use ? { src } : {}) }) : null;
    if (sampler) programs.push(sampler);
    const runSamples = async () => {
      const r = await sampler!.at(step, (await readParams()).data as Float32Array);
      log(`Samples at step ${step}: ${r.samples.length} prompts in ${Math.round(r.ms)} ms${r.buildMs ? ` (+${Math.round(r.buildMs)} ms to build the generation sessions)` : ''}.`);
      hooks.onSamples?.(r);
    };
    if (sampler && resumedFrom === null) await runSamples();

    for (const d of damagedCheckpoints) metrics.append({ kind: 'event', step, event: 'checkpoint-damaged', checkpoint: d.checkpoint, reason: d.reason });
    const valBefore = resumedFrom === null && valSplits.length ? await runEval() : {};
    if (resumedFrom === null) {
      for (const [k, v] of Object.entries(valBefore)) metrics.append({ kind: 'val', step: 0, split: k, ...valRecord(v) });
    }

    // ---- loop ----
    const rowsPerEpoch = units;
    let orderEpoch = -1;
    let order: Uint32Array = new Uint32Array(0);
    const nextRow = (): number => {
      const epoch = Math.floor(cursor / rowsPerEpoch);
      if (epoch !== orderEpoch) { order = epochOrder(rowsPerEpoch, cfg.seed, epoch); orderEpoch = epoch; }
      const r = order[cursor % rowsPerEpoch]!;
      cursor++;
      return r;
    };
    let lastLoss: number | null = null;
    let bad = 0;
    let lastVal: Record<string, { loss: number; ppl: number }> = {};
    let stopped = false;
    let outOfMemory: unknown = null;
    const t0 = Date.now();
    let tokensSeen = 0;
    const apply1 = hostTensor('bool', [], new Uint8Array([1]));
    const apply0 = hostTensor('bool', [], new Uint8Array([0]));
    const one = hostTensor('float32', [], [1]);
    try {
      while (step < totalSteps) {
        await hooks.checkpoint?.();
        throwIfCancelled(hooks.signal);
        const stepStart = Date.now();
        const micro: (Batch | PairBatch)[] = [];
        for (let a = 0; a < A; a++) {
          const idx = Array.from({ length: B }, nextRow);
          micro.push(pref ? readPairs(trainSplit, idx, T, rows) : readBatch(trainSplit, manifest, idx, rows));
        }
        const count = micro.reduce((s, b) => s + b.count, 0);
        const rewards = pref ? new RewardStats(pref) : null;
        const lr = learningRateAt(step, { ...cfg.schedule, lr: cfg.optim.lr, totalSteps });
        const adam = hostTensor('float32', [3], adamwScalars({ ...cfg.optim, lr }, adamSteps + 1, lr));
        const invCount = hostTensor('float32', [], new Float32Array([1 / Math.max(1, count)]));
        let lossSum = 0, gradNorm = NaN;
        for (let a = 0; a < A; a++) {
          const seedFeed: Record<string, HostTensor> = cfg.lora.dropout > 0 ? { dropout_seed: hostTensor('float32', [], [dropoutSeed(cfg.seed, step, a)]) } : {};
          if (cfg.recompute) seedFeed['recompute_one'] = one;
          const feeds = pref ? pairFeeds(micro[a] as PairBatch, B, T) : feedsOf(micro[a] as Batch, B, T);
          const raw = await prog.step({ ...feeds, apply: a === A - 1 ? apply1 : apply0, invCount, adam, ...seedFeed, ...(moments?.feeds() ?? {}) });
          const out = moments ? moments.take(raw) : raw;
          lossSum += scalarOf(out['loss_sum']);
          rewards?.add(micro[a] as PairBatch, out['logps']!.data as Float32Array, out['ref_logps'] ? out['ref_logps'].data as Float32Array : null);
          if (a === A - 1) gradNorm = scalarOf(out['grad_norm']);
        }
        step++;
        const loss = lossSum / Math.max(1, count);
        const seconds = (Date.now() - stepStart) / 1000;
        const stepTokens = (pref ? 2 : 1) * B * T * A;
        tokensSeen += stepTokens;
        if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
          // Non-finite on the very first step of a fresh adapter: the model itself is broken (NaN/Inf weights), not the training.
          if (adamSteps === 0 && resumedFrom === null) {
            const broken = await findNonFiniteWeight(weights);
            if (broken) throw nonFiniteWeightError(broken);
          }
          bad++;
          metrics.append({ kind: 'event', step, event: 'nonfinite', loss: String(loss), gradNorm: String(gradNorm) });
          hooks.onLog?.('warn', `Step ${step}: the loss was not a finite number; the update was skipped (weights unchanged).`);
          if (bad >= cfg.maxBadSteps) {
            const kept = ckpts.list().at(-1);
            throw new UserError('train.diverged',
              `Training produced non-finite losses ${bad} steps in a row, so it was stopped. ${kept ? `The last checkpoint (step ${kept.step}) is kept.` : 'No checkpoint had been written yet, so there is nothing to resume from.'}`,
              kept ? 'Lower the learning rate (e.g. halve it) or the gradient clip, then resume.' : 'Lower the learning rate (e.g. halve it) or the gradient clip, and start the run again.');
          }
          continue;
        }
        bad = 0;
        adamSteps++;
        lastLoss = loss;
        const elapsed = (Date.now() - t0) / 1000;
        const m: Record<string, number> = {
          step, loss, ...(pref ? rewards!.result() : { ppl: Math.exp(loss) }), lr, gradNorm, tokensPerSecond: stepTokens / Math.max(seconds, 1e-9),
          memoryMB: process.memoryUsage().rss / 2 ** 20, etaSeconds: (elapsed / (step - (resumedFrom ?? 0))) * (totalSteps - step),
        };
        metrics.append({ kind: 'train', ...m });
        hooks.onMetric?.(m);
        report('Training', step / totalSteps, `Step ${step} of ${totalSteps} — loss ${loss.toFixed(4)}`);
        const evalNow = cfg.evalEvery > 0 && step % cfg.evalEvery === 0;
        if (evalNow && valSplits.length) {
          lastVal = await runEval();
          for (const [k, v] of Object.entries(lastVal)) {
            metrics.append({ kind: 'val', step, split: k, ...valRecord(v) });
            hooks.onMetric?.({ step, ...Object.fromEntries(Object.entries(valRecord(v)).map(([n, x]) => [`val_${k}_${n}`, x])) });
          }
        }
        if (sampler && step % cfg.sampleEvery === 0) await runSamples();
        if (step % cfg.checkpointEvery === 0 && step < totalSteps) await saveCheckpoint(primaryVal(lastVal, evalNow));
      }
    } catch (err) {
      // out of memory: keep what the finished steps trained (checkpoint below), then report it
      if (isOutOfMemory(err)) outOfMemory = err;
      else if (!(err instanceof CancelledError)) throw err;
      stopped = true;
    }
    // final (or stop) evaluation and checkpoint
    // (skipped when the last step was just evaluated: the same weights would give the same numbers twice)
    const evaluatedLastStep = cfg.evalEvery > 0 && step % cfg.evalEvery === 0 && step > (resumedFrom ?? 0);
    if (valSplits.length && !stopped && !evaluatedLastStep) {
      lastVal = await runEval();
      for (const [k, v] of Object.entries(lastVal)) metrics.append({ kind: 'val', step, split: k, ...valRecord(v) });
    }
    if (step > (resumedFrom ?? 0) || !latest) await saveCheckpoint(stopped ? null : primaryVal(lastVal, true));
    if (outOfMemory) throw outOfMemory;
    const best = await ckpts.best();
    const summary: TrainSummary = {
      runDir: cfg.out, ep: gpuPick.use ? 'gpu' : ep.ep, epReason: ep.reason, steps: step, resumedFrom, trainableParams: P, finalLoss: lastLoss,
      val: lastVal, valBefore, tokensPerSecond: tokensSeen / Math.max((Date.now() - t0) / 1000, 1e-9),
      nodes: tg.nodes, stopped, bestCheckpoint: best?.dir ?? null, damagedCheckpoints,
    };
    writeFileSync(path.join(cfg.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    return summary;
  } finally {
    for (const p of programs) await p.dispose();
    if (usedGpu) await closeGpu(); // Dawn keeps the process alive while open
    await weights.close();
  }
}

function primaryVal(val: Record<string, { loss: number }>, fresh: boolean): number | null {
  if (!fresh) return null;
  return val['val-domain']?.loss ?? Object.values(val)[0]?.loss ?? null;
}

function checkResumable(c: Checkpoint, cfg: TrainConfig, model: ModelConfig, P: number): void {
  const saved = c.state.config as Partial<TrainConfig> | undefined;
  const size = Number(c.state.extra?.['loraSize'] ?? -1);
  const same = saved && saved.model === cfg.model && saved.dataset === cfg.dataset && JSON.stringify(saved.lora) === JSON.stringify(cfg.lora)
    && saved.tokenizer === cfg.tokenizer && (saved.quantization ?? 'none') === cfg.quantization
    && saved.batchSize === cfg.batchSize && saved.gradAccum === cfg.gradAccum && saved.seed === cfg.seed && size === P
    && (saved.method ?? 'lm') === cfg.method && (cfg.method === 'lm' || JSON.stringify(saved.preference) === JSON.stringify(cfg.preference));
  if (!same) {
    throw new UserError('train.resumeMismatch', `The run folder ${cfg.out} holds checkpoints of a different setup (model, dataset, LoRA, quantization, tokenizer, batch, seed or method differ) for ${model.architecture}.`, 'Choose a new run folder, or use the same settings to resume.');
  }
}

/** The method must fit the dataset: pairs for DPO/ORPO, blocks or conversations for the next-token loss. */
function checkMethod(cfg: TrainConfig, kind: string): void {
  if (cfg.method !== 'lm' && kind !== 'preference') {
    throw new UserError('train.methodData', `${cfg.method.toUpperCase()} needs a preference dataset (prompt, chosen, rejected pairs), but ${cfg.dataset} holds ${kind === 'sft' ? 'conversations' : 'plain text'}.`,
      'Prepare your pairs with `lathe prepare --preference` (docs/preference.md), or train with method "lm".');
  }
  if (cfg.method === 'lm' && kind === 'preference') {
    throw new UserError('train.methodData', `${cfg.dataset} holds preference pairs; they are learned with DPO or ORPO, not the next-token loss.`, 'Pass --method dpo (or orpo).');
  }
}

