/**
 * HTTP to the Hugging Face Hub: one request helper with a time limit, redirects followed by hand (so the
 * token goes only to the Hub's own origin, never to the file server a download is redirected to), and
 * every failure turned into plain words. Uses Node's fetch; no Electron imports.
 */
import { UserError, CancelledError } from '../util/progress';

/** The Hub's address: HF_ENDPOINT (tests point it at a local server), then the setting, then huggingface.co. */
export function hubEndpoint(setting?: string | undefined): string {
  const raw = process.env['HF_ENDPOINT'] || setting || 'https://huggingface.co';
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UserError('hub.badEndpoint', `The Hub address "${raw}" is not a web address.`, 'Set HF_ENDPOINT (or the hubEndpoint setting) to something like https://huggingface.co, or remove it.');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new UserError('hub.badEndpoint', `The Hub address "${raw}" is not an http(s) address.`, 'Set HF_ENDPOINT to something like https://huggingface.co, or remove it.');
  }
  return u.origin + u.pathname.replace(/\/+$/, '');
}

export interface HubRequest {
  endpoint: string;
  /** Sent as `Authorization: Bearer` to the endpoint's origin only. */
  token?: string | null | undefined;
  signal?: AbortSignal | undefined;
  /** Milliseconds to wait for the answer's headers. */
  timeoutMs?: number;
  headers?: Record<string, string>;
  /** What the request is for, in words ("the model list"), for error messages. */
  what: string;
  /** The repository, for 401/403/404 words. */
  repo?: string;
}

const MAX_REDIRECTS = 5;

/** GET `url`, following redirects; answers the final response (any status) or throws a plain UserError. */
export async function hubGet(url: string, req: HubRequest): Promise<Response> {
  const origin = new URL(req.endpoint).origin;
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'lathe', ...req.headers };
    if (req.token && new URL(current).origin === origin) headers['authorization'] = `Bearer ${req.token}`;
    const res = await withTimeout(req, (signal) => fetch(current, { headers, redirect: 'manual', signal }));
    if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
      await res.body?.cancel();
      const next = new URL(res.headers.get('location')!, current);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new UserError('hub.badRedirect', `The Hub sent ${req.what} to a ${next.protocol} address, which Lathe does not follow.`, 'Check HF_ENDPOINT: it may not point at the Hub.');
      }
      current = next.toString();
      continue;
    }
    return res;
  }
  throw new UserError('hub.redirects', `The Hub sent ${req.what} through more than ${MAX_REDIRECTS} redirects.`, 'Try again later; if it keeps happening, check HF_ENDPOINT.');
}

async function withTimeout<T>(req: HubRequest, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (req.signal?.aborted) throw new CancelledError();
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  req.signal?.addEventListener('abort', onAbort, { once: true });
  const timeoutMs = req.timeoutMs ?? 30_000;
  const timer = setTimeout(() => ctl.abort(new Error('timeout')), timeoutMs);
  try {
    return await run(ctl.signal);
  } catch (err) {
    if (req.signal?.aborted) throw new CancelledError();
    if (ctl.signal.aborted) {
      throw new UserError('hub.timeout', `The Hub at ${req.endpoint} did not answer within ${Math.round(timeoutMs / 1000)} s (${req.what}).`, 'Check your internet connection and try again.');
    }
    throw unreachable(req, err);
  } finally {
    clearTimeout(timer);
    req.signal?.removeEventListener('abort', onAbort);
  }
}

export function unreachable(req: Pick<HubRequest, 'endpoint' | 'what'>, err: unknown): UserError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new UserError('hub.unreachable', `Lathe could not reach the Hugging Face Hub at ${req.endpoint} (${req.what}): ${why}.`,
    'Check your internet connection (and a proxy or firewall, if you use one), then try again.');
}

/** A non-2xx answer in plain words: gated, not found, server trouble. */
export async function statusError(res: Response, req: HubRequest): Promise<UserError> {
  await res.body?.cancel().catch(() => {});
  const repo = req.repo ?? '';
  const page = `${req.endpoint}/${repo}`;
  if (res.status === 401 || res.status === 403) {
    if (!req.token) {
      return new UserError('hub.gated', `This model needs you to accept its license on huggingface.co and a token (${repo}).`,
        `Open ${page}, accept the license there, create a "read" token at huggingface.co/settings/tokens, and save it under "Hub token" in Lathe (desktop app).`);
    }
    if (res.status === 401) {
      return new UserError('hub.badToken', `The Hub did not accept your token for ${repo}.`, 'Create a new "read" token at huggingface.co/settings/tokens and save it again in Lathe.');
    }
    return new UserError('hub.notAllowed', `Your token may not download ${repo} yet: its license has not been accepted (or access is still being reviewed).`,
      `Open ${page} while signed in, accept the license, and wait until the page says you have access; then download again.`);
  }
  if (res.status === 404) {
    return new UserError('hub.notFound', `There is no ${req.what} "${repo}" on the Hub (or it is private).`, 'Check the spelling (owner/name, for example Qwen/Qwen2.5-0.5B-Instruct); for a private model save a token first.');
  }
  if (res.status === 429) {
    return new UserError('hub.rateLimited', 'The Hub asked Lathe to slow down (too many requests).', 'Wait a minute and try again; saving a Hub token raises the limit.');
  }
  return new UserError('hub.serverError', `The Hub answered HTTP ${res.status} for ${req.what}${repo ? ` (${repo})` : ''}.`, 'The Hub may be having trouble; try again in a few minutes.');
}

/** GET JSON (status checked, body size capped, bad JSON in plain words). */
export async function hubJson(url: string, req: HubRequest, maxBytes = 16 << 20): Promise<unknown> {
  const res = await hubGet(url, req);
  if (!res.ok) throw await statusError(res, req);
  let text: string;
  try {
    text = await withTimeout(req, async (signal) => {
      const body = res.body;
      if (!body) return '';
      const reader = body.getReader();
      const chunks: Uint8Array[] = [];
      let n = 0;
      signal.addEventListener('abort', () => { void reader.cancel(); }, { once: true });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        n += value.byteLength;
        if (n > maxBytes) { await reader.cancel(); throw new UserError('hub.tooBig', `The Hub's answer for ${req.what} is larger than ${maxBytes >> 20} MiB.`, 'Check HF_ENDPOINT: it may not point at the Hub.'); }
        chunks.push(value);
      }
      if (signal.aborted) throw new Error('timeout');
      return Buffer.concat(chunks).toString('utf8');
    });
  } catch (err) {
    if (err instanceof UserError || err instanceof CancelledError) throw err;
    throw unreachable(req, err);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UserError('hub.badResponse', `The Hub at ${req.endpoint} answered ${req.what} with something that is not JSON ("${text.slice(0, 60).replace(/\s+/g, ' ')}…").`,
      'The Hub may be having trouble, or HF_ENDPOINT points somewhere else; try again later.');
  }
}
