/**
 * The one shape long-running work reports through. Services take `WorkOptions` and stay pure
 * (no Electron, no job host): the job host, the CLI and tests each decide where reports go.
 */
export interface ProgressReport {
  /** 0..1 for the current stage, or undefined when the total is unknown. */
  fraction?: number;
  /** Short plain-words label of the current stage, e.g. "Removing near-duplicates". */
  stage?: string;
  /** Optional detail line, e.g. "12,345 of 50,000 documents". */
  message?: string;
}

export interface WorkOptions {
  onProgress?: (report: ProgressReport) => void;
  onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Aborted when the user cancels: throw `CancelledError` (or let the signal's reason propagate). */
  signal?: AbortSignal;
}

export class CancelledError extends Error {
  constructor(message = 'Cancelled by the user.') {
    super(message);
    this.name = 'CancelledError';
  }
}

/** Throws CancelledError if the signal was aborted. Call it in loops over long work. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}

/**
 * An error meant for the user: `message` says what went wrong in plain words, `hint` what to do.
 * Everything shown to users (UI, CLI) prints both.
 */
export class UserError extends Error {
  readonly hint: string | undefined;
  readonly code: string;
  constructor(code: string, message: string, hint?: string) {
    super(message);
    this.name = 'UserError';
    this.code = code;
    this.hint = hint;
  }
}
