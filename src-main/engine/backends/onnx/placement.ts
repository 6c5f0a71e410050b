/**
 * Which EP each node lands on, and why some fall back to the CPU. ORT only tells this in its verbose
 * log, which native code writes straight to the process's stdout/stderr, so we create the session in a
 * short-lived child process and parse what it prints. Slow-ish (a process start + one session), so it
 * is used to explain failures and in tests, never on the training hot path.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel } from '../../onnx/encode';
import type { OnnxModel } from '../../onnx/spec';
import { ensureXdgRuntimeDir } from '../../runtime/env';
import { patchForEp } from './patches';
import { sessionOptions, type EngineSessionOptions, type EpName } from './session';

export interface PlacedNode {
  op: string;
  name: string;
}

export interface FallbackNode extends PlacedNode {
  /** Plain words: e.g. "the WebGPU EP has no kernel for Sign with these input types". */
  reason: string;
}

export interface PlacementReport {
  ep: EpName;
  /**
   * ORT's provider name (e.g. 'WebGpuExecutionProvider') -> nodes placed there (after ORT's own
   * rewrites). When ORT reports "All nodes placed on [X]" it lists none: then this holds the model's nodes.
   */
  byProvider: Record<string, PlacedNode[]>;
  /** Provider -> number of nodes ORT placed there (includes nodes ORT added, e.g. Memcpy). */
  counts: Record<string, number>;
  /** Nodes of the model that run on the CPU EP although another EP was asked for. */
  fallback: FallbackNode[];
  /** Memcpy nodes ORT inserted between devices (each costs a copy per run). */
  copies: number;
  /** True when every compute node is on the requested EP. */
  allOnEp: boolean;
}

/** Gives every node a unique name so log lines can be traced back (ORT logs an empty name otherwise). */
export function nameNodes(model: OnnxModel): OnnxModel {
  const seen = new Set<string>();
  const nodes = model.graph.nodes.map((n, i) => {
    let name = n.name || `n${i}_${n.op}`;
    if (seen.has(name)) name = `${name}_${i}`;
    seen.add(name);
    return { ...n, name };
  });
  return { ...model, graph: { ...model.graph, nodes } };
}

const CHILD = `
const ort = require(process.argv[1]);
const opts = JSON.parse(process.argv[3]);
ort.InferenceSession.create(process.argv[2], opts)
  .then((s) => s.release())
  .then(() => { process.stdout.write('\\nLATHE_PLACEMENT_DONE\\n'); process.exit(0); },
        (e) => { process.stdout.write('\\nLATHE_PLACEMENT_ERROR ' + String(e && e.message || e) + '\\n'); process.exit(0); });
`;

export async function reportPlacement(model: OnnxModel, opts: EngineSessionOptions & { ep: EpName }): Promise<PlacementReport> {
  ensureXdgRuntimeDir();
  const named = nameNodes(patchForEp(model, opts.ep, { maxStorageBuffers: opts.maxStorageBuffers }).model);
  const dir = mkdtempSync(join(tmpdir(), 'lathe-placement-'));
  try {
    const file = join(dir, 'model.onnx');
    writeFileSync(file, encodeModel(named));
    // Fallback must be allowed here, or ORT stops before printing where nodes went.
    const so = sessionOptions(opts.ep, { ...opts, disableCpuFallback: false, logSeverity: 0, gpuOutputs: undefined });
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    const log = await runChild([ '-e', CHILD, ortPath, file, JSON.stringify(so)]);
    const err = /LATHE_PLACEMENT_ERROR (.*)/.exec(log);
    if (err) throw new Error(`reportPlacement: session creation failed on ${opts.ep}: ${err[1]}`);
    if (!log.includes('LATHE_PLACEMENT_DONE')) throw new Error(`reportPlacement: the probe process died; its log ends:\n${log.slice(-2000)}`);
    return parsePlacementLog(log, opts.ep, named);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runChild(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // ELECTRON_RUN_AS_NODE makes Electron's binary behave as plain node when we run inside the app.
    const child = spawn(process.execPath, args, { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

export function parsePlacementLog(log: string, ep: EpName, model: OnnxModel): PlacementReport {
  // eslint-disable-next-line no-control-regex
  const lines = log.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
  const noKernel = new Map<string, string>(); // node name -> op
  const byProvider: Record<string, PlacedNode[]> = {};
  const counts: Record<string, number> = {};
  let current: string | undefined;
  for (const line of lines) {
    const nk = /kernel not found in registries for Op type: (\S+) node name: (.*)$/.exec(line);
    if (nk) noKernel.set(nk[2]!.trim(), nk[1]!);
    const all = /All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line);
    if (all) {
      counts[all[1]!] = Number(all[2]);
      byProvider[all[1]!] = model.graph.nodes.map((n) => ({ op: n.op, name: n.name ?? '' }));
      continue;
    }
    const head = /Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line);
    if (head) { current = head[1]!; byProvider[current] ??= []; counts[current] = Number(head[2]); continue; }
    if (current) {
      const node = /VerifyEachNodeIsAssignedToAnEp\]\s{2,}(\S+) \((.*)\)\s*$/.exec(line);
      if (node) byProvider[current]!.push({ op: node[1]!, name: node[2]! });
      else if (!/VerifyEachNodeIsAssignedToAnEp/.test(line)) current = undefined;
    }
  }
  const names = new Set(model.graph.nodes.map((n) => n.name));
  const fallback: FallbackNode[] = [];
  if (ep !== 'cpu') {
    for (const n of byProvider.CPUExecutionProvider ?? []) {
      const reason = noKernel.has(n.name)
        ? `the ${ep === 'webgpu' ? 'WebGPU' : 'CUDA'} EP has no kernel for ${n.op} with these input types`
        : names.has(n.name)
          ? 'onnxruntime put it on the CPU on purpose (small shape/index computation)'
          : 'a node onnxruntime created while optimizing the graph';
      fallback.push({ ...n, reason });
    }
  }
  const copies = Object.values(byProvider).flat().filter((n) => n.op.startsWith('Memcpy')).length;
  return { ep, byProvider, counts, fallback, copies, allOnEp: fallback.length === 0 };
}

export function describeFallback(r: PlacementReport): string {
  if (r.allOnEp) return `All nodes run on ${r.ep}.`;
  return `${r.fallback.length} node(s) would run on the CPU instead of ${r.ep}: ` +
    r.fallback.map((n) => `${n.op} "${n.name}" (${n.reason})`).join('; ');
}
