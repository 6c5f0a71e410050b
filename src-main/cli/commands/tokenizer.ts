/**
 * `lathe tokenizer train|extend|compare|inspect`: thin wrappers over src-main/tokenizer/service.
 */
import type { CliCommand } from '../types';
import { flagList, flagNumber, flagString } from '../args';
import { UserError } from '../../util/progress';
import { cliWork, requireFlag } from '../work';

// The tokenizer modules load when a command runs, so `lathe help` stays quick.
const service = () => import('../../tokenizer/service');

const work = cliWork;

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(2)}%`;

export const commands: CliCommand[] = [
  {
    path: ['tokenizer', 'train'],
    summary: 'Learn candidate domain tokens for a model\'s tokenizer, ranked by tokens saved on your corpus',
    usage: 'lathe tokenizer train --base MODEL_DIR --corpus PATH [--corpus PATH ...] --out candidates.json [--max 2000] [--min-saving 2] [--show 20]',
    async run(ctx) {
      const ex = 'lathe tokenizer train --base ./model --corpus ./my-texts --out candidates.json';
      const res = await (await service()).trainDomainTokenizer({
        baseDir: flagString(ctx.flags, 'base') ?? ctx.args[0] ?? requireFlag(ctx, 'base', ex),
        corpus: flagList(ctx.flags, 'corpus').length ? flagList(ctx.flags, 'corpus') : ctx.args.slice(1),
        outFile: flagString(ctx.flags, 'out'),
        maxCandidates: flagNumber(ctx.flags, 'max'),
        minSaving: flagNumber(ctx.flags, 'min-saving'),
      }, work(ctx));
      if (!ctx.json) {
        const show = flagNumber(ctx.flags, 'show') ?? 20;
        ctx.out(`Corpus: ${res.corpus.texts} texts, ${res.corpus.words} words, ${res.corpus.baseTokens} tokens with the base tokenizer`
          + (res.corpus.specialTokensSeen ? ` (${res.corpus.specialTokensSeen} special tokens left alone)` : ''));
        ctx.out(`${res.candidates.length} candidates${res.skipped.length ? `, ${res.skipped.length} skipped (already tokens)` : ''}:`);
        for (const c of res.candidates.slice(0, show)) {
          ctx.out(`  ${String(c.rank).padStart(5)}  ${JSON.stringify(c.text).padEnd(24)} saves ${String(c.saving).padStart(7)}  (top ${c.rank}: ${(100 * c.cumulativeSaving / res.corpus.baseTokens).toFixed(1)}% fewer tokens)`);
        }
        if (flagString(ctx.flags, 'out')) ctx.out(`Wrote ${flagString(ctx.flags, 'out')}`);
        return undefined;
      }
      return res;
    },
  },
  {
    path: ['tokenizer', 'extend'],
    summary: 'Write an extended tokenizer: the base plus the top N candidate tokens as real BPE merges',
    usage: 'lathe tokenizer extend --base MODEL_DIR --candidates candidates.json (--top N | --select TOKEN ...) --out DIR',
    async run(ctx) {
      const ex = 'lathe tokenizer extend --base ./model --candidates candidates.json --top 500 --out ./extended-tokenizer';
      const select = flagList(ctx.flags, 'select');
      const top = flagNumber(ctx.flags, 'top');
      if (top === undefined && select.length === 0) throw new UserError('cli.missing', 'Say how many tokens to add with --top N (or pick them with --select).', `Example: ${ex}`);
      const res = await (await service()).extendTokenizerDir({
        baseDir: requireFlag(ctx, 'base', ex),
        candidates: requireFlag(ctx, 'candidates', ex),
        outDir: requireFlag(ctx, 'out', ex),
        ...(select.length ? { select } : { topN: top }),
      }, work(ctx));
      if (!ctx.json) {
        const m = res.manifest;
        ctx.out(`Added ${m.newTokens.length} tokens: vocab ${m.baseVocabSize} -> ${m.newVocabSize} (ids ${m.baseVocabSize}..${m.newVocabSize - 1}).`);
        if (m.predictedSaving >= 0) ctx.out(`Saves ${m.predictedSaving} tokens on the training corpus.`);
        ctx.out(`Wrote ${res.files.join(', ')}`);
        return undefined;
      }
      return res;
    },
  },
  {
    path: ['tokenizer', 'compare'],
    summary: 'Tokens per word and bytes per token before/after on held-out domain text and on general text',
    usage: 'lathe tokenizer compare --base MODEL_DIR --extended DIR --domain PATH [--domain PATH ...] [--general PATH ...] [--max-chars 5000000]',
    async run(ctx) {
      const ex = 'lathe tokenizer compare --base ./model --extended ./extended-tokenizer --domain ./held-out --general ./general';
      const res = await (await service()).compareTokenizerDirs({
        baseDir: requireFlag(ctx, 'base', ex),
        extendedDir: requireFlag(ctx, 'extended', ex),
        domain: flagList(ctx.flags, 'domain'),
        general: flagList(ctx.flags, 'general'),
        maxChars: flagNumber(ctx.flags, 'max-chars'),
      }, work(ctx));
      if (!ctx.json) {
        ctx.out(`Vocab: ${res.vocabBefore} -> ${res.vocabAfter}`);
        for (const [name, s] of [['Domain', res.domain], ['General', res.general]] as const) {
          if (s.before.texts === 0) continue;
          ctx.out(`${name} (${s.before.texts} texts, ${s.before.words} words): tokens ${s.before.tokens} -> ${s.after.tokens} (${pct(s.tokenChangePct)}), `
            + `tokens/word ${s.before.tokensPerWord.toFixed(3)} -> ${s.after.tokensPerWord.toFixed(3)}, `
            + `bytes/token ${s.before.bytesPerToken.toFixed(2)} -> ${s.after.bytesPerToken.toFixed(2)}`
            + (s.roundTripRegressions ? `; ${s.roundTripRegressions} texts no longer decode exactly` : ''));
        }
        return undefined;
      }
      return res;
    },
  },
  {
    path: ['tokenizer', 'inspect'],
    summary: 'Describe a tokenizer (kind, vocab, special tokens) and optionally tokenize a text',
    usage: 'lathe tokenizer inspect MODEL_DIR [--text "some text"]',
    async run(ctx) {
      const dir = ctx.args[0];
      if (!dir) throw new UserError('cli.missing', 'tokenizer inspect needs a folder.', 'Example: lathe tokenizer inspect ./model --text "hello"');
      const tok = (await import('../../tokenizer/tokenizer')).LatheTokenizer.fromDir(dir);
      const text = flagString(ctx.flags, 'text');
      const enc = text === undefined ? undefined : await tok.encode(text);
      const info = {
        dir, kind: tok.kind, vocabSize: tok.vocabSize, merges: tok.json.model.merges.length, addedTokens: tok.addedTokens.length,
        bos: tok.bosToken ?? null, eos: tok.eosToken ?? null, pad: tok.padToken ?? null, unk: tok.unkToken ?? null,
        addBos: tok.addBos ?? null, addEos: tok.addEos ?? null, modelMaxLength: tok.modelMaxLength ?? null, hash: tok.contentHash,
        ...(enc ? { encoding: { ids: enc.ids, tokens: enc.tokens } } : {}),
      };
      if (!ctx.json) {
        ctx.out(`${dir}: ${tok.kind} BPE, vocab ${tok.vocabSize} (${info.merges} merges, ${info.addedTokens} added tokens)`);
        ctx.out(`bos ${JSON.stringify(info.bos)} eos ${JSON.stringify(info.eos)} pad ${JSON.stringify(info.pad)} unk ${JSON.stringify(info.unk)}`);
        if (enc) ctx.out(enc.tokens.map((t, i) => `${t}:${enc.ids[i]}`).join(' '));
        return undefined;
      }
      return info;
    },
  },
];
