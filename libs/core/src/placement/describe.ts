import type { Demand } from './demand';
import type { NoFit } from './fleet';

const GiB = 2 ** 30;

function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(1).replace(/\.0$/, '')} GiB`;
}

/** What a demand asks for, in words: "2 GPUs", "a sequence of 1,024 tokens of glm-4-9b", "2 cores and 4 GiB". */
export function describeDemand(demand: Demand): string {
  if (demand.kind === 'sequence') return `a sequence of ${demand.tokens} tokens of ${demand.model}`;
  if (demand.kind === 'cpu') return `${demand.cpuMillis / 1000} core(s)${demand.memoryBytes > 0 ? ` and ${gib(demand.memoryBytes)} of memory` : ''}`;
  const memory = demand.gpuMemoryBytes > 0 ? ` with ${gib(demand.gpuMemoryBytes)} each` : '';
  return `${demand.gpuCount} whole GPU(s)${memory}`;
}

/** Why a demand was not placed, in words a user can act on. */
export function describeNoFit(demand: Demand, why: NoFit): string {
  switch (why) {
    case 'no-node':
      return 'no agent is connected and ready';
    case 'no-model':
      if (demand.kind === 'sequence') return `no connected node serves model "${demand.model}"`;
      if (!demand.program) return 'no simulator (sim agent) is connected to play a job without a command; give it a command to run it as a process';
      return demand.model ? `no connected node runs jobs for model "${demand.model}"` : 'no connected node runs jobs';
    case 'too-large':
      return `no connected node could ever take ${describeDemand(demand)}`;
    case 'no-capacity':
      if (demand.kind === 'sequence') return `no replica of ${demand.model} has room for its ${demand.tokens} tokens, and no node has free GPUs for another`;
      if (demand.kind === 'cpu') return `no node has ${describeDemand(demand)} free now`;
      return `no node has ${demand.gpuCount} free GPU(s) for it now`;
  }
}
