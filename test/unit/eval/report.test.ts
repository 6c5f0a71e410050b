/**
 * The evaluation report of a finished (tiny) run: perplexity before/after on the run's held-out split and
 * on a general dataset, generations before (= the base model alone) and after (= the adapter), BLEU and
 * ROUGE-L on a JSONL evaluation set (= our metrics over the same answers), report files written.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src-main/engine/train/trainer';
import { evaluationReport } from '../../../src-main/eval/report';
import { corpusBleu, meanRougeL } from '../../../src-main/eval/metrics';
import { Generator } from '../../../src-main/engine/generate';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';

describe('evaluation report', () => {
  it('reports perplexity, generations and BLEU/ROUGE-L before and after', async () => {
    const model = await tinyModel('llama', 2);
    const dataset = await tinyDataset(model);
    const general = await tinyDataset(model, { seed: 99, docs: 8 });
    const run = path.join(tempDir('lathe-report-'), 'run');
    await train({ model, dataset, out: run, maxSteps: 8, batchSize: 2, optim: { lr: 2e-2 }, evalEvery: 0, ep: 'cpu', samplePrompts: ['the gouge cuts'] });
    const evalSet = path.join(run, 'eval.jsonl');
    writeFileSync(evalSet, [
      { prompt: 'the lathe spins the', reference: 'blank while the gouge cuts a clean bevel' },
      { prompt: 'walnut bowls need', reference: 'sharp tools and steady hands' },
      { messages: [{ role: 'user', content: 'maple and oak' }, { role: 'assistant', content: 'along the grain' }] },
    ].filter((x) => 'prompt' in x).map((x) => JSON.stringify(x)).join('\n') + '\n');

    const r = await evaluationReport({ run, general, sftEval: evalSet, maxTokens: 10, maxBlocks: 8 });
    const domain = r.perplexity.find((p) => p.split === 'val-domain')!;
    expect(domain.after.ppl).toBeLessThan(domain.before.ppl);
    expect(r.perplexity.some((p) => p.split.startsWith('general:'))).toBe(true);
    expect(r.forgetting).not.toBeNull();
    expect(r.generations.map((g) => g.prompt)).toEqual(['the gouge cuts']); // the run's sample prompts

    // "before" is the base model alone
    const base = await Generator.open(model);
    try {
      const ids = await base.encode('the gouge cuts');
      const b = await base.generate(ids, { greedy: true, maxTokens: 10 });
      expect(r.generations[0]!.before).toBe(b.text);
    } finally {
      await base.dispose();
    }
    expect(r.generations[0]!.after).not.toBe(r.generations[0]!.before);

    // the metrics are ours over the same answers
    const s = r.sft!;
    expect(s.examples).toBe(2);
    const refs = s.samples.map((x) => x.reference);
    expect(s.bleu.after.score).toBeCloseTo(corpusBleu(s.samples.map((x) => x.after), [refs]).score, 10);
    expect(s.rougeL.before.fmeasure).toBeCloseTo(meanRougeL(refs, s.samples.map((x) => x.before)).fmeasure, 10);
    expect(existsSync(path.join(run, 'eval-report.json'))).toBe(true);
    const md = readFileSync(path.join(run, 'eval-report.md'), 'utf8');
    expect(md).toContain('| val-domain |');
    expect(md).toContain('ROUGE-L');
    console.log(md);
  });
});
