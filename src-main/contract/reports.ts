/**
 * The shapes of service reports as the renderer reads them: plain interfaces with only the fields the
 * wizards show. They mirror types in Node-only modules (data/prepare, tokenizer, templates), which the
 * renderer must not import even for types; the services check assignability to these at compile time
 * (see services/jobs/kinds/prepare.ts, tokenizer.ts and services/templates.ts).
 */

export interface ExampleView { source: string; reason: string; excerpt: string }

export interface FilterStatsView {
  name: string; label: string; enabled: boolean; docsIn: number; docsOut: number; removed: number; modified: number;
  charsIn: number; charsOut: number; reasons: Record<string, number>; examples: ExampleView[];
}

export interface CorpusReportView {
  import: {
    filesRead: number; filesSkipped: { path: string; reason: string }[]; docs: number; chars: number; repairedChars: number;
    /** Skipped lines / records (first 100) and their count (absent in reports written before they existed). */
    badLines?: { path: string; line: number; error: string }[]; badLineCount?: number;
    /** What was repaired, split or guessed while keeping the text (first 200) and the count. */
    notes?: { path: string; line?: number; what: string }[]; noteCount?: number;
  };
  filters: FilterStatsView[];
  languages: Record<string, number>;
  docsIn: number; docsOut: number; charsIn: number; charsOut: number; trainDocs: number; valDocs: number;
  samples: ExampleView[];
}

export interface PrepareReportView {
  mode: 'pretrain' | 'sft' | 'preference';
  out: string;
  corpora: { domain: CorpusReportView; general?: CorpusReportView };
  mix?: { ratio: number; achievedRatio: number; domainRepeat: number; generalRepeat: number; measured?: { ratio: number }; warnings: string[] };
  sft?: { formats: Record<string, number>; dropped: number; truncated: number };
  /** Preference pairs (data/preference): formats seen, pairs kept, truncation and skip counts. */
  preference?: {
    formats: Record<string, number>; pairs: number; promptTruncated: number; completionTruncated: number;
    skipped: Record<'shape' | 'identical' | 'empty' | 'prompt' | 'template' | 'duplicate', number>;
    meanPromptTokens: number; meanCompletionTokens: number;
  };
  tokenizer?: { hash: string; vocabSize: number; eosId: number };
  blockSize?: number;
  splits: Record<string, { rows: number; tokens: number; docs: number }>;
  tokens: Record<string, number>;
  warnings: string[];
  seconds: number;
}

export interface CandidateView { rank: number; token: string; text: string; kind: 'merge' | 'char'; saving: number; cumulativeSaving: number }

export interface TextStatsView { texts: number; words: number; bytes: number; tokens: number; tokensPerWord: number; bytesPerToken: number }
export interface SetComparisonView { before: TextStatsView; after: TextStatsView; tokenChangePct: number; roundTripRegressions: number }
export interface TokenizerComparisonView {
  vocabBefore: number; vocabAfter: number; domain: SetComparisonView; general: SetComparisonView;
  topNewTokens: Array<{ id: number; token: string; count: number }>;
}

export interface InspectTokenView { id: number; token: string; special: boolean; start: number; end: number; train: 0 | 1; message: number }
export interface LintIssueView { code: string; severity: 'error' | 'warning' | 'info'; message: string; fix: string }

/** A GGUF export (src-main/export/gguf): file, tensor types, llama.cpp's check, Ollama. */
export interface GgufExportView {
  file: string; quant: string; fileBytes: number; types: Record<string, number>; pre: string; chatTemplate: boolean;
  modelfile: string; ollamaName: string; ollamaCreate: string; ollamaAvailable: boolean; warnings: string[];
  check: {
    tokenizationEqual: boolean; positions: number; maxAbsProbDiff: number; greedyEqual: boolean; perplexity: number;
    referencePerplexity: number; perplexityIncrease: number; maxProbDiffAllowed: number | null; maxPerplexityIncrease: number; passed: boolean;
    /** The held-out text: the run's validation split, or the built-in paragraph (the note says why). */
    heldOut?: { source: 'validation' | 'built-in' | 'given'; note: string };
  } | null;
}

export interface ExportResultView {
  format: 'merged' | 'peft' | 'gguf'; out: string; dtype: string; files: string[]; tensorBytes: number; tensors: number; loraModules: number;
  vocabSize: number; checkpoint: string; step: number; seconds: number;
  verification: { comparedVocab: number; maxAbsDiff: number; maxAbsRef: number; relError: number; tolerance: number; passed: boolean } | null;
  gguf?: GgufExportView;
}

/** The evaluation report (eval/report.ts EvalReport) as the Evaluation page reads it, with plain-words verdicts. */
export interface EvalReportView {
  run: string; checkpoint: string; step: number; model: string; dataset: string; createdAt: string; seconds: number;
  /** Where the report was made and why (the job's answer only; a report read back from its file has none). */
  device?: { device: string; reason: string };
  perplexity: Array<{
    split: string; before: { loss: number; ppl: number }; after: { loss: number; ppl: number }; tokens: number; change: number;
    /** What the held-out set is, in plain words ("your domain text", "general text"). */
    label: string;
    /** "domain" or "general". */
    kind: 'domain' | 'general';
  }>;
  forgetting: { split: string; change: number; warning: boolean } | null;
  verdict: {
    /** e.g. "Your domain text got 42% easier for the model: it learned." */
    learning: string | null;
    /** e.g. "General text got 3% worse: little forgetting." */
    forgetting: string | null;
    tone: 'ok' | 'warn';
  };
  generations: Array<{ prompt: string; before: string; after: string }>;
  sft: null | {
    file: string; examples: number;
    bleu: { before: { score: number }; after: { score: number } };
    rougeL: { before: { fmeasure: number }; after: { fmeasure: number } };
    samples: Array<{ prompt: string; reference: string; before: string; after: string }>;
  };
}
