import { postgresBinDir } from './postgres-server';

/**
 * The store engines a test runs on. PostgreSQL comes from Debian's package
 * (.ci/run installs it, so CI always has both); a machine without it tests
 * PGlite only and says so.
 */
export function storeEngines(suite: string): ReadonlyArray<'pglite' | 'postgres'> {
  const hasPostgres = postgresBinDir() !== undefined;
  if (hasPostgres || process.env.CI === 'true') return ['pglite', 'postgres'];
  process.stderr.write(`${suite}: PostgreSQL not installed; testing PGlite only\n`);
  return ['pglite'];
}
