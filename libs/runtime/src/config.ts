import * as fs from 'node:fs';
import { z } from 'zod';

/**
 * Where each config key comes from: the key in the service's section of the
 * config file, and the environment variable that overrides it.
 */
/** The variable that sets each key; null for a key set only in the config file (a list, an object). */
export type EnvNames<T> = { readonly [K in keyof T]-?: string | null };

/** A config value that failed validation; start-up stops with this message. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Loads one service's config: defaults (in the schema), overridden by the
 * service's section of the JSON file named by AUTOGLM_CONFIG, overridden by
 * the `AUTOGLM_*` environment variables. Parsed once at start; an invalid
 * value throws a ConfigError naming the variable and the key.
 */
export function loadConfig<S extends z.ZodObject>(
  service: string,
  schema: S,
  envNames: EnvNames<z.infer<S>>,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<S> {
  const merged: Record<string, unknown> = { ...readFileSection(service, env.AUTOGLM_CONFIG) };
  const sourceOf = new Map<string, string>();
  for (const [key, name] of Object.entries(envNames) as Array<[string, string | null]>) {
    if (name === null) continue;
    const raw = env[name];
    if (raw !== undefined && raw !== '') {
      merged[key] = raw;
      sourceOf.set(key, name);
    }
  }
  const parsed = schema.safeParse(merged);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const where = sourceOf.get(key) ?? (key in merged ? `${service}.${key} in ${env.AUTOGLM_CONFIG}` : `${service}.${key}`);
    const envName = (envNames as Record<string, string | null>)[key];
    const got = key in merged ? ` (got ${JSON.stringify(merged[key])})` : '';
    return `${where}: ${issue.message}${got}${envName && !sourceOf.has(key) ? `; set ${envName} to override` : ''}`;
  });
  throw new ConfigError(`invalid ${service} config: ${problems.join('; ')}`);
}

function readFileSection(service: string, file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`AUTOGLM_CONFIG: cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`AUTOGLM_CONFIG: ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new ConfigError(`AUTOGLM_CONFIG: ${file} must hold a JSON object`);
  const section = (doc as Record<string, unknown>)[service];
  if (section === undefined) return {};
  if (typeof section !== 'object' || section === null) {
    throw new ConfigError(`AUTOGLM_CONFIG: "${service}" in ${file} must be an object`);
  }
  return section as Record<string, unknown>;
}

/** `host:port`, port 0..65535. */
export const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:50051')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535');

/**
 * An optional path to a file that must read well at start (`read` throws
 * with what is wrong), so a bad file stops the service naming its key.
 */
export function checkedFile(read: (path: string) => unknown) {
  return z
    .string()
    .optional()
    .superRefine((path, ctx) => {
      if (!path) return;
      try {
        read(path);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });
}

/** Log levels pino understands. */
export const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** A boolean from `true/false/1/0/yes/no`. */
export const flag = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((s) => s === 'true' || s === '1' || s === 'yes'),
]);
