/** What import saw, for the report: every skipped file and bad line is named so the user can fix it. */
export interface ImportStats {
  filesRead: number;
  filesSkipped: { path: string; reason: string }[];
  bytesRead: number;
  docs: number;
  chars: number;
  /** Invalid byte sequences replaced by U+FFFD. */
  repairedChars: number;
  /** Files per detected encoding, e.g. { 'utf-8': 10, 'windows-1252': 1 }. */
  encodings: Record<string, number>;
  /** Bad JSONL lines / CSV rows (skipped); the first 100 are listed, `badLineCount` counts all. */
  badLines: { path: string; line: number; error: string }[];
  badLineCount: number;
  /**
   * What import changed or guessed while keeping the text, per file and line or record: a file
   * decoded as another encoding than UTF-8, invalid bytes replaced (with their lines), a line or
   * record split into pieces, CSV rows with too many or too few fields, a quote never closed, a file
   * name that is not UTF-8. The first 200 are listed, `noteCount` counts all.
   */
  notes: ImportNote[];
  noteCount: number;
}

export interface ImportNote { path: string; line?: number; what: string }

const MAX_BAD_LINES = 100;
const MAX_NOTES = 200;

export function newImportStats(): ImportStats {
  return { filesRead: 0, filesSkipped: [], bytesRead: 0, docs: 0, chars: 0, repairedChars: 0, encodings: {}, badLines: [], badLineCount: 0, notes: [], noteCount: 0 };
}

export function addBadLine(stats: ImportStats, path: string, line: number, error: string): void {
  stats.badLineCount++;
  if (stats.badLines.length < MAX_BAD_LINES) stats.badLines.push({ path, line, error });
}

export function addNote(stats: ImportStats, path: string, what: string, line?: number): void {
  stats.noteCount++;
  if (stats.notes.length < MAX_NOTES) stats.notes.push(line === undefined ? { path, what } : { path, line, what });
}

/** "lines 3, 17 and 20" / "lines 3, 17, … (12 lines, the first 10 listed)". */
export function listLines(lines: number[], total = lines.length, shown = 10): string {
  const l = lines.slice(0, shown);
  if (total === 1) return `line ${l[0]}`;
  if (total <= shown) return `lines ${l.slice(0, -1).join(', ')} and ${l[l.length - 1]}`;
  return `lines ${l.join(', ')}, … (${total} lines, the first ${l.length} listed)`;
}

/**
 * Line-level problems of one kind in one file, reported as one note when the file ends: what
 * happened, on which lines (the first 10 with their detail), and how many in all.
 */
export class LineNotes {
  private readonly shown: string[] = [];
  private first = 0;
  count = 0;
  constructor(private readonly stats: ImportStats, private readonly path: string, private readonly what: (n: number) => string) {}
  add(line: number, detail?: string): void {
    if (this.count++ === 0) this.first = line;
    if (this.shown.length < 10) this.shown.push(detail ? `${line} (${detail})` : String(line));
  }
  finish(): void {
    if (!this.count) return;
    const where = this.count === 1 ? `line ${this.shown[0]}` : `lines ${this.shown.join(', ')}${this.count > this.shown.length ? `, … (${this.count} in all, the first ${this.shown.length} listed)` : ''}`;
    addNote(this.stats, this.path, `${this.what(this.count)}: ${where}`, this.first);
  }
}
