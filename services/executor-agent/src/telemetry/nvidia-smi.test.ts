import { parseNvidiaSmiCsv, readNvidiaSmi } from './nvidia-smi';

const MIB = 1024 * 1024;

describe('parseNvidiaSmiCsv', () => {
  it('reads an H100 host, turning MiB into bytes and percent into a fraction', () => {
    const text = [
      '0, NVIDIA H100 80GB HBM3, 87, 71234, 81559, 64, 512.34',
      '1, NVIDIA H100 80GB HBM3, 0, 1, 81559, 31, 69.87',
      '',
    ].join('\n');
    expect(parseNvidiaSmiCsv(text)).toEqual([
      {
        index: 0,
        name: 'NVIDIA H100 80GB HBM3',
        utilization: 0.87,
        memoryUsedBytes: 71234 * MIB,
        memoryTotalBytes: 81559 * MIB,
        temperatureC: 64,
        powerWatts: 512.34,
      },
      {
        index: 1,
        name: 'NVIDIA H100 80GB HBM3',
        utilization: 0,
        memoryUsedBytes: MIB,
        memoryTotalBytes: 81559 * MIB,
        temperatureC: 31,
        powerWatts: 69.87,
      },
    ]);
  });

  it('reads unavailable values as 0 and keeps the GPU', () => {
    const text = '0, NVIDIA A100-SXM4-40GB MIG 3g.20gb, [N/A], 2048, 40960, 35, [Not Supported]\r\n';
    expect(parseNvidiaSmiCsv(text)).toEqual([
      {
        index: 0,
        name: 'NVIDIA A100-SXM4-40GB MIG 3g.20gb',
        utilization: 0,
        memoryUsedBytes: 2048 * MIB,
        memoryTotalBytes: 40960 * MIB,
        temperatureC: 35,
        powerWatts: 0,
      },
    ]);
  });

  it('keeps a product name that contains a comma', () => {
    const [gpu] = parseNvidiaSmiCsv('3, Some GPU, Rev 2, 50, 100, 200, 40, 100.0');
    expect(gpu).toMatchObject({ index: 3, name: 'Some GPU, Rev 2', utilization: 0.5, memoryUsedBytes: 100 * MIB });
  });

  it('skips lines that are not GPU rows', () => {
    const text = [
      'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.',
      '0, NVIDIA L4, 12, 500, 23034, 40, 30.5',
      'index, name, utilization.gpu [%], memory.used [MiB], memory.total [MiB], temperature.gpu, power.draw [W]',
    ].join('\n');
    expect(parseNvidiaSmiCsv(text).map((g) => g.name)).toEqual(['NVIDIA L4']);
  });
});

describe('readNvidiaSmi', () => {
  it('resolves undefined when nvidia-smi is not installed', async () => {
    await expect(readNvidiaSmi({ command: '/nonexistent/nvidia-smi' })).resolves.toBeUndefined();
  });

  it('rejects when nvidia-smi is there but fails', async () => {
    await expect(readNvidiaSmi({ command: '/bin/false' })).rejects.toThrow('/bin/false failed');
  });
});
