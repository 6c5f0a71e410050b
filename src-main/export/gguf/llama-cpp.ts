/**
 * llama.cpp through node-llama-cpp: the judge of our GGUF files (load, tokenize, next-token probabilities,
 * greedy continuation) and the runtime of `lathe chat --gguf`. The prebuilt binaries ship inside the npm
 * packages; we never build or download (build: 'never'). Verification runs on the CPU for reproducibility.
 */
import type { Llama, LlamaModel, LlamaContext, LlamaContextSequence, Token } from 'node-llama-cpp';
import { availableParallelism } from 'node:os';
import { UserError } from '../../util/progress';

/**
 * CPU threads for llama.cpp: one core left to the rest of the app (llama.cpp's threads spin while they wait,
 * so more threads than free cores is much slower, not faster).
 */
export function llamaThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism() - 1));
}

let cpuLlama: Promise<Llama> | null = null;

export async function getLlamaCpp(gpu: 'auto' | false = false): Promise<Llama> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const load = (): Promise<Llama> => getLlama({ gpu, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true, vramPadding: 0 })
    .catch((err: unknown) => {
      throw new UserError('gguf.llama-unavailable', `llama.cpp (node-llama-cpp) could not start on this machine: ${(err as Error).message}`,
        'Reinstall Lathe; the llama.cpp binaries for this platform may be missing.');
    });
  if (gpu !== false) return load();
  cpuLlama ??= load();
  return cpuLlama;
}

export interface LoadedGguf {
  model: LlamaModel;
  context: LlamaContext;
  sequence: LlamaContextSequence;
  dispose(): Promise<void>;
}

/** Loads a GGUF file into llama.cpp (CPU) with a small context. */
export async function loadGguf(file: string, contextSize = 256): Promise<LoadedGguf> {
  const llama = await getLlamaCpp(false);
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap: false });
  } catch (err) {
    throw new UserError('gguf.load-failed', `llama.cpp refused the GGUF file: ${(err as Error).message}`, 'This is a bug in Lathe\'s GGUF writer; please report it with the model name.');
  }
  const context = await model.createContext({ contextSize, threads: llamaThreads(), batchSize: contextSize, sequences: 1 });
  return {
    model, context, sequence: context.getSequence(),
    async dispose() { await context.dispose(); await model.dispose(); },
  };
}

/** llama.cpp's tokenization (special: whether control-token texts in `text` become their ids). */
export function llamaTokenize(g: LoadedGguf, text: string, special: boolean): number[] {
  return g.model.tokenize(text, special).map(Number);
}

/** Next-token probability distributions (softmax of the logits, full vocabulary) after each prefix of `ids`. */
export async function llamaNextProbs(g: LoadedGguf, ids: number[], vocab: number): Promise<Float32Array[]> {
  const seq = g.sequence;
  await seq.clearHistory();
  {
    const input = ids.map((t) => [t as Token, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] as const);
    const res = await seq.controlledEvaluate(input.map((x) => [x[0], x[1]] as [Token, typeof x[1]]));
    return res.map((r, i) => {
      const p = new Float32Array(vocab);
      const m = r?.next?.probabilities;
      if (!m) throw new Error(`llama.cpp returned no probabilities at position ${i}.`);
      for (const [tok, prob] of m) p[Number(tok)] = prob;
      return p;
    });
  }
}

/** Greedy continuation of `ids` by `n` tokens. */
export async function llamaGreedy(g: LoadedGguf, ids: number[], n: number): Promise<number[]> {
  const seq = g.sequence;
  await seq.clearHistory();
  {
    const out: number[] = [];
    for await (const t of seq.evaluate(ids as Token[], { temperature: 0 })) {
      out.push(Number(t));
      if (out.length >= n) break;
    }
    return out;
  }
}
