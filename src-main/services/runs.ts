/** Prepared datasets and training runs inside a project, read back for the wizards and the dashboard. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { DatasetSummary, RunDetail, RunSummary, TokenizerSummary } from '../contract/wizards';
import { EXTENSION_MANIFEST, type ExtensionManifest } from '../tokenizer';
import type { DatasetManifest } from '../data/pack/dataset';
import { MetricsLog } from '../engine/train/metrics';
import { CheckpointManager } from '../engine/train/checkpoints';
import { describeAdapterFolder } from '../engine/train/adapter-folder';
import { readRunSamples } from '../engine/generate/samples';
import { UserError } from '../util/progress';

function readJson<T>(file: string): T | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

function subdirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => path.join(dir, d.name));
}

export function listDatasets(project: string): DatasetSummary[] {
  const out: DatasetSummary[] = [];
  for (const dir of subdirs(path.join(project, 'datasets'))) {
    const m = readJson<DatasetManifest>(path.join(dir, 'manifest.json'));
    if (!m || m.format !== 'lathe-dataset') continue;
    const splits: DatasetSummary['splits'] = {};
    for (const [k, s] of Object.entries(m.splits)) splits[k] = { rows: s.rows, tokens: s.tokens, docs: s.docs };
    out.push({ dir, name: path.basename(dir), blockSize: m.blockSize, vocabSize: m.tokenizer.vocabSize, createdAt: m.createdAt, tokenizerHash: m.tokenizer.hash, splits, kind: m.kind });
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** Tokenizers extended in this project (the tokenizer wizard writes <project>/tokenizer/extended-N). */
export function listTokenizers(project: string): TokenizerSummary[] {
  const out: TokenizerSummary[] = [];
  for (const dir of subdirs(path.join(project, 'tokenizer'))) {
    const m = readJson<ExtensionManifest>(path.join(dir, EXTENSION_MANIFEST));
    if (!m || m.format !== 'lathe-tokenizer-extension') continue;
    const file = path.join(dir, 'tokenizer.json');
    if (!existsSync(file)) continue;
    // The same hash a prepared dataset records (data/tokenize.ts): sha256 of tokenizer.json's bytes.
    const hash = createHash('sha256').update(readFileSync(file)).digest('hex');
    out.push({ dir, name: path.basename(dir), added: m.newTokens.length, baseVocabSize: m.baseVocabSize, newVocabSize: m.newVocabSize, hash });
  }
  return out.sort((a, b) => a.added - b.added);
}

interface SummaryFile { steps: number; stopped: boolean }

/** A folder of another trainer (PEFT adapter, transformers Trainer checkpoint-N): listed with what it is. */
function foreignRun(dir: string): RunSummary | null {
  const info = describeAdapterFolder(dir);
  if (info.kind === 'lathe-run' || info.kind === 'lathe-checkpoint' || info.kind === 'unknown') return null;
  const adapter = info.kind !== 'hf-full-checkpoint';
  return {
    dir, name: path.basename(dir), startedAt: null, lastStep: info.step ?? 0, totalSteps: null,
    status: adapter ? 'finished' : 'empty',
    checkpoints: adapter ? [{ dir: info.dir, step: info.step ?? 0 }] : [],
    model: info.baseModel, dataset: null,
    source: info.kind === 'peft' ? 'peft' : adapter ? 'hf-trainer' : 'hf-full-model',
    note: adapter
      ? `${info.description} It was trained outside Lathe: it can be used for chat, evaluation and export, but not resumed.`
      : `${info.description} Use it as a model folder, not as an adapter.`,
  };
}

function summarize(dir: string): { run: RunSummary; records: RunDetail['records']; config: Record<string, unknown> | null } {
  const foreign = foreignRun(dir);
  if (foreign) return { run: foreign, records: [], config: null };
  const records = MetricsLog.read(path.join(dir, 'metrics.jsonl'));
  const config = readJson<Record<string, unknown>>(path.join(dir, 'config.json'));
  const summary = readJson<SummaryFile>(path.join(dir, 'summary.json'));
  const checkpoints = new CheckpointManager(path.join(dir, 'checkpoints')).list();
  const lastStep = records.reduce((m, r) => Math.max(m, r.step), 0);
  const totalSteps = typeof config?.['maxSteps'] === 'number' ? (config['maxSteps'] as number) : null;
  const status: RunSummary['status'] = summary ? (summary.stopped ? 'stopped' : 'finished') : records.length ? 'incomplete' : 'empty';
  const first = records[0]?.time;
  return {
    run: {
      dir, name: path.basename(dir), startedAt: typeof first === 'string' ? first : null, lastStep, totalSteps, status, checkpoints,
      model: typeof config?.['model'] === 'string' ? (config['model'] as string) : null,
      dataset: typeof config?.['dataset'] === 'string' ? (config['dataset'] as string) : null,
    },
    records, config,
  };
}

export function listRuns(project: string): RunSummary[] {
  return subdirs(path.join(project, 'runs'))
    .map((d) => ({ d, t: statSync(d).mtimeMs }))
    .sort((a, b) => b.t - a.t)
    .map(({ d }) => summarize(d).run);
}

export function readRun(runDir: string): RunDetail {
  if (!existsSync(runDir)) {
    throw new UserError('runs.missing', `There is no training run at ${runDir}.`, 'Pick a run from the list; it may have been moved or deleted.');
  }
  const { run, records, config } = summarize(runDir);
  const samples = readRunSamples(runDir).map((g) => ({ step: g.step, samples: g.samples.map((x) => ({ prompt: x.prompt, text: x.text })) }));
  return { ...run, records, config, samples };
}
