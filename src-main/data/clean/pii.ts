import type { CleanConfig } from '../config';

/**
 * PII and secret scrubbing: one combined regular expression, tried only at the few positions where
 * a match can start (found by cheap scans), each match validated (Luhn for cards, mod-97 for IBANs, group rules for IPv6, entropy for unknown
 * secrets) and replaced by a typed placeholder.
 */
export type PiiType = 'email' | 'phone' | 'ip' | 'creditCard' | 'iban' | 'nationalId' | 'secret';

export const PLACEHOLDER: Record<PiiType, string> = {
  email: '<EMAIL>', phone: '<PHONE>', ip: '<IP_ADDRESS>', creditCard: '<CREDIT_CARD>',
  iban: '<IBAN>', nationalId: '<NATIONAL_ID>', secret: '<SECRET>',
};

// Order matters: earlier alternatives win at the same position.
const PARTS = {
  // Known secret formats (candidates() assumes each is a PEM block or starts with \b and 13+ of
  // [A-Za-z0-9_-]): PEM private keys, OpenAI/Stripe/GitHub/Slack/AWS/Google/HF/GitLab tokens, JWTs.
  secret: String.raw`(?<secret>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}|A(?:KIA|SIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}))`,
  email: String.raw`(?<email>\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b)`,
  iban: String.raw`(?<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b)`,
  ipv6: String.raw`(?<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]))`,
  ipv4: String.raw`(?<ipv4>\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b)`,
  ssn: String.raw`(?<ssn>\b\d{3}-\d{2}-\d{4}\b)`,
  card: String.raw`(?<card>\b\d(?:[ -]?\d){12,18}\b)`,
  // UK numbers: +44 / 0 / (0…) then 9–10 national digits in two or three groups, or none
  // ("07700 900123", "+447700900123"), which the general pattern's 2–4 digit groups miss.
  ukPhone: String.raw`(?<ukPhone>(?<![\w+])(?:(?:\+44[ .-]?(?:\(0\)[ .-]?)?|0)\d{2,5}|\(0\d{2,5}\))(?:[ .-]?\d{3,6}){1,2}\b)`,
  phone: String.raw`(?<phone>(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}\b)`,
  // Unknown secrets: long tokens mixing letters and digits, checked for entropy below.
  token: String.raw`(?<token>\b[A-Za-z0-9_\-+/=]{32,}\b)`,
};

/**
 * The combined pattern holds only the alternatives a document can match (cheap checks decide):
 * email needs "@", IPv6 needs "x:y:", secrets need a long token run or a PEM header. Variants are
 * cached by which are present. The choice is part of the output (a 15-character xox- token is a
 * secret only in a document with a 20+ character run), so it must not change. The pattern is
 * sticky: scrubPii tries it only at candidate start positions (see candidates()).
 */
const EMAIL = 1, IPV6 = 2, LONG = 4;
const VARIANTS = new Map<number, RegExp>();
function variantOf(text: string): number {
  const at = text.indexOf('@') >= 0 ? EMAIL : 0;
  const v6 = text.indexOf(':') >= 0 && (text.indexOf('::') >= 0 || /[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:/.test(text)) ? IPV6 : 0;
  const long = tokenRun(text, 20) !== null || text.indexOf('-----BEGIN') >= 0 ? LONG : 0;
  return at | v6 | long;
}
function patternFor(key: number): RegExp {
  let re = VARIANTS.get(key);
  if (!re) {
    const long = key & LONG, at = key & EMAIL, v6 = key & IPV6;
    // The always-present alternatives all start with a digit, "+", "(" or a capital letter.
    const anchored = `(?=[0-9A-Z+(])(?:${[PARTS.iban, PARTS.ipv4, PARTS.ssn, PARTS.card, PARTS.ukPhone, PARTS.phone].join('|')})`;
    const parts = [long ? PARTS.secret : '', at ? PARTS.email : '', v6 ? PARTS.ipv6 : '', anchored, long ? PARTS.token : ''];
    re = new RegExp(parts.filter(Boolean).join('|'), 'y');
    VARIANTS.set(key, re);
  }
  return re;
}

/** [A-Za-z0-9_], the \w and \b of a non-unicode RegExp; false for NaN (charCodeAt out of range). */
function isWord(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isHex = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
/** RegExp \b before position i. */
const boundary = (s: string, i: number): boolean => isWord(s.charCodeAt(i - 1)) !== isWord(s.charCodeAt(i));
const isLocal = (c: number): boolean => isWord(c) || c === 46 || c === 37 || c === 43 || c === 45; // [A-Za-z0-9._%+-]
const DIGIT_START = /(?<![a-z0-9_])\d/g;
/** The part of PARTS.email from the "@" on. */
const DOMAIN = /@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b/y;

/**
 * Every position where the variant's pattern can match, ascending (with possible extras and
 * repeats). Running the sticky pattern only there, skipping positions inside the previous match,
 * gives exactly the matches of a global scan, since a global scan is the same attempt at every
 * position. Why the list is complete, alternative by alternative:
 * - ipv4, ssn, card start with \b\d: a digit after a non-word character.
 * - phone and ukPhone start after (?<![\w+]) with "+" or "(" followed by a digit, or with a digit.
 * - iban starts with \b[A-Z]{2}\d: two capitals (after a non-word character) before a digit.
 * - email: \b, then [A-Za-z0-9._%+-]+ up to the first "@" (the class has no "@"), so a boundary in
 *   the run of that class just before an "@" whose domain part matches (it is the same for all).
 * - ipv6: (?<![\w:.]) then [hex]{0,4}":", so the start of the hex run before a ":" (at most 4
 *   long, possibly empty) with no [\w:.] before it: at most one position per ":".
 * - secret: a PEM header ("-----BEGIN"), or \b and 13+ characters of [A-Za-z0-9_-] (the shortest
 *   known formats: eyJ + 10 and xox?- + 10); token: \b and 32+ of [A-Za-z0-9_+/=-]. Both start at
 *   a boundary inside a run of [A-Za-z0-9_+/=-], 13+ characters before its end.
 */
function candidates(text: string, key: number): number[] {
  const out: number[] = [];
  // Digits not preceded by [a-z0-9_] (the rules below need a capital, "+", "(" or a non-word there).
  const digit = DIGIT_START;
  digit.lastIndex = 0;
  while (digit.test(text)) {
    const i = digit.lastIndex - 1;
    const b = text.charCodeAt(i - 1);
    if (b === 43 || b === 40) { // "+" or "(": phone there (lookbehind checked here), \b\d at the digit
      const bb = text.charCodeAt(i - 2);
      if (!isWord(bb) && bb !== 43) out.push(i - 1);
      out.push(i);
    } else if (b >= 65 && b <= 90) { // iban: [A-Z]{2}\d\d after a boundary
      const bb = text.charCodeAt(i - 2);
      if (bb >= 65 && bb <= 90 && !isWord(text.charCodeAt(i - 3)) && isDigit(text.charCodeAt(i + 1))) out.push(i - 2);
    } else if (!isWord(b)) out.push(i);
  }
  if (key === 0) return out;
  if (key & EMAIL) {
    for (let a = text.indexOf('@'); a >= 0; a = text.indexOf('@', a + 1)) {
      DOMAIN.lastIndex = a;
      if (!DOMAIN.test(text)) continue;
      let r = a;
      while (isLocal(text.charCodeAt(r - 1))) r--;
      for (let p = r; p < a; p++) if (boundary(text, p)) out.push(p);
    }
  }
  if (key & IPV6) {
    for (let c = text.indexOf(':'); c >= 0; c = text.indexOf(':', c + 1)) {
      let r = c;
      while (r > 0 && c - r <= 4 && isHex(text.charCodeAt(r - 1))) r--;
      const b = text.charCodeAt(r - 1);
      if (c - r <= 4 && !isWord(b) && b !== 58 && b !== 46) out.push(r);
    }
  }
  if (key & LONG) {
    for (let i = text.indexOf('-----BEGIN'); i >= 0; i = text.indexOf('-----BEGIN', i + 1)) out.push(i);
    for (let r = tokenRun(text, 13); r; r = tokenRun(text, 13, r[1] + 1)) {
      for (let p = r[0]; p <= r[1] - 13; p++) if (boundary(text, p)) out.push(p);
    }
  }
  return out.sort((x, y) => x - y);
}

/** [A-Za-z0-9_+/=-] by code unit below 128 (one load instead of a chain of comparisons in tokenRun's loop). */
const TOKEN_CHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  TOKEN_CHAR[c] = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 45 && c <= 57 && c !== 46) || c === 95 || c === 43 || c === 61 ? 1 : 0;
}

/** A character that can form a key or token: [A-Za-z0-9_+/=-]; false for NaN (out of range). */
function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN_CHAR[c] === 1;
}

/**
 * The first run of at least `len` token characters starting at or after `from`, as [start, end)
 * of the whole (maximal) run, or null. Tests the last character of each window first, so prose
 * (a space every few characters) is passed over in strides.
 */
function tokenRun(s: string, len: number, from = 0): [number, number] | null {
  let i = from; // no run of `len` starts in [from, i); s[i - 1] is not a token character unless i = from
  while (i + len <= s.length) {
    let j = i + len - 1;
    while (j >= i && isTokenChar(s.charCodeAt(j))) j--;
    if (j >= i) { i = j + 1; continue; }
    let e = i + len;
    while (e < s.length && isTokenChar(s.charCodeAt(e))) e++;
    return [i, e];
  }
  return null;
}

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let dbl = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (dbl) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 === 0;
}

export function ibanValid(iban: string): boolean {
  const s = iban.replace(/ /g, '');
  if (s.length < 15 || s.length > 34) return false;
  const r = s.slice(4) + s.slice(0, 4);
  let mod = 0;
  for (const ch of r) {
    const c = ch.charCodeAt(0);
    const v = c >= 65 ? String(c - 55) : ch;
    for (const d of v) mod = (mod * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return mod === 1;
}

function ipv6Valid(s: string): boolean {
  const dbl = s.split('::');
  if (dbl.length > 2) return false;
  const groups = s.split(':').filter((g) => g.length > 0);
  if (groups.some((g) => !/^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  if (dbl.length === 2) return groups.length <= 7 && !/^:[^:]|[^:]:$/.test(s);
  if (s.startsWith(':') || s.endsWith(':')) return false;
  return groups.length === 8;
}

/** Shannon entropy in bits per character. */
export function entropy(s: string): number {
  const m = new Map<string, number>();
  for (const c of s) m.set(c, (m.get(c) ?? 0) + 1);
  let h = 0;
  for (const v of m.values()) { const p = v / s.length; h -= p * Math.log2(p); }
  return h;
}

function looksLikeSecret(t: string): boolean {
  // Needs letters and digits mixed in; pure hex (hashes, UUID-ish) stays below 4 bits/char.
  if (!/\d/.test(t) || !/[A-Za-z]/.test(t)) return false;
  if (!/[A-Z]/.test(t) || !/[a-z]/.test(t)) return false;
  return entropy(t) >= 4.2;
}

function phoneValid(m: string): boolean {
  const digits = m.replace(/\D/g, '');
  if (digits.length < 7 || digits.length > 15) return false;
  // Dates and version numbers look like phone numbers: 2024-05-01, 1.2.3.4.
  if (/^\d{4}[-./]\d{1,2}[-./]\d{1,2}$/.test(m) || /^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$/.test(m)) return false;
  if (/^\d{1,3}(\.\d{1,3})+$/.test(m)) return false;
  // Without a + or parentheses, require the usual grouping of at least 3 digits at the end.
  if (!/[+(]/.test(m) && !/\d{3,}$/.test(m)) return false;
  return true;
}

/** A UK number: after +44 (and an optional "(0)") or the leading 0, 9 or 10 digits not starting with 0. */
function ukPhoneValid(m: string): boolean {
  let d = m.replace(/\D/g, '');
  d = m.startsWith('+') ? d.slice(2).replace(/^0/, '') : d.slice(1);
  return (d.length === 9 || d.length === 10) && d[0] !== '0';
}

export interface PiiCounts { email: number; phone: number; ip: number; creditCard: number; iban: number; nationalId: number; secret: number }
export function newPiiCounts(): PiiCounts { return { email: 0, phone: 0, ip: 0, creditCard: 0, iban: 0, nationalId: 0, secret: 0 }; }

/** Replaces PII in `text`; increments `counts` per type. Returns the original string when nothing matched. */
export function scrubPii(text: string, cfg: CleanConfig['pii'], counts: PiiCounts): string {
  const key = variantOf(text);
  const starts = candidates(text, key);
  if (starts.length === 0) return text;
  const pattern = patternFor(key);
  let out = '', copied = 0, end = 0;
  for (const p of starts) {
    if (p < end) continue;
    pattern.lastIndex = p;
    const m = pattern.exec(text);
    if (!m) continue;
    end = pattern.lastIndex;
    const rep = replacement(m[0], m.groups!, cfg, counts);
    if (rep !== m[0]) { out += text.slice(copied, p) + rep; copied = end; }
  }
  return copied === 0 ? text : out + text.slice(copied);
}

function replacement(m: string, g: Record<string, string | undefined>, cfg: CleanConfig['pii'], counts: PiiCounts): string {
  const hit = (t: PiiType): string => { counts[t]++; return PLACEHOLDER[t]; };
  if (g.secret !== undefined) return cfg.secret ? hit('secret') : m;
  if (g.email !== undefined) return cfg.email ? hit('email') : m;
  if (g.iban !== undefined) return cfg.iban && ibanValid(m) ? hit('iban') : m;
  if (g.ipv6 !== undefined) return cfg.ip && ipv6Valid(m) ? hit('ip') : m;
  if (g.ipv4 !== undefined) return cfg.ip ? hit('ip') : m;
  if (g.ssn !== undefined) {
    // US SSN rules: area not 000, 666 or 9xx; group and serial not zero.
    const ok = !/^(000|666|9\d\d)|^\d{3}-00|0000$/.test(m);
    if (ok && cfg.nationalId) return hit('nationalId');
    return cfg.phone && phoneValid(m) ? hit('phone') : m;
  }
  if (g.card !== undefined) {
    const digits = m.replace(/\D/g, '');
    if (cfg.creditCard && digits.length >= 13 && luhnValid(digits)) return hit('creditCard');
    return cfg.phone && phoneValid(m) ? hit('phone') : m;
  }
  if (g.ukPhone !== undefined) return cfg.phone && (ukPhoneValid(m) || phoneValid(m)) ? hit('phone') : m;
  if (g.phone !== undefined) return cfg.phone && phoneValid(m) ? hit('phone') : m;
  if (g.token !== undefined) return cfg.secret && looksLikeSecret(m) ? hit('secret') : m;
  return m;
}
