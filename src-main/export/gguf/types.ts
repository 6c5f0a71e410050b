/** Results of a GGUF export (node-free: the contract and renderer read these shapes). */
import type { GgufQuant } from './format';

/** The check's numbers. Limits: see GGUF_LIMITS in export.ts. */
export interface GgufCheck {
  /** Held-out texts whose llama.cpp tokenization was compared with Lathe's (plain text, and with special tokens). */
  tokenizationTexts: number;
  /**
   * Where the held-out text came from: the run's validation split (decoded), the built-in paragraph when there is
   * none to read (the note says why), or given by the caller.
   */
  heldOut: { source: 'validation' | 'built-in' | 'given'; note: string };
  tokenizationEqual: boolean;
  /** First differing position and the two id runs, when they differ. */
  tokenizationDiff: string | null;
  /** Positions compared, max |Δp| over all of them and the whole vocabulary. */
  positions: number;
  maxAbsProbDiff: number;
  /** llama.cpp's greedy continuation and whether Lathe's merged model picks the same tokens. */
  greedy: number[];
  greedyEqual: boolean;
  /** Held-out perplexity of the file (llama.cpp) and of Lathe's merged model; relative increase. */
  perplexity: number;
  referencePerplexity: number;
  perplexityIncrease: number;
  /** Limits applied to this quant type. */
  maxProbDiffAllowed: number | null;
  maxPerplexityIncrease: number;
  passed: boolean;
  reason: string | null;
}

export interface GgufResult {
  file: string;
  quant: GgufQuant;
  fileBytes: number;
  tensors: number;
  /** Tensors per ggml type (e.g. { Q4_K: 10, Q6_K: 3, F32: 9 }). */
  types: Record<string, number>;
  /** llama.cpp pre-tokenizer written (tokenizer.ggml.pre). */
  pre: string;
  chatTemplate: boolean;
  modelfile: string;
  ollamaName: string;
  ollamaCreate: string;
  /** Whether an `ollama` binary is on the PATH (the app then offers registration). */
  ollamaAvailable: boolean;
  check: GgufCheck | null;
  warnings: string[];
  /** The adapter: LoRA layers merged, checkpoint folder and step; the written vocabulary (embedding rows). */
  loraModules: number;
  checkpoint: string;
  step: number;
  vocabSize: number;
  seconds: number;
}
