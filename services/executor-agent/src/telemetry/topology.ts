import { execFile } from 'node:child_process';

/**
 * The GPU-to-GPU part of `nvidia-smi topo -m`: `links[i][j]` is the token
 * printed for GPU i and GPU j (`X`, `NV12`, `PIX`, `SYS`, ...), square and
 * indexed by GPU index. The same shape as `GpuTopology` in @autoglm/core,
 * declared here so this file does not wait on core's exports.
 */
export interface ParsedTopology {
  links: string[][];
}

/** What `readNvidiaSmiTopology` runs after the command. */
export const NVIDIA_SMI_TOPOLOGY_ARGS: readonly string[] = Object.freeze(['topo', '-m']);

/**
 * Escape sequences (nvidia-smi underlines the header on a terminal) and what is
 * left of them once the ESC byte is lost in a copy, as in published outputs.
 */
const ESCAPES = /\u001b\[[0-9;]*[A-Za-z]|\[[0-9;]*m/g;
const GPU_LABEL = /^GPU(\d+)$/;

/**
 * Parses the matrix printed by `nvidia-smi topo -m`, keeping only the GPU rows
 * and GPU columns. The header names the columns (GPU0.. first, then NICs such as
 * `NIC0` or `mlx5_0`, then CPU Affinity, NUMA Affinity, GPU NUMA ID); each row
 * starts with its device name. Cells are split on any run of whitespace, so tabs
 * and space-aligned copies both read; the GPU cells come first in every GPU
 * row, so NIC columns, the affinity columns (which may be empty), NIC rows and
 * the legend after the matrix are never looked at. Undefined when there is no
 * complete GPU matrix: a partial one would misplace work, none only loses the
 * preference for close GPUs.
 */
export function parseNvidiaSmiTopology(text: string): ParsedTopology | undefined {
  const lines = text.replace(ESCAPES, '').split(/\r?\n/);
  const headerAt = lines.findIndex((line) => gpuColumns(line) > 0);
  if (headerAt < 0) return undefined;
  const size = gpuColumns(lines[headerAt] ?? '');
  const links: (string[] | undefined)[] = new Array<string[] | undefined>(size).fill(undefined);
  let filled = 0;
  for (const line of lines.slice(headerAt + 1)) {
    const [label = '', ...cells] = line.trim().split(/\s+/);
    const match = GPU_LABEL.exec(label);
    if (match === null) continue;
    const index = Number(match[1]);
    if (index >= size || links[index] !== undefined) continue;
    const row = cells.slice(0, size);
    if (row.length < size || row[index] !== 'X') return undefined;
    links[index] = row;
    // Whatever follows the last GPU row (NIC rows, the legend, another matrix such as `topo -p2p`) is not read.
    if (++filled === size) break;
  }
  return links.every((row): row is string[] => row !== undefined) ? { links } : undefined;
}

/**
 * How many GPU columns a header line names: its leading `GPU<n>` names, which
 * must run GPU0, GPU1, ... A line with an `X` cell is a row, not a header.
 */
function gpuColumns(line: string): number {
  const tokens = line.trim().split(/\s+/);
  if (tokens.includes('X')) return 0;
  let columns = 0;
  while (tokens[columns] === `GPU${columns}`) columns++;
  return columns;
}

export interface ReadNvidiaSmiTopologyOptions {
  /** @default 5000: the matrix takes longer than a status query on hosts with many NICs, but not this long unless the driver is wedged. */
  readonly timeoutMs?: number;
  /** @default "nvidia-smi" (found on PATH) */
  readonly command?: string;
}

/**
 * Reads the host's GPU interconnect through `nvidia-smi topo -m`. Resolves
 * undefined when nvidia-smi is not installed, fails, times out or prints no
 * matrix. Unlike `readNvidiaSmi` it never rejects: the topology only ranks
 * otherwise equal placements, and without it the agent places as before.
 */
export function readNvidiaSmiTopology(options: ReadNvidiaSmiTopologyOptions = {}): Promise<ParsedTopology | undefined> {
  const command = options.command ?? 'nvidia-smi';
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve) => {
    execFile(command, [...NVIDIA_SMI_TOPOLOGY_ARGS], { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (error, stdout) => {
      resolve(error === null ? parseNvidiaSmiTopology(stdout) : undefined);
    });
  });
}
