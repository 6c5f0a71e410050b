/**
 * The renderer's typed API, derived from the contract. In Electron the preload provides the transport
 * (`window.lathe`); in a plain browser (tests, `npm run dev:web`) the WebSocket bridge does.
 */
import {
  channelNames,
  GLOBAL_NAME,
  type Api,
  type ApiErrorShape,
  type ChannelName,
  type Envelope,
  type EventName,
  type RawApi,
} from '../../src-main/contract';

export class ApiError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  constructor(e: ApiErrorShape) {
    super(e.message);
    this.name = 'ApiError';
    this.code = e.code;
    this.hint = e.hint;
  }
}

function bridgeTransport(): RawApi {
  const token = new URLSearchParams(location.search).get('token') ?? '';
  const ws = new WebSocket(`ws://${location.host}/api?token=${encodeURIComponent(token)}`);
  const open = new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error('Could not connect to Lathe. Is `npm run dev:web` (or `npx lathe serve`) still running? Start it again and open the address it prints.')), { once: true });
  });
  let next = 1;
  const pending = new Map<number, (e: Envelope<unknown>) => void>();
  const listeners = new Map<EventName, Set<(p: unknown) => void>>();
  ws.addEventListener('message', (m) => {
    const msg = JSON.parse(String(m.data)) as { id?: number; envelope?: Envelope<unknown>; event?: EventName; payload?: unknown };
    if (msg.event) listeners.get(msg.event)?.forEach((l) => l(msg.payload));
    else if (typeof msg.id === 'number' && msg.envelope) {
      pending.get(msg.id)?.(msg.envelope);
      pending.delete(msg.id);
    }
  });
  const raw: Record<string, unknown> = {};
  for (const name of channelNames) {
    raw[name] = async (payload: unknown) => {
      await open;
      const id = next++;
      return new Promise<Envelope<unknown>>((resolve) => {
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, channel: name, payload }));
      });
    };
  }
  raw.on = (event: EventName, listener: (p: unknown) => void) => {
    const set = listeners.get(event) ?? new Set();
    set.add(listener);
    listeners.set(event, set);
    return () => set.delete(listener);
  };
  return raw as RawApi;
}

const transport: RawApi = (globalThis as unknown as Record<string, RawApi | undefined>)[GLOBAL_NAME] ?? bridgeTransport();

function typed(raw: RawApi): Api {
  const out: Record<string, unknown> = {};
  for (const name of channelNames) {
    out[name] = async (payload: unknown) => {
      const env = await raw[name as ChannelName](payload);
      if (!env.ok) throw new ApiError(env.error);
      return env.value;
    };
  }
  out.on = raw.on;
  return out as Api;
}

export const api: Api = typed(transport);
