import { z } from 'zod';
import { UserError } from '../util/progress';

/**
 * Every threshold of the cleaning pipeline in one object. Each default says why it is what it is.
 * Unknown keys are rejected so a misspelt setting fails loudly instead of silently doing nothing.
 */
export const CleanConfigSchema = z.strictObject({
  normalize: z.strictObject({
    /** NFC + whitespace normalization; cheap and makes dedup and PII patterns reliable. */
    enabled: z.boolean().default(true),
  }).prefault({}),
  boilerplate: z.strictObject({
    enabled: z.boolean().default(true),
    /** A line seen in at least this many different documents is page furniture ("Subscribe", "© 2024 ..."). 5 keeps short legitimate repeats such as a quoted rule. */
    minDocs: z.number().int().min(2).default(5),
    /** Shorter lines ("---", "```", "1.") are left alone: they repeat legitimately. */
    minLineChars: z.number().int().min(1).default(12),
  }).prefault({}),
  quality: z.strictObject({
    enabled: z.boolean().default(true),
    /** Fewer characters than this carries too little context to learn from (a sentence or two). */
    minChars: z.number().int().min(0).default(100),
    /** Fewer words than this is usually a heading, a caption or a stub. */
    minWords: z.number().int().min(0).default(15),
    /** Above this fraction of symbol characters (not letters, digits, spaces or . , ; : ! ? ' " ( ) -) the text is markup, tables or garbage. 0.25 keeps prose with some code. */
    maxSymbolRatio: z.number().min(0).max(1).default(0.25),
    /** Above this fraction of digits the text is a table, log or listing. */
    maxDigitRatio: z.number().min(0).max(1).default(0.3),
    /** Above this fraction of characters in lines repeated within the document, it is spam or a template. */
    maxDuplicateLineFraction: z.number().min(0).max(1).default(0.3),
    /** Above this fraction of word 3-grams that repeat within the document, it is repetitive text. Gopher uses similar limits. */
    maxRepeatedNgramFraction: z.number().min(0).max(1).default(0.35),
    /** Fewer stop words (the, of, und, de, ...) than this means word salad, keywords or not prose (Gopher uses 2). */
    minStopWords: z.number().int().min(0).default(2),
  }).prefault({}),
  language: z.strictObject({
    enabled: z.boolean().default(true),
    /** ISO codes to keep, e.g. ["en"]. Empty keeps every language (they are still counted in the report). */
    keep: z.array(z.string()).default([]),
    /** Below this confidence (0..1) a document counts as "unknown"; "unknown" is kept unless `keep` is set. */
    minConfidence: z.number().min(0).max(1).default(0.15),
  }).prefault({}),
  exactDedup: z.strictObject({
    /** Drops byte-identical documents after normalization; nearly free. */
    enabled: z.boolean().default(true),
  }).prefault({}),
  pii: z.strictObject({
    /** On by default: personal data and secrets should not be memorised by a model. */
    enabled: z.boolean().default(true),
    email: z.boolean().default(true),
    phone: z.boolean().default(true),
    ip: z.boolean().default(true),
    creditCard: z.boolean().default(true),
    iban: z.boolean().default(true),
    nationalId: z.boolean().default(true),
    secret: z.boolean().default(true),
  }).prefault({}),
  nearDedup: z.strictObject({
    enabled: z.boolean().default(true),
    /** Estimated Jaccard similarity of word 5-gram sets at or above which a later document is a near-duplicate. 0.8 catches reposts with small edits. */
    threshold: z.number().min(0.1).max(1).default(0.8),
    /** MinHash permutations: 128 gives a Jaccard estimate within about ±0.09 (2 sigma) at 0.8. */
    numPerm: z.number().int().min(8).max(512).default(128),
    /** LSH bands (numPerm / bands rows each). 32 bands of 4 rows find pairs above Jaccard ~0.42 with high probability; candidates are then checked against `threshold`. */
    bands: z.number().int().min(1).default(32),
    /** Words per shingle; 5 is the usual choice for web text. */
    shingleWords: z.number().int().min(1).max(16).default(5),
    /** Memory for signatures + LSH index (~0.9 KB per kept document with the defaults, so ~580k documents). When full, later documents are still checked against the indexed ones but not added, and the report says so. Keeps a 10 GB corpus within bounded memory. */
    maxMemoryMB: z.number().int().min(16).default(512),
  }).prefault({}),
  /** Examples of removed/changed text kept per filter for the preview. */
  examplesPerFilter: z.number().int().min(0).max(100).default(5),
});

export type CleanConfig = z.infer<typeof CleanConfigSchema>;
export type CleanConfigInput = z.input<typeof CleanConfigSchema>;

/** Full config from a partial one; throws a UserError naming the bad key. */
export function resolveCleanConfig(input: unknown = {}): CleanConfig {
  const r = CleanConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.join('.') || '(top level)';
    throw new UserError('data.config', `Cleaning setting ${where}: ${issue.message}.`, 'Check the spelling against docs/data-pipeline.md; unknown settings are not ignored.');
  }
  const c = r.data;
  if (c.nearDedup.numPerm % c.nearDedup.bands !== 0) {
    throw new UserError('data.config', `nearDedup.numPerm (${c.nearDedup.numPerm}) must be a multiple of nearDedup.bands (${c.nearDedup.bands}).`, 'For example numPerm 128 with 32 bands (4 rows each).');
  }
  return c;
}
