/** What the wizards share: the open project, its model, the corpus paths and the dataset/run in use. */
import type { ProjectSummary } from '../../src-main/contract';
import type { ModelSummary } from '../../src-main/contract/wizards';
import { api } from '../lib/api';

export type Page = 'start' | 'data' | 'tokenizer' | 'lora' | 'train' | 'template' | 'export' | 'chat' | 'eval' | 'activity';

const RUN_JOBS_KEY = 'lathe.runJobs';
const CORPUS_KEY = 'lathe.corpus:';

function readRunJobs(): Record<string, string> {
  try {
    const v = JSON.parse(localStorage.getItem(RUN_JOBS_KEY) ?? '{}') as unknown;
    return v && typeof v === 'object' ? (v as Record<string, string>) : {};
  } catch {
    return {};
  }
}

class ProjectStore {
  page: Page = $state('start');
  project: ProjectSummary | null = $state(null);
  model: ModelSummary | null = $state(null);
  resources: { tinyModel: string; domainCorpus: string; generalCorpus: string } | null = $state(null);
  /** Corpus paths as typed in the corpus wizard; the tokenizer wizard reuses them. */
  domainPaths = $state('');
  generalPaths = $state('');
  dataset: string | null = $state(null);
  /** The run the dashboard shows, and the job training it (when live). */
  runDir: string | null = $state(null);
  runJobs: Record<string, string> = $state(readRunJobs());
  /** What the Chat page opens with when another page sends the user there ("Chat with it" after an export). */
  chatWith: { gguf: string } | { model: string } | null = $state(null);

  constructor() {
    // Remembered across reloads, so the dashboard finds the job still training a run.
    $effect.root(() => {
      $effect(() => {
        try {
          localStorage.setItem(RUN_JOBS_KEY, JSON.stringify(this.runJobs));
        } catch {
          // storage full or disabled: the mapping then lasts for this page only
        }
      });
      // The corpus paths typed for a project come back when it is opened again.
      $effect(() => {
        const p = this.project?.path;
        const value = JSON.stringify({ domain: this.domainPaths, general: this.generalPaths });
        if (!p) return;
        try {
          localStorage.setItem(CORPUS_KEY + p, value);
        } catch {
          // as above
        }
      });
    });
    void api['app.resources']({}).then((r) => (this.resources = r)).catch(() => undefined);
  }

  async openProject(p: ProjectSummary): Promise<void> {
    let saved: { domain?: string; general?: string } = {};
    try {
      saved = JSON.parse(localStorage.getItem(CORPUS_KEY + p.path) ?? '{}') as typeof saved;
    } catch {
      saved = {};
    }
    this.domainPaths = saved.domain ?? '';
    this.generalPaths = saved.general ?? '';
    this.project = p;
    this.model = null;
    this.dataset = null;
    this.runDir = null;
    this.chatWith = null;
    if (p.modelPath) {
      try {
        this.model = await api['models.inspect']({ path: p.modelPath });
      } catch {
        this.model = null;
      }
    }
  }

  /** Paths typed one per line (blank lines ignored). */
  static lines(text: string): string[] {
    return text.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  /** A folder inside the project. */
  sub(...parts: string[]): string {
    const root = this.project?.path ?? '';
    const sep = root.includes('\\') && !root.includes('/') ? '\\' : '/';
    return [root.replace(/[\\/]+$/, ''), ...parts].join(sep);
  }
}

export const store = new ProjectStore();
export const lines = ProjectStore.lines;

export { stamp, fmtInt, fmtNum, fmtDuration } from '../lib/format';
