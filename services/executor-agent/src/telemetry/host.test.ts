import type { CpuInfo } from 'node:os';
import { HostSampler, parseProcNetDev } from './host';

const NET_DEV = (rx: number, tx: number) => `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9999999   29    0    0    0     0          0         0  9999999      29    0    0    0     0       0          0
  eth0: ${rx}  1000    0    0    0     0          0         0 ${tx}   800    0    0    0     0       0          0
  ib0:    1000     10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
`;

function cpu(user: number, idle: number): CpuInfo {
  return { model: 'cpu', speed: 3000, times: { user, nice: 0, sys: 0, idle, irq: 0 } };
}

describe('parseProcNetDev', () => {
  it('sums byte counters over interfaces except loopback', () => {
    expect(parseProcNetDev(NET_DEV(5000, 7000))).toEqual({ rxBytes: 6000, txBytes: 9000 });
  });
});

describe('HostSampler', () => {
  it('reports CPU share, memory and network rates over the interval since the last sample', () => {
    let now = 0;
    let cpus = [cpu(100, 900), cpu(100, 900)];
    let netDev: string | undefined = NET_DEV(0, 0);
    const sampler = new HostSampler({
      cpus: () => cpus,
      totalMemory: () => 64e9,
      freeMemory: () => 48e9,
      netDev: () => netDev,
      now: () => now,
    });

    now = 2000;
    cpus = [cpu(175, 925), cpu(100, 1000)]; // 75 busy ticks of 200
    netDev = NET_DEV(2_000_000, 500_000);
    expect(sampler.sample()).toEqual({
      cpuUtilization: 0.375,
      memoryUsedBytes: 16e9,
      memoryTotalBytes: 64e9,
      networkRxBytesPerSecond: 1_000_000,
      networkTxBytesPerSecond: 250_000,
    });

    // No tick passed: repeat the last CPU reading rather than claim the host went idle.
    now = 2001;
    expect(sampler.sample().cpuUtilization).toBe(0.375);

    // Counters that go backwards (an interface went away) give no rate, not a negative one.
    now = 3001;
    netDev = NET_DEV(0, 0);
    expect(sampler.sample()).toMatchObject({ networkRxBytesPerSecond: 0, networkTxBytesPerSecond: 0 });
  });

  it('reports no network traffic where there is no /proc/net/dev', () => {
    let now = 0;
    const sampler = new HostSampler({ netDev: () => undefined, now: () => now });
    now = 1000;
    expect(sampler.sample()).toMatchObject({ networkRxBytesPerSecond: 0, networkTxBytesPerSecond: 0 });
  });

  it('samples the real host', () => {
    const status = new HostSampler().sample();
    expect(status.memoryTotalBytes).toBeGreaterThan(0);
    expect(status.memoryUsedBytes).toBeGreaterThan(0);
    expect(status.cpuUtilization).toBeGreaterThanOrEqual(0);
    expect(status.cpuUtilization).toBeLessThanOrEqual(1);
  });
});
