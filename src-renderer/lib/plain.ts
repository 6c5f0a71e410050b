/**
 * Plain words for what the services report in engineers' terms (issue 22 item 5): job kinds, personal-data
 * kinds, tokenizer pieces, loss masks, near-duplicate measures. Pure, tested in test/unit/renderer/plain.test.ts.
 */

const JOB_NAMES: Record<string, string> = {
  selftest: 'Self-test',
  prepare: 'Preparing data',
  'tokenizer-train': 'Finding new tokens',
  'tokenizer-extend': 'Extending the tokenizer',
  train: 'Training',
  export: 'Exporting the model',
  calibrate: 'Measuring training speed',
  handoff: 'Writing a hand-off folder',
  'import-adapter': 'Importing an adapter',
};

/** A job's name for people ("Training"), for any kind (unknown kinds keep their name, de-hyphenated). */
export function jobName(kind: string): string {
  return JOB_NAMES[kind] ?? (kind.charAt(0).toUpperCase() + kind.slice(1).replace(/[-_]/g, ' '));
}

/** "started 14:05, ran 3 min 2 s" from the job's creation time, now, and its state. */
export function jobTimes(createdAt: string, now: number, ended: boolean): string {
  const t = Date.parse(createdAt);
  if (!Number.isFinite(t)) return '';
  const d = new Date(t);
  const clock = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  const s = Math.max(0, Math.round((now - t) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const dur = h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${sec} s`;
  return ended ? `started ${clock}` : `started ${clock}, running for ${dur}`;
}

const PII: Record<string, string> = {
  email: 'email addresses', phone: 'phone numbers', ip: 'IP addresses', ipv4: 'IP addresses', ipv6: 'IP addresses',
  creditCard: 'credit card numbers', iban: 'bank account numbers (IBAN)', ssn: 'social security numbers', url: 'web addresses',
  apiKey: 'API keys', awsKey: 'AWS keys', privateKey: 'private keys', secret: 'secrets (keys, tokens)', jwt: 'login tokens (JWT)',
  nationalId: 'national ID numbers', githubToken: 'GitHub tokens', hfToken: 'Hugging Face tokens', slackToken: 'Slack tokens', password: 'passwords', id: 'ID numbers',
};

/** "creditCard" -> "credit card numbers"; unknown kinds are split into words. */
export function piiWords(kind: string): string {
  return PII[kind] ?? kind.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/[-_]/g, ' ').toLowerCase();
}

/**
 * A tokenizer piece as readable text: byte-level BPE's Ġ / ▁ word-start marks and the ␣ shown for a space become
 * "(space)" at the start, Ċ a line break; `fragment` says it is a piece of a word rather than a word of its own.
 */
export function tokenText(piece: string): { text: string; startsWord: boolean; fragment: boolean } {
  let startsWord = false;
  let t = piece;
  if (/^[Ġ▁␣ ]/.test(t)) { startsWord = true; t = t.slice(1); }
  t = t.replace(/Ċ/g, '\n').replace(/ĉ/g, '\t').replace(/[Ġ▁␣]/g, ' ');
  return { text: t, startsWord, fragment: !startsWord };
}

/** How a token is shown in a list of suggested tokens: "ck" -> "“ck” (part of a word)", "␣p" -> "“p” (start of a word)". */
export function tokenLabel(piece: string): string {
  const { text, startsWord } = tokenText(piece);
  return `“${text}” (${startsWord ? 'start of a word' : 'part of a word'})`;
}

/** The kind of a suggested token: a "merge" joins two pieces the tokenizer already had into one. */
export function candidateKind(kind: string): string {
  return kind === 'merge' ? 'joins two existing pieces' : kind === 'word' ? 'a whole word' : kind;
}

/** Which tokens training learns from, in words (template inspector's mask method). */
export function maskWords(method: string | null): string {
  switch (method) {
    case 'prefix': return 'The model learns from the assistant\'s replies only (found by comparing the conversation with and without each reply).';
    case 'generation': return 'The model learns from the assistant\'s replies only (the template marks them itself).';
    case 'sentinel': return 'The model learns from the assistant\'s replies only (found by marking each reply and seeing where the marks land).';
    case 'all': return 'The model learns from every token of the conversation.';
    case null: case '': return '';
    default: return `The model learns from the assistant's replies only (method: ${method}).`;
  }
}

/** A near-duplicate similarity (estimated Jaccard of word shingles) in words: "94% of their wording is the same". */
export function similarityWords(jaccard: number): string {
  return `about ${Math.round(jaccard * 100)}% of their wording is the same`;
}
