import { Command, Option } from 'commander';
import { registerAlerts } from './commands/alerts';
import { registerCancel } from './commands/cancel';
import { registerDeadLetters } from './commands/dead-letters';
import { registerExplain } from './commands/explain';
import { registerGet } from './commands/get';
import { registerInfer } from './commands/infer';
import { registerList } from './commands/list';
import { registerNodes } from './commands/nodes';
import { registerSchedule } from './commands/schedule';
import { registerStats } from './commands/stats';
import { registerSubmit } from './commands/submit';
import { registerTokens } from './commands/tokens';
import { registerTop } from './commands/top';
import { registerUp } from './commands/up';
import { registerWatch } from './commands/watch';
import { registerWorkflow } from './commands/workflow';
import { DEFAULT_CA_FILE, DEFAULT_TOKEN_FILE } from './context';
import { examples } from './help';
import type { CliIo } from './io';

/** The `autoglm` program, writing through `io`. Commander errors are thrown, not exited on. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('autoglm')
    .description('Schedule LLM inference and GPU batch jobs on an Open-AutoGLM mesh.')
    .addOption(new Option('--address <host:port>', 'public endpoint of the mesh').env('AUTOGLM_ADDRESS'))
    .addOption(new Option('--ca <file>', `CA certificate to check the endpoint's TLS certificate against (default: ${DEFAULT_CA_FILE}, which "autoglm up" makes; none: plaintext)`).env('AUTOGLM_CA'))
    .addOption(new Option('--tenant <name>', "tenant the work is billed to (default: the token's; only an admin token may name another)").env('AUTOGLM_TENANT'))
    .addOption(new Option('--token <token>', 'API token (default: the file --token-file names)').env('AUTOGLM_TOKEN'))
    .addOption(new Option('--token-file <file>', `file holding the API token (default: ${DEFAULT_TOKEN_FILE}, which "autoglm up" makes)`).env('AUTOGLM_TOKEN_FILE'))
    .option('--json', 'machine-readable output: one JSON document per line')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      examples(
        'autoglm up --time-scale 10',
        'autoglm infer "Write a haiku about GPUs" --model glm-4-9b',
        'autoglm submit --duration 2s --count 100 | autoglm watch -',
        'autoglm nodes',
      ),
    );
  registerUp(program, io);
  registerSubmit(program, io);
  registerWorkflow(program, io);
  registerGet(program, io);
  registerList(program, io);
  registerWatch(program, io);
  registerCancel(program, io);
  registerInfer(program, io);
  registerNodes(program, io);
  registerExplain(program, io);
  registerStats(program, io);
  registerDeadLetters(program, io);
  registerSchedule(program, io);
  registerTokens(program, io);
  registerAlerts(program, io);
  registerTop(program, io);
  return program;
}
