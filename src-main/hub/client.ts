/**
 * The Hub's read API for the endpoints Lathe uses:
 *   GET /api/models?search=&filter=&sort=downloads&direction=-1&limit=&expand=   the model list
 *   GET /api/models/{owner/name}/revision/{rev}?blobs=true                        one model: commit, gate, files with
 *                                                                                 sizes and (LFS files) their SHA-256
 *   GET /{owner/name}/resolve/{commit}/{file}                                      a file (download.ts)
 * Answers are checked with zod; anything else is refused in plain words.
 */
import { z } from 'zod';
import { UserError } from '../util/progress';
import { hubJson, type HubRequest } from './http';

/** owner/name as the Hub spells repository ids (letters, digits, - _ .; no "..", no leading dot). */
export const REPO_ID = /^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$/;
/** A branch, tag or commit (refs/pr/N included); no "..". */
export const REVISION = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$/;

export function checkRepoId(repo: string): void {
  if (!REPO_ID.test(repo) || repo.includes('..')) {
    throw new UserError('hub.badRepoId', `"${repo.slice(0, 100)}" is not a Hub model id.`, 'Use the owner/name shown on the model’s page, for example HuggingFaceTB/SmolLM2-135M-Instruct.');
  }
}

const Gated = z.union([z.boolean(), z.string()]).optional();

const SearchItem = z.object({
  id: z.string(),
  downloads: z.number().optional(),
  likes: z.number().optional(),
  gated: Gated,
  private: z.boolean().optional(),
  pipeline_tag: z.string().optional(),
  tags: z.array(z.string()).optional(),
  safetensors: z.object({ total: z.number().optional() }).passthrough().optional(),
}).passthrough();
export type HubSearchItem = z.infer<typeof SearchItem>;

const Sibling = z.object({
  rfilename: z.string(),
  size: z.number().int().nonnegative().optional(),
  lfs: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).passthrough().optional(),
}).passthrough();
export type HubSibling = z.infer<typeof Sibling>;

const ModelInfo = z.object({
  id: z.string(),
  sha: z.string().regex(/^[0-9a-f]{40}$/),
  gated: Gated,
  private: z.boolean().optional(),
  siblings: z.array(Sibling).max(100_000),
  safetensors: z.object({ total: z.number().optional() }).passthrough().optional(),
  pipeline_tag: z.string().optional(),
}).passthrough();
export type HubModelInfo = z.infer<typeof ModelInfo>;

function parse<T>(schema: z.ZodType<T>, value: unknown, req: HubRequest): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new UserError('hub.badResponse', `The Hub at ${req.endpoint} answered ${req.what} in a shape Lathe does not know (${issue ? `${issue.path.join('.') || 'the answer'}: ${issue.message}` : 'unreadable'}).`,
    'The Hub may have changed or HF_ENDPOINT points somewhere else; try again later, or download the model folder by hand.');
}

export interface SearchOptions { query: string; limit: number; signal?: AbortSignal | undefined }

export class HubClient {
  constructor(readonly endpoint: string, private readonly token: string | null = null) {}

  private req(what: string, repo?: string, signal?: AbortSignal): HubRequest {
    return { endpoint: this.endpoint, token: this.token, what, ...(repo ? { repo } : {}), signal };
  }

  /** Text-generation models with safetensors weights whose name contains `query`, most downloaded first. */
  async search(opts: SearchOptions): Promise<HubSearchItem[]> {
    const q = new URLSearchParams({ search: opts.query, sort: 'downloads', direction: '-1', limit: String(opts.limit) });
    q.append('filter', 'text-generation');
    q.append('filter', 'safetensors');
    for (const e of ['downloads', 'likes', 'gated', 'pipeline_tag', 'safetensors']) q.append('expand[]', e);
    const req = this.req('the model search');
    return parse(z.array(SearchItem).max(1000), await hubJson(`${this.endpoint}/api/models?${q}`, req), req);
  }

  /** One model at `revision`: its commit, gate and files (sizes, LFS SHA-256). */
  async modelInfo(repo: string, revision: string, signal?: AbortSignal): Promise<HubModelInfo> {
    checkRepoId(repo);
    if (!REVISION.test(revision) || revision.includes('..')) {
      throw new UserError('hub.badRevision', `"${revision.slice(0, 100)}" is not a branch, tag or commit name.`, 'Leave the revision empty to get the main branch.');
    }
    const req = this.req('model', repo, signal);
    const url = `${this.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
    const info = parse(ModelInfo, await hubJson(url, req), req);
    // The id names the model's folder: one that could climb out of the models folder is refused.
    if (!REPO_ID.test(info.id) || info.id.includes('..')) {
      throw new UserError('hub.badResponse', `The Hub at ${this.endpoint} answered with a model id Lathe cannot use as a folder name ("${info.id.slice(0, 100)}").`, 'Check HF_ENDPOINT: it may not point at the Hub.');
    }
    return info;
  }
}
