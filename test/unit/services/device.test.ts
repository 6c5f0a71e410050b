/**
 * The device of the app's chat and evaluation jobs (services/device.ts): 'auto' is Lathe's GPU backend where
 * a GPU device exists and the CPU otherwise, a software-only adapter (Mesa lavapipe, here) means the CPU under
 * 'auto' but runs when 'gpu' is asked for, the menu's expectation costs no driver, and the channel validates
 * its payload.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch } from '../../../src-main/services';
import { expectedDevice, resolveDevice, deviceLogLine } from '../../../src-main/services/device';
import { memoryEpOf } from '../../../src-main/services/hub';
import { chooseGpuBackend, hasGpuDevice } from '../../../src-main/engine/backends/webgpu/choose';
import { closeGpu } from '../../../src-main/engine/backends/webgpu/device';
import { testServices } from '../../helpers/services';

afterAll(async () => {
  await closeGpu();
});

describe('the device menu (no driver opened)', () => {
  it('automatic: the GPU backend where a GPU device exists, the CPU otherwise, each with its reason', () => {
    expect(expectedDevice('auto', true)).toEqual({ device: 'gpu', reason: expect.stringMatching(/^Automatic: GPU \(Lathe\), because a GPU was found/) });
    expect(expectedDevice('auto', false)).toEqual({ device: 'cpu', reason: 'Automatic: CPU, because no GPU was found on this computer.' });
    expect(expectedDevice(undefined, false).device).toBe('cpu');
    expect(expectedDevice(undefined, hasGpuDevice())).toEqual(expectedDevice('auto'));
  });

  it('a device chosen by the user is that device, said so', () => {
    for (const ep of ['gpu', 'cpu', 'webgpu', 'cuda'] as const) {
      for (const hasGpu of [true, false]) {
        const d = expectedDevice(ep, hasGpu);
        expect(d.device).toBe(ep);
        expect(d.reason).toMatch(/chosen by you/);
      }
    }
  });

  it('the Hub\'s memory fit counts Lathe\'s GPU as a GPU and automatic as the expected device', () => {
    expect(memoryEpOf('gpu')).toBe('webgpu');
    expect(memoryEpOf('cpu')).toBe('cpu');
    expect(memoryEpOf('cuda')).toBe('cuda');
    expect(memoryEpOf('auto')).toBe(hasGpuDevice() ? 'webgpu' : 'cpu');
  });

  it('devices.expected answers through dispatch and refuses what is not a device', async () => {
    const s = testServices();
    try {
      const ok = await dispatch(s, 'devices.expected', { ep: 'gpu' });
      expect(ok).toMatchObject({ ok: true, value: { device: 'gpu' } });
      for (const bad of [{ ep: 'metal' }, {}, { ep: 'gpu', extra: 1 }, { ep: 3 }]) {
        const env = await dispatch(s, 'devices.expected', bad);
        expect(env.ok, JSON.stringify(bad)).toBe(false);
      }
    } finally {
      s.jobs.dispose();
      await s.offload.close();
    }
  });
});

describe('the device a job runs on (decided in the job process)', () => {
  it('automatic without a GPU device: the CPU, because none was found', async () => {
    expect(await resolveDevice('auto', false)).toEqual({ device: 'cpu', reason: 'Automatic: CPU, because no GPU was found on this computer.' });
    expect(await resolveDevice('auto', false)).toEqual(expectedDevice('auto', false));
    expect((await resolveDevice(undefined, false)).device).toBe('cpu');
  });

  it('automatic with only a software adapter (lavapipe here): the CPU, saying why; the trainer is told so too', async () => {
    const d = await resolveDevice('auto', true);
    expect(d).toEqual({ device: 'cpu', reason: 'Automatic: CPU, because the only WebGPU adapter is a software one (slower than the CPU).' });
    expect(await chooseGpuBackend('auto', null, true)).toMatchObject({ use: false, softwareOnly: true });
  }, 120_000);

  it('"gpu" asked for runs on the adapter there is (lavapipe included), named in the reason and the log line', async () => {
    const d = await resolveDevice('gpu', false);
    expect(d.device).toBe('gpu');
    expect(d.reason).toMatch(/^Using Lathe's GPU backend as requested: GPU: .*\(software\)/);
    expect(deviceLogLine(d)).toBe(`Device: GPU (Lathe). ${d.reason}`);
  }, 120_000);

  it('automatic with a hardware adapter: Lathe\'s GPU backend, with the adapter in the reason (the choice as choose.ts answers it on such a machine)', async () => {
    const asked: unknown[][] = [];
    const hardware: typeof chooseGpuBackend = async (...a) => { asked.push(a); return { use: true, reason: 'Using Lathe\'s GPU backend: GPU: nvidia / hopper / H100' }; };
    expect(await resolveDevice('auto', true, hardware)).toEqual({ device: 'gpu', reason: 'Automatic: Using Lathe\'s GPU backend: GPU: nvidia / hopper / H100' });
    expect(await resolveDevice(undefined, true, hardware)).toMatchObject({ device: 'gpu' });
    expect(asked).toEqual([['auto', null, true], ['auto', null, true]]);
    // the onnxruntime EPs never ask the GPU backend
    await resolveDevice('cpu', true, hardware);
    expect(asked).toHaveLength(2);
  });

  it('an onnxruntime EP is probed: the CPU works, CUDA (not installed here) is refused in plain words', async () => {
    expect(await resolveDevice('cpu')).toEqual({ device: 'cpu', reason: 'Using CPU as requested: always available (slowest)' });
    await expect(resolveDevice('cuda')).rejects.toMatchObject({ name: 'UserError', code: 'engine.ep-unavailable' });
  }, 120_000);
});
