import { durability } from './durability';
import { forecast } from './forecast';
import { loop } from './loop';
import { monitor } from './monitor';
import { placement } from './placement';
import { policy } from './policy';
import { quality } from './quality';
import { routing } from './routing';
import { slurm } from './slurm';
import { streaming } from './streaming';
import { throughput } from './throughput';

/** `npm run bench -- <name> [flags]`: runs one benchmark, prints its table, writes JSON under bench/results. */
const benchmarks: Record<string, (args: string[]) => Promise<void>> = { durability, forecast, loop, monitor, placement, policy, quality, routing, slurm, streaming, throughput };

const [name, ...args] = process.argv.slice(2);
const bench = name ? benchmarks[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(benchmarks).join('|')}> [flags]`);
  process.exit(2);
}
bench(args).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
