import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import type { HostStatus } from '@autoglm/proto';

/** Cumulative byte counters over every interface but loopback. */
export interface NetworkCounters {
  readonly rxBytes: number;
  readonly txBytes: number;
}

/**
 * Parses Linux's /proc/net/dev. Loopback is left out: traffic between
 * processes on the host says nothing about its network load.
 */
export function parseProcNetDev(text: string): NetworkCounters {
  let rxBytes = 0;
  let txBytes = 0;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === 'lo' || name === '' || name.includes('|')) continue;
    // Fields after the colon: 8 receive counters, then 8 transmit counters; bytes lead each group.
    const fields = line.slice(colon + 1).trim().split(/\s+/);
    const rx = Number(fields[0]);
    const tx = Number(fields[8]);
    if (Number.isFinite(rx)) rxBytes += rx;
    if (Number.isFinite(tx)) txBytes += tx;
  }
  return { rxBytes, txBytes };
}

/** Reads /proc/net/dev; undefined off Linux. Synchronous on purpose: procfs answers from memory in microseconds. */
function readProcNetDev(): string | undefined {
  try {
    return readFileSync('/proc/net/dev', 'utf8');
  } catch {
    return undefined;
  }
}

export interface HostSamplerOptions {
  /** @default os.cpus */
  readonly cpus?: () => readonly os.CpuInfo[];
  /** @default os.totalmem */
  readonly totalMemory?: () => number;
  /** Memory available to new work. @default os.freemem (MemAvailable on Linux) */
  readonly freeMemory?: () => number;
  /** Contents of /proc/net/dev, undefined when there is none. @default reads /proc/net/dev */
  readonly netDev?: () => string | undefined;
  /** Milliseconds, monotonic. @default performance.now */
  readonly now?: () => number;
}

interface CpuTotals {
  readonly busy: number;
  readonly total: number;
}

/**
 * Host load as rates over the interval since the previous sample (the first
 * sample covers the time since construction): CPU busy share from os.cpus()
 * tick deltas, network bytes per second from /proc/net/dev counter deltas.
 */
export class HostSampler {
  private readonly cpus: () => readonly os.CpuInfo[];
  private readonly totalMemory: () => number;
  private readonly freeMemory: () => number;
  private readonly netDev: () => string | undefined;
  private readonly now: () => number;
  private lastCpu: CpuTotals;
  private lastNet: NetworkCounters | undefined;
  private lastAt: number;
  private lastCpuUtilization = 0;

  constructor(options: HostSamplerOptions = {}) {
    this.cpus = options.cpus ?? os.cpus;
    this.totalMemory = options.totalMemory ?? os.totalmem;
    this.freeMemory = options.freeMemory ?? os.freemem;
    this.netDev = options.netDev ?? readProcNetDev;
    this.now = options.now ?? (() => performance.now());
    this.lastCpu = cpuTotals(this.cpus());
    this.lastNet = this.readNet();
    this.lastAt = this.now();
  }

  sample(): HostStatus {
    const at = this.now();
    const cpu = cpuTotals(this.cpus());
    const net = this.readNet();
    const ticks = cpu.total - this.lastCpu.total;
    // Two samples within one clock tick see no change; repeat the last reading rather than report 0.
    if (ticks > 0) this.lastCpuUtilization = clamp01((cpu.busy - this.lastCpu.busy) / ticks);
    const seconds = (at - this.lastAt) / 1000;
    let rx = 0;
    let tx = 0;
    if (net !== undefined && this.lastNet !== undefined && seconds > 0) {
      // A counter that went down (interface removed, counter wrapped) gives no rate for this interval.
      rx = Math.max(0, net.rxBytes - this.lastNet.rxBytes) / seconds;
      tx = Math.max(0, net.txBytes - this.lastNet.txBytes) / seconds;
    }
    this.lastCpu = cpu;
    this.lastNet = net;
    this.lastAt = at;
    const total = this.totalMemory();
    return {
      cpuUtilization: this.lastCpuUtilization,
      memoryUsedBytes: Math.max(0, total - this.freeMemory()),
      memoryTotalBytes: total,
      networkRxBytesPerSecond: rx,
      networkTxBytesPerSecond: tx,
    };
  }

  private readNet(): NetworkCounters | undefined {
    const text = this.netDev();
    return text === undefined ? undefined : parseProcNetDev(text);
  }
}

function cpuTotals(cpus: readonly os.CpuInfo[]): CpuTotals {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    total += all;
    busy += all - times.idle;
  }
  return { busy, total };
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
