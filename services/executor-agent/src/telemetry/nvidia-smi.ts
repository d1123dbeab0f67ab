import { execFile } from 'node:child_process';
import type { GpuStatus } from '@autoglm/proto';

/** The query `readNvidiaSmi` runs; `parseNvidiaSmiCsv` expects its columns in this order. */
export const NVIDIA_SMI_ARGS: readonly string[] = Object.freeze([
  '--query-gpu=index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw',
  '--format=csv,noheader,nounits',
]);

const MIB = 1024 * 1024;

/**
 * Parses `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw --format=csv,noheader,nounits`.
 * Memory is in MiB and becomes bytes; utilisation is a percentage and becomes
 * a fraction. A reading the driver cannot give ("[N/A]", "[Not Supported]", as
 * on MIG or some consumer boards) becomes 0 rather than dropping the GPU: a
 * GPU with an unknown power draw can still take work. Lines that do not have
 * the seven columns are skipped.
 */
export function parseNvidiaSmiCsv(text: string): GpuStatus[] {
  const gpus: GpuStatus[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const fields = line.split(',').map((f) => f.trim());
    if (fields.length < 7) continue;
    // Product names have no commas today, but if one ever does, the numbers are still the last five fields.
    const [indexField] = fields;
    const numbers = fields.slice(-5);
    const index = Number.parseInt(indexField ?? '', 10);
    if (!Number.isInteger(index) || index < 0) continue;
    const [utilization, memoryUsed, memoryTotal, temperature, power] = numbers.map(reading);
    gpus.push({
      index,
      name: fields.slice(1, -5).join(', '),
      utilization: Math.min(1, (utilization ?? 0) / 100),
      memoryUsedBytes: Math.round((memoryUsed ?? 0) * MIB),
      memoryTotalBytes: Math.round((memoryTotal ?? 0) * MIB),
      temperatureC: temperature ?? 0,
      powerWatts: power ?? 0,
    });
  }
  return gpus;
}

function reading(field: string): number {
  const n = Number(field);
  return field !== '' && Number.isFinite(n) ? n : 0;
}

export interface ReadNvidiaSmiOptions {
  /** @default 2000: nvidia-smi answers in well under a second unless the driver is wedged. */
  readonly timeoutMs?: number;
  /** @default "nvidia-smi" (found on PATH) */
  readonly command?: string;
}

/** nvidia-smi is present but did not answer usefully (driver not loaded, timed out). */
export class NvidiaSmiError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NvidiaSmiError';
  }
}

/**
 * Reads every GPU's status through nvidia-smi. Resolves undefined when
 * nvidia-smi is not installed (a host without NVIDIA GPUs); rejects with
 * `NvidiaSmiError` when it is installed but fails, which is worth logging.
 */
export function readNvidiaSmi(options: ReadNvidiaSmiOptions = {}): Promise<GpuStatus[] | undefined> {
  const command = options.command ?? 'nvidia-smi';
  const timeoutMs = options.timeoutMs ?? 2000;
  return new Promise((resolve, reject) => {
    execFile(command, [...NVIDIA_SMI_ARGS], { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) {
        resolve(parseNvidiaSmiCsv(stdout));
        return;
      }
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        resolve(undefined);
        return;
      }
      const why = error.killed ? `no answer within ${timeoutMs} ms` : (stderr.trim() || stdout.trim() || error.message);
      reject(new NvidiaSmiError(`${command} failed: ${why}`, { cause: error }));
    });
  });
}
