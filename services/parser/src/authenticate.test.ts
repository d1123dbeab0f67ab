import { Metadata } from '@grpc/grpc-js';
import { ApiToken, Role } from '@autoglm/proto';
import { newTokenSecret, toTimestamp, tokenHash } from '@autoglm/core';
import { Authenticator } from './authenticate';

function withToken(secret: string, tenant?: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${secret}`);
  if (tenant) md.set('x-autoglm-tenant', tenant);
  return md;
}

describe('Authenticator', () => {
  const secret = newTokenSecret();
  let stored: ApiToken | undefined;
  let lookups = 0;
  let now = 0;
  const lookUp = async (hash: string) => {
    lookups += 1;
    return hash === tokenHash(secret) ? stored : undefined;
  };
  beforeEach(() => {
    stored = ApiToken.fromPartial({ id: 'tok-1', tenant: 'acme', role: Role.SUBMITTER, prefix: secret.slice(0, 10) });
    lookups = 0;
    now = 0;
  });

  it('looks a token up once per cache time, however many calls carry it', async () => {
    const auth = new Authenticator('tokens', lookUp, 5000, () => now);
    const calls = await Promise.all(Array.from({ length: 50 }, () => auth.principal(withToken(secret))));
    expect(calls.every((p) => p.tenant === 'acme' && p.role === Role.SUBMITTER)).toBe(true);
    expect(lookups).toBe(1);
    now = 4999;
    await auth.principal(withToken(secret));
    expect(lookups).toBe(1);
    // Revoked meanwhile: refused once the cached answer is older than the cache time.
    stored = { ...stored!, revokedAt: toTimestamp(1) };
    now = 5000;
    await expect(auth.principal(withToken(secret))).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('revoked') });
  });

  it('refuses an unknown token and remembers that too', async () => {
    const auth = new Authenticator('tokens', lookUp, 5000, () => now);
    const stranger = newTokenSecret();
    await expect(auth.principal(withToken(stranger))).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(auth.principal(withToken(stranger))).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(lookups).toBe(1);
  });

  it('without authentication, lets anyone act as an admin of the tenant it names', async () => {
    const auth = new Authenticator('none', lookUp, 5000);
    const md = new Metadata();
    md.set('x-autoglm-tenant', 'globex');
    expect(await auth.principal(md)).toEqual({ tenant: 'globex', role: Role.ADMIN, tokenId: '' });
    expect(lookups).toBe(0);
  });
});
