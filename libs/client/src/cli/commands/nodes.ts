import type { Command } from 'commander';
import { ReplicaState, type Node } from '@autoglm/proto';
import { commandContext } from '../context';
import { gib, table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { nodeJson } from '../json';
import { nodeStateName, replicaStateName } from '../names';

/** `autoglm nodes`. */
export function registerNodes(program: Command, io: CliIo): void {
  program
    .command('nodes')
    .description('List the hosts: their GPUs and what holds them, replicas, cores for jobs, live telemetry.')
    .option('--gpus', 'one row per GPU: the job or replica holding it, or the task it is held for')
    .addHelpText('after', examples('autoglm nodes', 'autoglm nodes --gpus', 'autoglm nodes --json | jq ".replicas"'))
    .action(async (options: { gpus?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { nodes } = await ctx.withClient((client) => client.listNodes());
      if (ctx.globals.json) {
        for (const node of nodes) ctx.printJson(nodeJson(node));
        return;
      }
      const sorted = [...nodes].sort((a, b) => a.nodeId.localeCompare(b.nodeId, undefined, { numeric: true }));
      println(io.stdout, options.gpus ? gpuTable(sorted) : nodeTable(sorted));
      // Why a node takes no work, where decision says.
      for (const node of sorted) if (node.stateReason) println(io.stdout, `${node.nodeId}: ${nodeStateName(node.state).toLowerCase()}: ${node.stateReason}`);
    });
}

function nodeTable(nodes: Node[]): string {
  const rows = nodes.map((node) => {
    const gpus = node.gpus.length;
    const meanUtil = gpus === 0 ? 0 : node.gpus.reduce((sum, gpu) => sum + gpu.utilization, 0) / gpus;
    const used = node.gpus.reduce((sum, gpu) => sum + gpu.memoryUsedBytes, 0);
    const total = node.gpus.reduce((sum, gpu) => sum + gpu.memoryTotalBytes, 0);
    const jobs = node.gpuClaims.filter((c) => c.taskId !== '').length;
    const inReplicas = node.gpuClaims.filter((c) => c.replicaId !== '').length;
    const replicas = node.replicas.map((r) => `${r.model}${r.state === ReplicaState.LOADING ? ' (loading)' : ''}: ${r.sequences}`).join(', ');
    return [
      node.nodeId,
      nodeStateName(node.state),
      gpus === 0 ? '-' : `${jobs + inReplicas}/${gpus}`,
      gpus === 0 ? '-' : `${(meanUtil * 100).toFixed(0)}%`,
      gpus === 0 ? '-' : `${gib(used)}/${gib(total)} GiB`,
      node.cpuMillis === 0 ? '-' : `${node.cpuClaimedMillis / 1000}/${node.cpuMillis / 1000}`,
      replicas || '-',
      String(node.runningTasks),
    ];
  });
  return table(['NODE', 'STATE', 'GPUS HELD', 'UTIL', 'MEMORY', 'CORES HELD', 'REPLICAS (SEQUENCES)', 'RUNNING'], rows, [false, false, true, true, true, true, false, true]);
}

function gpuTable(nodes: Node[]): string {
  const rows: string[][] = [];
  for (const node of nodes) {
    const replicas = new Map(node.replicas.map((r) => [r.replicaId, r]));
    for (const gpu of node.gpus) {
      const claim = node.gpuClaims.find((c) => c.gpuIndex === gpu.index);
      const replica = claim?.replicaId ? replicas.get(claim.replicaId) : undefined;
      let holder = 'free';
      if (claim?.taskId) holder = `job ${claim.taskId}`;
      else if (replica) holder = `replica ${replica.replicaId} of ${replica.model} (${replicaStateName(replica.state).toLowerCase()}, ${replica.sequences} sequences)`;
      rows.push([node.nodeId, String(gpu.index), holder, claim?.heldFor ? `for ${claim.heldFor}` : '', `${(gpu.utilization * 100).toFixed(0)}%`, `${gib(gpu.memoryUsedBytes)}/${gib(gpu.memoryTotalBytes)} GiB`]);
    }
  }
  return table(['NODE', 'GPU', 'HELD BY', 'HELD', 'UTIL', 'MEMORY'], rows, [false, true, false, false, true, true]);
}
