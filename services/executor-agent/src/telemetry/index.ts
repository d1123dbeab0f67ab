export { HostSampler, type HostSamplerOptions, type NetworkCounters, parseProcNetDev } from './host';
export { NVIDIA_SMI_ARGS, NvidiaSmiError, parseNvidiaSmiCsv, readNvidiaSmi, type ReadNvidiaSmiOptions } from './nvidia-smi';
export { NVIDIA_SMI_TOPOLOGY_ARGS, parseNvidiaSmiTopology, readNvidiaSmiTopology, type ParsedTopology, type ReadNvidiaSmiTopologyOptions } from './topology';
