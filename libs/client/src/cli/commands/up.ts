import path from 'node:path';
import type { Command } from 'commander';
import { startMesh } from '../../mesh/start-mesh';
import { MAX_AGENTS } from '../../mesh/mesh-options';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { collectList, parseChoice, parseInteger, parseListen, parseNonNegative, parsePositive } from '../parse';

interface UpOptions {
  agents: number;
  gpus: number;
  gpuMemory: number;
  timeScale: number;
  dataDir: string;
  ports: 'default' | 'ephemeral';
  openaiListen?: string;
  logLevel?: string;
  databaseUrl?: string;
  commandAgent?: string[];
  catalog?: string;
  verbose?: boolean;
}

/** `autoglm up`. */
export function registerUp(program: Command, io: CliIo): void {
  program
    .command('up')
    .description('Run the whole mesh locally (decision, monitor, simulated GPU agents, parser) until Ctrl-C.')
    .option('--agents <n>', 'simulated GPU hosts', parseInteger(0, MAX_AGENTS), 4)
    .option('--gpus <n>', 'GPUs per host', parseInteger(1, 64), 8)
    .option('--gpu-memory <gb>', 'memory per simulated GPU, GB', parseNonNegative, 80)
    .option('--time-scale <x>', 'simulator speed-up (10 = ten times faster than real time)', parsePositive, 1)
    .option('--data-dir <dir>', 'durable state and logs', process.env.AUTOGLM_DATA_DIR ?? './.autoglm')
    .option('--ports <mode>', 'default (the documented ports) or ephemeral (any free port)', parseChoice(['default', 'ephemeral'] as const), 'default')
    .option('--openai-listen <host:port|off>', 'where the OpenAI-compatible API listens, or off (env AUTOGLM_OPENAI_LISTEN; 8000 is also vLLM\'s default)', parseListen, process.env.AUTOGLM_OPENAI_LISTEN)
    .option('--log-level <level>', 'log level of every service (env AUTOGLM_LOG_LEVEL)')
    .option('--database-url <url>', 'external PostgreSQL for decision (env AUTOGLM_DATABASE_URL)', process.env.AUTOGLM_DATABASE_URL)
    .option(
      '--command-agent <programs>',
      "also run an agent with the command backend on this machine, allowed to run these programs (comma-separated argv[0]); it offers this machine's cores, memory and GPUs",
      collectList((program: string) => program),
    )
    .option('--catalog <file>', 'a model catalog file (JSON or YAML) extending or replacing the built-in models (env AUTOGLM_MODEL_CATALOG)', process.env.AUTOGLM_MODEL_CATALOG)
    .option('--verbose', 'also print every service log line')
    .addHelpText(
      'after',
      examples('autoglm up', 'autoglm up --agents 8 --gpus 4 --time-scale 10', 'autoglm up --openai-listen 127.0.0.1:8001', 'autoglm up --command-agent /bin/sh,python3', 'autoglm up --data-dir /tmp/autoglm --json'),
    )
    .action(async (options: UpOptions, command: Command) => {
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
      const mesh = await startMesh({
        dataDir: options.dataDir,
        agents: options.agents,
        gpusPerAgent: options.gpus,
        gpuMemoryGb: options.gpuMemory,
        timeScale: options.timeScale,
        ports: options.ports,
        openaiListen: options.openaiListen,
        logLevel: options.logLevel,
        databaseUrl: options.databaseUrl,
        commandAllow: options.commandAgent,
        // Every service reads the same catalog: the parser validates against it, decision sizes replicas from it, agents serve it.
        env: options.catalog === undefined ? undefined : { AUTOGLM_MODEL_CATALOG: path.resolve(options.catalog) },
        onLog: (service, line) => {
          if (service === 'mesh') println(io.stderr, `mesh: ${line.replace(/^\S+ /, '')}`);
          else if (options.verbose) println(io.stderr, `${service} | ${line}`);
        },
      });
      if (json) {
        println(
          io.stdout,
          JSON.stringify({
            publicAddress: mesh.publicAddress,
            openaiUrl: mesh.openaiUrl ?? null,
            decisionAddress: mesh.decisionAddress,
            monitorAddress: mesh.monitorAddress,
            metricsUrl: mesh.metricsUrl,
            dashboardUrl: mesh.dashboardUrl,
            dataDir: mesh.dataDir,
            adminTokenFile: mesh.adminTokenFile,
            caFile: mesh.caFile ?? null,
            processes: Object.fromEntries(Object.values(mesh.processes).map((p) => [p.name, { pid: p.pid ?? null, address: p.address }])),
          }),
        );
      } else {
        println(io.stdout, `autoglm is up: ${options.agents} agents × ${options.gpus} GPUs (${options.gpuMemory} GB), time scale ${options.timeScale}`);
        if (options.commandAgent) println(io.stdout, `  command agent    command-1 runs ${options.commandAgent.join(', ')} on this machine`);
        println(io.stdout, `  public endpoint  ${mesh.publicAddress}`);
        println(io.stdout, `  OpenAI API       ${mesh.openaiUrl === undefined ? 'off' : `${mesh.openaiUrl} (API key: a token, as below)`}`);
        println(io.stdout, `  metrics          ${mesh.metricsUrl}`);
        println(io.stdout, `  dashboard        ${mesh.dashboardUrl}`);
        println(io.stdout, `  logs             ${mesh.dataDir}/logs`);
        if (mesh.caFile) println(io.stdout, `  TLS CA           ${mesh.caFile} (the CLI in this directory trusts it; elsewhere: --ca or AUTOGLM_CA)`);
        println(io.stdout, `  admin token      ${mesh.adminTokenFile} (read by autoglm in this directory; elsewhere: export AUTOGLM_TOKEN=$(cat ${mesh.adminTokenFile}))`);
        println(io.stdout, `                   make one per user or service: autoglm tokens create --tenant <name> --role submitter`);
        println(io.stdout, 'Press Ctrl-C to stop.');
      }
      await new Promise<void>((resolve) => {
        const remove = io.onInterrupt(() => {
          remove();
          resolve();
        });
      });
      println(io.stderr, 'stopping the mesh (Ctrl-C again to kill it at once)');
      const removeForce = io.onInterrupt(() => io.exit(130));
      try {
        await mesh.stop();
      } finally {
        removeForce();
      }
      println(io.stderr, 'stopped');
    });
}
