/**
 * A small YAML emitter for the hand-off configs: maps, lists and scalars only, block style, keys in
 * insertion order. Strings are written as JSON strings (valid YAML double-quoted scalars) unless they are
 * plain words, so nothing is read back as another type ("yes", "1e-4", "null" stay strings).
 */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue | undefined };

const PLAIN = /^[A-Za-z_./$][A-Za-z0-9_./${}-]*$/;
const RESERVED = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~)$/;

function scalar(v: string | number | boolean | null): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`YAML: cannot write the number ${v}`);
    // YAML 1.1 (PyYAML) reads 2e-4 as a string; it needs a dot and a signed exponent: 2.0e-04.
    const s = String(v);
    const m = /^(-?\d+)(?:\.(\d+))?e([+-]?)(\d+)$/.exec(s);
    return m ? `${m[1]}.${m[2] ?? '0'}e${m[3] || '+'}${m[4]!.padStart(2, '0')}` : s;
  }
  return PLAIN.test(v) && !RESERVED.test(v) ? v : JSON.stringify(v);
}

function isMap(v: YamlValue): v is { [key: string]: YamlValue | undefined } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function emit(v: YamlValue, indent: string, lines: string[]): void {
  if (isMap(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      const key = scalar(k);
      if ((isMap(x) && Object.keys(x).length) || (Array.isArray(x) && x.length)) {
        lines.push(`${indent}${key}:`);
        emit(x, isMap(x) ? indent + '  ' : indent, lines);
      } else {
        lines.push(`${indent}${key}: ${isMap(x) ? '{}' : Array.isArray(x) ? '[]' : scalar(x)}`);
      }
    }
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) {
      if (isMap(x) && Object.keys(x).length) {
        const sub: string[] = [];
        emit(x, indent + '  ', sub);
        lines.push(`${indent}- ${sub[0]!.trimStart()}`, ...sub.slice(1));
      } else if (Array.isArray(x)) {
        throw new Error('YAML: nested lists are not used by the hand-off configs');
      } else {
        lines.push(`${indent}- ${isMap(x) ? '{}' : scalar(x)}`);
      }
    }
    return;
  }
  lines.push(indent + scalar(v));
}

/** `header` lines become `# ` comments at the top. */
export function toYaml(v: YamlValue, header: string[] = []): string {
  const lines = header.map((h) => (h ? `# ${h}` : '#'));
  emit(v, '', lines);
  return lines.join('\n') + '\n';
}
