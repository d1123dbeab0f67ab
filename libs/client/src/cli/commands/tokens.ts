import type { Command } from 'commander';
import { Role, type ApiToken } from '@autoglm/proto';
import { AutoglmError } from '../../sdk/errors';
import { commandContext } from '../context';
import { age, isoTime, table, timestampMs } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { durationFromMs, parseChoice, parseDurationMs } from '../parse';

const ROLES = { viewer: Role.VIEWER, submitter: Role.SUBMITTER, admin: Role.ADMIN } as const;
const ROLE_NAMES = new Map<Role, string>(Object.entries(ROLES).map(([name, role]) => [role, name]));

function tokenJson(t: ApiToken) {
  return {
    id: t.id,
    tenant: t.tenant,
    role: ROLE_NAMES.get(t.role) ?? 'none',
    name: t.name,
    prefix: t.prefix,
    createdAt: isoTime(t.createdAt) ?? null,
    expiresAt: isoTime(t.expiresAt) ?? null,
    revokedAt: isoTime(t.revokedAt) ?? null,
  };
}

/** `autoglm tokens create|list|revoke` and `autoglm whoami`. */
export function registerTokens(program: Command, io: CliIo): void {
  const tokens = program
    .command('tokens')
    .description('API tokens: each names a tenant and a role (viewer, submitter, admin). Managing them takes an admin token.')
    .addHelpText(
      'after',
      examples(
        'autoglm tokens create --tenant research --role submitter --name "training pipeline"',
        'autoglm tokens create --tenant research --role viewer --ttl 30d',
        'autoglm tokens list --tenant research',
        'autoglm tokens revoke 0b9f6c1e-...',
      ),
    );
  tokens
    .command('create')
    .description('Make a token for the tenant given with --tenant; its secret is printed once and not kept.')
    .requiredOption('--role <role>', 'viewer, submitter or admin', parseChoice(Object.keys(ROLES) as Array<keyof typeof ROLES>))
    .option('--name <label>', 'who or what uses it', '')
    .option('--ttl <duration>', 'expires after this long (e.g. 12h, 30d); default: never', parseDurationMs)
    .action(async (options: { role: keyof typeof ROLES; name: string; ttl?: number }, command: Command) => {
      const ctx = commandContext(io, command);
      if (!ctx.globals.tenant) throw new AutoglmError('INVALID_ARGUMENT', '--tenant: name the tenant the token acts for');
      const created = await ctx.withClient((client) =>
        client.createToken({ tenant: ctx.globals.tenant, role: ROLES[options.role], name: options.name, ttl: options.ttl === undefined ? undefined : durationFromMs(options.ttl) }),
      );
      if (ctx.globals.json) ctx.printJson({ ...tokenJson(created.token!), secret: created.secret });
      else {
        println(io.stdout, created.secret);
        println(io.stderr, `token ${created.token!.id}: ${options.role} of tenant ${created.token!.tenant}. Keep the line above secret: it is not shown again.`);
      }
    });
  tokens
    .command('list')
    .description('Tokens, newest first (the secrets are never shown again).')
    .option('--all', 'revoked and expired tokens too')
    .action(async (options: { all?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { tokens: list } = await ctx.withClient((client) => client.listTokens({ tenant: ctx.globals.tenant ?? '', includeInactive: options.all === true }));
      if (ctx.globals.json) {
        for (const t of list) ctx.printJson(tokenJson(t));
        return;
      }
      const now = Date.now();
      const state = (t: ApiToken) => (t.revokedAt ? 'revoked' : (timestampMs(t.expiresAt) ?? Infinity) <= now ? 'expired' : 'active');
      println(
        io.stdout,
        table(
          ['ID', 'TENANT', 'ROLE', 'STATE', 'PREFIX', 'AGE', 'EXPIRES', 'NAME'],
          list.map((t) => [t.id, t.tenant, ROLE_NAMES.get(t.role) ?? 'none', state(t), `${t.prefix}…`, age(t.createdAt, now), isoTime(t.expiresAt) ?? 'never', t.name]),
        ),
      );
    });
  tokens
    .command('revoke')
    .description('Refuse a token from now on (every parser within its cache time, 5 s by default).')
    .argument('<id>', 'token id, as "autoglm tokens list" shows')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = commandContext(io, command);
      const revoked = await ctx.withClient((client) => client.revokeToken(id));
      if (ctx.globals.json) ctx.printJson(tokenJson(revoked));
      else println(io.stdout, `${revoked.id}  revoked  (${ROLE_NAMES.get(revoked.role) ?? 'none'} of tenant ${revoked.tenant})`);
    });
  program
    .command('whoami')
    .description('The tenant and role the token in use stands for.')
    .action(async (_options: unknown, command: Command) => {
      const ctx = commandContext(io, command);
      const me = await ctx.withClient((client) => client.whoAmI());
      const role = ROLE_NAMES.get(me.role) ?? 'none';
      if (ctx.globals.json) ctx.printJson({ tenant: me.tenant, role, tokenId: me.tokenId, authentication: me.authentication });
      else if (!me.authentication) println(io.stdout, 'authentication is off on this mesh: every caller may act for any tenant');
      else println(io.stdout, `${role} of tenant ${me.tenant} (token ${me.tokenId})`);
    });
}
