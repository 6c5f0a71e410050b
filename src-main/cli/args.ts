/** Minimal flag parser: `--name value`, `--name=value`, bare `--flag`; repeated flags collect into arrays. */
export interface Parsed {
  positional: string[];
  flags: Record<string, string | boolean | string[]>;
}

export function parseArgs(argv: string[], booleanFlags: ReadonlySet<string> = new Set(['json', 'help'])): Parsed {
  const positional: string[] = [];
  const flags: Record<string, string | boolean | string[]> = {};
  const put = (k: string, v: string | boolean) => {
    const prev = flags[k];
    if (prev === undefined) flags[k] = v;
    else if (Array.isArray(prev)) prev.push(String(v));
    else flags[k] = [String(prev), String(v)];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { positional.push(...argv.slice(i + 1)); break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) { put(a.slice(2, eq), a.slice(eq + 1)); continue; }
      const key = a.slice(2);
      const next = argv[i + 1];
      if (!booleanFlags.has(key) && next !== undefined && !next.startsWith('--')) { put(key, next); i++; }
      else put(key, true);
    } else positional.push(a);
  }
  return { positional, flags };
}

/** Typed accessors with plain-words errors. */
export function flagString(flags: Parsed['flags'], name: string): string | undefined {
  const v = flags[name];
  if (v === undefined || v === true || v === false) return undefined;
  return Array.isArray(v) ? v[v.length - 1] : v;
}

export function flagList(flags: Parsed['flags'], name: string): string[] {
  const v = flags[name];
  if (v === undefined || typeof v === 'boolean') return [];
  return Array.isArray(v) ? v : [v];
}

export function flagNumber(flags: Parsed['flags'], name: string): number | undefined {
  const s = flagString(flags, name);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number (got "${s}").`);
  return n;
}
