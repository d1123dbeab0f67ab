import type { Command } from 'commander';
import { commandContext } from '../context';
import { gib, table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { nodeJson } from '../json';
import { nodeStateName } from '../names';

/** `autoglm nodes`. */
export function registerNodes(program: Command, io: CliIo): void {
  program
    .command('nodes')
    .description('List the GPU hosts with their live telemetry.')
    .addHelpText('after', examples('autoglm nodes', 'autoglm nodes --json | jq ".gpus | length"'))
    .action(async (_options: object, command: Command) => {
      const ctx = commandContext(io, command);
      const { nodes } = await ctx.withClient((client) => client.listNodes());
      if (ctx.globals.json) {
        for (const node of nodes) ctx.printJson(nodeJson(node));
        return;
      }
      const rows = [...nodes]
        .sort((a, b) => a.nodeId.localeCompare(b.nodeId, undefined, { numeric: true }))
        .map((node) => {
          const gpus = node.gpus.length;
          const meanUtil = gpus === 0 ? 0 : node.gpus.reduce((sum, gpu) => sum + gpu.utilization, 0) / gpus;
          const used = node.gpus.reduce((sum, gpu) => sum + gpu.memoryUsedBytes, 0);
          const total = node.gpus.reduce((sum, gpu) => sum + gpu.memoryTotalBytes, 0);
          return [
            node.nodeId,
            nodeStateName(node.state),
            String(gpus),
            `${(meanUtil * 100).toFixed(0)}%`,
            `${gib(used)}/${gib(total)} GiB`,
            String(node.runningTasks),
          ];
        });
      println(io.stdout, table(['NODE', 'STATE', 'GPUS', 'UTIL', 'MEMORY', 'RUNNING'], rows, [false, false, true, true, true, true]));
    });
}
