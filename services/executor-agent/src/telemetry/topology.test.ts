import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseNvidiaSmiTopology, type ParsedTopology, readNvidiaSmiTopology } from './topology';

/** Real outputs; fixtures/README.md says where each was published. */
function fixture(name: string): string {
  return readFileSync(path.join(__dirname, 'fixtures', name), 'utf8');
}

function parsed(text: string): ParsedTopology {
  const topology = parseNvidiaSmiTopology(text);
  if (topology === undefined) throw new Error('no GPU matrix parsed');
  return topology;
}

/** Every off-diagonal cell is `kind`, the diagonal is X. */
function uniform(size: number, kind: string): string[][] {
  return Array.from({ length: size }, (_, a) => Array.from({ length: size }, (_, b) => (a === b ? 'X' : kind)));
}

describe('parseNvidiaSmiTopology', () => {
  it('reads an 8x H200 NVSwitch host with 12 NICs as an 8x8 NV18 matrix, NIC columns and rows left out', () => {
    expect(parsed(fixture('topo-hgx-h200-nic.txt')).links).toEqual(uniform(8, 'NV18'));
  });

  it('reads a DGX A100 whose NICs are named mlx5_0..mlx5_11', () => {
    expect(parsed(fixture('topo-dgx-a100.txt')).links).toEqual(uniform(8, 'NV12'));
  });

  it('reads a space-aligned DGX-1 hybrid cube mesh, NV1, NV2 and SYS where the published text has them', () => {
    const { links } = parsed(fixture('topo-dgx1-v100.txt'));
    expect(links).toHaveLength(8);
    expect(links.every((row) => row.length === 8)).toBe(true);
    expect(links[0]).toEqual(['X', 'NV1', 'NV1', 'NV2', 'NV2', 'SYS', 'SYS', 'SYS']);
    expect(links[5]).toEqual(['SYS', 'NV2', 'SYS', 'SYS', 'NV1', 'X', 'NV2', 'NV1']);
    expect(links[7]).toEqual(['SYS', 'SYS', 'SYS', 'NV1', 'NV2', 'NV1', 'NV2', 'X']);
  });

  it('reads a PCIe-only host: two PIX pairs joined through the host bridge', () => {
    expect(parsed(fixture('topo-pcie-4gpu.txt')).links).toEqual([
      ['X', 'PIX', 'PHB', 'PHB'],
      ['PIX', 'X', 'PHB', 'PHB'],
      ['PHB', 'PHB', 'X', 'PIX'],
      ['PHB', 'PHB', 'PIX', 'X'],
    ]);
  });

  it('keeps the SOC an old driver prints, and ignores its mlx4_0 column and row', () => {
    expect(parsed(fixture('topo-pcie-soc-mlx4.txt')).links).toEqual([
      ['X', 'PHB', 'SOC', 'SOC'],
      ['PHB', 'X', 'SOC', 'SOC'],
      ['SOC', 'SOC', 'X', 'PHB'],
      ['SOC', 'SOC', 'PHB', 'X'],
    ]);
  });

  it('reads a header underlined by escape codes, with or without the ESC byte, and CRLF line ends', () => {
    const published = fixture('topo-b300-ansi.txt');
    const fromTerminal = published.replace('[4m', '\u001b[4m').replace('[0m', '\u001b[0m');
    expect(fromTerminal).toContain('\u001b[4mGPU0');
    for (const text of [published, fromTerminal, published.replace(/\n/g, '\r\n')]) {
      expect(parsed(text).links).toEqual(uniform(8, 'NV18'));
    }
  });

  it('finds the matrix after other output and stops at its last GPU row', () => {
    const published = fixture('topo-pcie-4gpu.txt');
    const withPreamble = `NVIDIA Topology:\n${published}\n${published.replace(/PIX/g, 'SYS')}`;
    expect(parsed(withPreamble).links).toEqual(parsed(published).links);
  });

  it('returns undefined when there is no complete GPU matrix', () => {
    const published = fixture('topo-pcie-4gpu.txt');
    const lines = published.split('\n');
    const garbage = [
      '',
      'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.',
      'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000)',
      '\x00\x01binary\xff',
      lines[0]!, // the header alone
      lines.filter((line) => !line.startsWith('GPU2')).join('\n'), // a GPU row missing
      published.replace('GPU3\tPHB\tPHB\tPIX\t X ', 'GPU3\tPHB\tPHB'), // a GPU row cut short
      published.replace(/ X /g, ' Y '), // no self cell on the diagonal
    ];
    for (const text of garbage) expect(parseNvidiaSmiTopology(text)).toBeUndefined();
  });
});

describe('readNvidiaSmiTopology', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'autoglm-topo-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** An executable standing in for nvidia-smi: a real process, so the exec path is the one used in production. */
  function script(name: string, body: string): string {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  }

  it('runs `nvidia-smi topo -m` and parses what it prints', async () => {
    const output = path.join(__dirname, 'fixtures', 'topo-dgx-a100.txt');
    const fake = script('nvidia-smi-topo', `[ "$1 $2" = "topo -m" ] || exit 2\ncat '${output}'`);
    await expect(readNvidiaSmiTopology({ command: fake })).resolves.toEqual({ links: uniform(8, 'NV12') });
  });

  it('resolves undefined when nvidia-smi is not installed, fails, or prints no matrix', async () => {
    await expect(readNvidiaSmiTopology({ command: '/nonexistent/nvidia-smi' })).resolves.toBeUndefined();
    await expect(readNvidiaSmiTopology({ command: '/bin/false' })).resolves.toBeUndefined();
    const noDriver = script('nvidia-smi-nodriver', 'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver."');
    await expect(readNvidiaSmiTopology({ command: noDriver })).resolves.toBeUndefined();
  });

  it('resolves undefined when nvidia-smi does not answer in time', async () => {
    const wedged = script('nvidia-smi-wedged', 'exec sleep 10');
    await expect(readNvidiaSmiTopology({ command: wedged, timeoutMs: 200 })).resolves.toBeUndefined();
  });
});
