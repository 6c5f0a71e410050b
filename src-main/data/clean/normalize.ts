/**
 * NFC, unified newlines, no control characters, no trailing spaces, at most one blank line in a row.
 * Tabs become spaces except at line start (keeps code indentation).
 */
// C0/C1 controls except \t \n, plus zero-width and bidi marks that only confuse tokenizers.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2060\ufeff]/g;
const CONTROL_TEST = new RegExp(CONTROL.source);
const SPACES = /[\u00a0\u2000-\u200a\u202f\u205f\u3000]/g;
const SPACES_TEST = new RegExp(SPACES.source);

export function normalizeText(s: string): string {
  // Each rewrite only when its trigger is present (found by a native scan): most documents need one
  // or none, and a regular-expression replace costs far more than a test or an indexOf.
  // Non-ASCII, CR and control characters are rare: one test rules all three out.
  if (/[^\t\n\x20-\x7e]/.test(s)) {
    // eslint-disable-next-line no-control-regex
    if (/[^\x00-\x7f]/.test(s)) {
      s = s.normalize('NFC');
      if (SPACES_TEST.test(s)) s = s.replace(SPACES, ' ');
    }
    if (s.indexOf('\r') >= 0) s = s.replace(/\r\n?/g, '\n');
    if (CONTROL_TEST.test(s)) s = s.replace(CONTROL, '');
  }
  if (s.indexOf('  ') >= 0 || s.indexOf('\t') >= 0) s = s.replace(/(?<=\S)[ \t]{2,}/g, ' ');
  if (s.indexOf(' \n') >= 0 || s.indexOf('\t\n') >= 0) s = stripLineEnds(s);
  if (s.indexOf('\n\n\n') >= 0) s = s.replace(/\n{3,}/g, '\n\n');
  return s.trim();
}

/**
 * s.replace(/[ \t]+\n/g, '\n') without the regular expression, which tries a match at every space of
 * the text; this visits only the line ends.
 */
function stripLineEnds(s: string): string {
  let out = '';
  let last = 0;
  for (let nl = s.indexOf('\n'); nl >= 0; nl = s.indexOf('\n', nl + 1)) {
    let j = nl;
    while (j > last && (s.charCodeAt(j - 1) === 32 || s.charCodeAt(j - 1) === 9)) j--;
    if (j < nl) { out += s.slice(last, j); last = nl; }
  }
  return last === 0 ? s : out + s.slice(last);
}
