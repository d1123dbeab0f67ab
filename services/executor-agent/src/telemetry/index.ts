export { HostSampler, type HostSamplerOptions, type NetworkCounters, parseProcNetDev } from './host';
export { NVIDIA_SMI_ARGS, NvidiaSmiError, parseNvidiaSmiCsv, readNvidiaSmi, type ReadNvidiaSmiOptions } from './nvidia-smi';
