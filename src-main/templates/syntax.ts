/**
 * Where a chat template's Jinja syntax breaks, in words a user can act on: the line, the tag, and what is
 * wrong with it. The JS parser reports only a bare message ("Unknown statement type: endfor") with no
 * position, so the template is checked here piece by piece: delimiters closed, blocks balanced, each tag
 * and expression parsed on its own.
 */
import { parse, tokenize } from '@huggingface/jinja';

export interface SyntaxProblem {
  /** 1-based line in the template source. */
  line: number;
  /** The tag or expression at fault, as written (shortened). */
  snippet: string;
  reason: string;
}

// Block tags and the tag that closes each.
const BLOCKS: Record<string, string> = {
  if: 'endif', for: 'endfor', macro: 'endmacro', call: 'endcall', filter: 'endfilter', generation: 'endgeneration', raw: 'endraw',
};
const MIDDLE: Record<string, string[]> = { elif: ['if'], else: ['if', 'for'] };

interface Piece { kind: '{{' | '{%' | '{#'; body: string; start: number; line: number; text: string }

function lineAt(source: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (source.charCodeAt(i) === 10) line++;
  return line;
}

const short = (s: string): string => (s.length > 60 ? s.slice(0, 57) + '...' : s);

/** Splits the template into its tags, or reports the first unclosed one. */
function pieces(source: string): Piece[] | SyntaxProblem {
  const out: Piece[] = [];
  const close: Record<string, string> = { '{{': '}}', '{%': '%}', '{#': '#}' };
  let i = 0;
  while (i < source.length) {
    const open = source.slice(i).search(/\{[{%#]/);
    if (open < 0) break;
    const start = i + open;
    const kind = source.slice(start, start + 2) as Piece['kind'];
    const end = source.indexOf(close[kind]!, start + 2);
    if (end < 0) {
      return { line: lineAt(source, start), snippet: short(source.slice(start, source.indexOf('\n', start) < 0 ? undefined : source.indexOf('\n', start))), reason: `"${kind}" is never closed with "${close[kind]}"` };
    }
    const text = source.slice(start, end + 2);
    const body = source.slice(start + 2, end).replace(/^[-+]/, '').replace(/[-+]$/, '').trim();
    out.push({ kind, body, start, line: lineAt(source, start), text });
    i = end + 2;
    if (kind === '{%' && /^raw\b/.test(body)) {
      const m = /\{%-?\s*endraw\s*-?%\}/.exec(source.slice(i));
      if (!m) return { line: lineAt(source, start), snippet: short(text), reason: '{% raw %} is never closed with {% endraw %}' };
      i += m.index + m[0].length;
    }
  }
  return out;
}

function parses(text: string): string | null {
  try {
    parse(tokenize(text, { lstrip_blocks: true, trim_blocks: true }));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The first syntax problem of a template the parser refused, or null when none is found here. */
export function locateSyntaxError(source: string): SyntaxProblem | null {
  const ps = pieces(source);
  if (!Array.isArray(ps)) return ps;
  const stack: Piece[] = [];
  for (const p of ps) {
    if (p.kind === '{#') continue;
    if (p.kind === '{{') {
      const err = parses(`{{ ${p.body} }}`);
      if (err) return { line: p.line, snippet: short(p.text), reason: `the expression cannot be read (${err})` };
      continue;
    }
    const word = /^[A-Za-z_]+/.exec(p.body)?.[0] ?? '';
    if (word in BLOCKS) {
      // `{% set x %}...{% endset %}` blocks are rare; a `set` with `=` is a single tag.
      const err = word === 'generation' || word === 'raw' ? null : parses(`{% ${p.body} %}{% ${BLOCKS[word]} %}`);
      if (err) return { line: p.line, snippet: short(p.text), reason: `the tag cannot be read (${err})` };
      stack.push(p);
      continue;
    }
    if (word in MIDDLE) {
      const top = stack[stack.length - 1];
      const topWord = top ? /^[A-Za-z_]+/.exec(top.body)![0] : '';
      if (!top || !MIDDLE[word]!.includes(topWord)) {
        return { line: p.line, snippet: short(p.text), reason: `{% ${word} %} is not inside ${MIDDLE[word]!.map((w) => `{% ${w} %}`).join(' or ')}` };
      }
      if (word === 'elif') {
        const err = parses(`{% if true %}{% ${p.body} %}{% endif %}`);
        if (err) return { line: p.line, snippet: short(p.text), reason: `the tag cannot be read (${err})` };
      }
      continue;
    }
    // `{% set x %}...{% endset %}` (a block set) is rare and not checked for balance.
    if (word === 'endset' || (word === 'set' && !p.body.includes('='))) continue;
    if (word.startsWith('end')) {
      const opener = Object.keys(BLOCKS).find((k) => BLOCKS[k] === word);
      if (!opener) return { line: p.line, snippet: short(p.text), reason: `there is no such tag as {% ${word} %}` };
      const top = stack.pop();
      if (!top) return { line: p.line, snippet: short(p.text), reason: `{% ${word} %} closes a {% ${opener} %} that was never opened` };
      const topWord = /^[A-Za-z_]+/.exec(top.body)![0];
      if (topWord !== opener) {
        return { line: p.line, snippet: short(p.text), reason: `{% ${word} %} found where {% ${BLOCKS[topWord]} %} was expected (the {% ${topWord} %} on line ${top.line} is still open)` };
      }
      continue;
    }
    const known = ['set', 'break', 'continue', 'do', 'include', 'import', 'from', 'extends', 'block', 'endblock'];
    if (!known.includes(word)) return { line: p.line, snippet: short(p.text), reason: `{% ${word || p.body} %} is not a Jinja tag` };
    if (word === 'set') {
      const err = parses(`{% ${p.body} %}`);
      if (err) return { line: p.line, snippet: short(p.text), reason: `the tag cannot be read (${err})` };
    }
  }
  const open = stack[stack.length - 1];
  if (open) {
    const w = /^[A-Za-z_]+/.exec(open.body)![0];
    return { line: open.line, snippet: short(open.text), reason: `{% ${w} %} is never closed with {% ${BLOCKS[w]} %}` };
  }
  return null;
}
