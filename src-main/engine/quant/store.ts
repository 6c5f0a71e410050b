/**
 * NF4 codes in a file instead of inside the .onnx (which must stay under 2 GB: a 7B model's codes alone
 * are 3.5 GB). ORT reads external data only inside the folder the session's externalDataDir names (the
 * model folder, for training graphs), so the file is written there, named per process, and removed by
 * `remove()` once the sessions that read it exist (ORT has read or mapped the data by then: tested on
 * Linux with the CPU EP; on Windows remove it after the sessions are disposed).
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Nf4ByteStore } from './graph';
import type { WeightSource } from '../llm/forward';
import { useNf4Store } from './linear';

export class Nf4FileStore implements Nf4ByteStore {
  private fd: number | null;
  private size = 0;
  readonly file: string;
  /** Path relative to `dir`: the external-data location. */
  readonly location: string;

  constructor(readonly dir: string) {
    this.location = `.lathe-nf4-${process.pid}-${Date.now().toString(36)}.bin`;
    this.file = path.join(dir, this.location);
    this.fd = openSync(this.file, 'w');
  }

  put(bytes: Uint8Array): { location: string; offset: number; length: number } {
    if (this.fd === null) throw new Error(`Nf4FileStore: ${this.file} is already closed.`);
    // 64-byte alignment: ORT may map external data, and aligned tensors can be used in place
    const pad = (64 - (this.size % 64)) % 64;
    if (pad) this.write(new Uint8Array(pad));
    const offset = this.size;
    this.write(bytes);
    return { location: this.location, offset, length: bytes.byteLength };
  }

  private write(b: Uint8Array): void {
    // writeSync may write less than asked: loop until all of it is in the file
    for (let done = 0; done < b.byteLength;) done += writeSync(this.fd!, b, done, b.byteLength - done, this.size + done);
    this.size += b.byteLength;
  }

  /** Bytes written. */
  get bytes(): number {
    return this.size;
  }

  /** Finish writing (call before creating sessions). */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** Best effort: a file still mapped by a session cannot be removed on Windows; it is only a cache. */
  remove(): void {
    this.close();
    try {
      rmSync(this.file, { force: true });
    } catch { /* left for the next run's folder clean-up */ }
  }
}

/**
 * For the trainer: graphs built from `src` put their codes in a file in the model folder until
 * `remove()` (call it once the sessions exist, and in `finally`). Null when the folder is not
 * writable: the codes then stay inside the model, which is fine below ~2 GB of codes (~4B parameters).
 */
export function openNf4Store(src: WeightSource): { remove(): void } | null {
  let store: Nf4FileStore;
  try {
    store = new Nf4FileStore(src.dir);
  } catch {
    return null;
  }
  useNf4Store(src, store);
  return {
    remove: () => {
      useNf4Store(src, null);
      store.remove();
    },
  };
}
