import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ApiToken, Role } from '@autoglm/proto';
import { newTokenSecret, timestampToMillis, toTimestamp, tokenHash, tokenPrefix } from '@autoglm/core';
import { startPostgres, type PostgresServer } from '../../../test/support/postgres-server';
import { storeEngines } from '../../../test/support/engines';
import { TaskStore } from './task-store';
import { TokenStore } from './token-store';

const T0 = Date.parse('2026-12-01T10:00:00Z');

function newToken(overrides: Partial<ApiToken> = {}): { token: ApiToken; secret: string } {
  const secret = newTokenSecret();
  return { secret, token: ApiToken.fromPartial({ id: randomUUID(), tenant: 'acme', role: Role.SUBMITTER, name: 'ci', prefix: tokenPrefix(secret), createdAt: toTimestamp(T0), ...overrides }) };
}

const engines = storeEngines('token-store.test');

describe.each(engines)('TokenStore on %s', (engine) => {
  let dir: string;
  let tasks: TaskStore;
  let store: TokenStore;
  let postgres: PostgresServer | undefined;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-tokens-'));
    if (engine === 'postgres') postgres = await startPostgres();
    tasks = await TaskStore.open(engine === 'postgres' ? { databaseUrl: postgres!.url } : { dataDir: dir });
    store = new TokenStore(tasks.engine);
  }, 60_000);

  afterAll(async () => {
    await tasks.close();
    await postgres?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('finds a token by its secret hash, and never stores the secret', async () => {
    const { token, secret } = newToken({ expiresAt: toTimestamp(T0 + 3600_000) });
    expect(await store.insert(token, tokenHash(secret))).toEqual(token);
    expect(await store.bySecretHash(tokenHash(secret))).toEqual(token);
    expect(await store.bySecretHash(tokenHash(newTokenSecret()))).toBeUndefined();
    const { rows } = await tasks.engine.query<Record<string, unknown>>('SELECT * FROM api_tokens WHERE id = $1', [token.id]);
    expect(JSON.stringify(rows)).not.toContain(secret);
  });

  it('stores a token once under its id', async () => {
    const { token, secret } = newToken();
    await store.insert(token, tokenHash(secret));
    expect(await store.insert({ ...token, name: 'changed' }, tokenHash(secret))).toMatchObject({ id: token.id, name: 'ci' });
  });

  it('revokes once, keeps the first time, and lists active tokens by tenant, newest first', async () => {
    const a = newToken({ tenant: 'lister', createdAt: toTimestamp(T0 + 1) });
    const b = newToken({ tenant: 'lister', createdAt: toTimestamp(T0 + 2) });
    const expired = newToken({ tenant: 'lister', createdAt: toTimestamp(T0 + 3), expiresAt: toTimestamp(T0 + 10) });
    for (const t of [a, b, expired]) await store.insert(t.token, tokenHash(t.secret));
    const revoked = await store.revoke(a.token.id, T0 + 100);
    expect(timestampToMillis(revoked!.revokedAt!)).toBe(T0 + 100);
    expect(timestampToMillis((await store.revoke(a.token.id, T0 + 200))!.revokedAt!)).toBe(T0 + 100);
    expect(await store.revoke(randomUUID(), T0)).toBeUndefined();
    expect((await store.list({ tenant: 'lister', includeInactive: false, nowMs: T0 + 50 })).map((t) => t.id)).toEqual([b.token.id]);
    expect((await store.list({ tenant: 'lister', includeInactive: true, nowMs: T0 + 50 })).map((t) => t.id)).toEqual([expired.token.id, b.token.id, a.token.id]);
    expect(await store.anyActive(Role.SUBMITTER)).toBe(true);
  });
});
