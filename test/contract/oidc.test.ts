import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type KeyLike } from 'jose';
import { AutoglmClient, AutoglmError } from '@autoglm/client';
import { Role } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'open-autoglm';

async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
  } catch (err) {
    if (err instanceof AutoglmError) return { code: err.code, message: err.details };
    throw err;
  }
  throw new Error('the call was accepted');
}

describe('OpenID Connect JWTs as credentials', () => {
  let jwks: Server;
  let mesh: InProcessMesh;
  let key: KeyLike;
  let stranger: KeyLike;
  const clients: AutoglmClient[] = [];
  const as = (token: string) => {
    const c = new AutoglmClient({ address: mesh.parser.grpcAddress, token, retry: { maxAttempts: 1 } });
    clients.push(c);
    return c;
  };
  const jwt = (claims: Record<string, unknown>, o: { signer?: KeyLike; audience?: string; expiresIn?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(o.audience ?? AUDIENCE)
      .setSubject('alice@example.test')
      .setIssuedAt()
      .setExpirationTime(o.expiresIn ?? '5m')
      .sign(o.signer ?? key);

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    key = pair.privateKey;
    stranger = (await generateKeyPair('ES256')).privateKey;
    const published = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(published)));
    jwks.listen(0, '127.0.0.1');
    await once(jwks, 'listening');
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    mesh = await startInProcessMesh({ parser: { oidcIssuer: ISSUER, oidcAudience: AUDIENCE, oidcJwksUrl: jwksUrl } });
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await mesh?.stop();
    jwks?.close();
  }, 30_000);

  it('takes the tenant and role from a JWT of the issuer', async () => {
    const client = as(await jwt({ tenant: 'research', autoglm_role: 'submitter' }));
    expect(await client.whoAmI()).toMatchObject({ tenant: 'research', role: Role.SUBMITTER, tokenId: 'oidc:alice@example.test' });
    const { task } = await client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 0 } } } });
    expect(task!.tenant).toBe('research');
    // No role claim: the default role (viewer) cannot submit.
    const viewer = as(await jwt({ tenant: 'research' }));
    expect((await refusal(viewer.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 0 } } } }))).code).toBe('PERMISSION_DENIED');
    expect((await viewer.get(task!.id)).id).toBe(task!.id);
    // API tokens keep working beside JWTs.
    expect((await mesh.client.whoAmI()).role).toBe(Role.ADMIN);
  });

  it('refuses a JWT that is expired, for another audience, signed by another key, or without a tenant', async () => {
    expect(await refusal(as(await jwt({ tenant: 'research' }, { expiresIn: '-1m' })).whoAmI())).toEqual({ code: 'UNAUTHENTICATED', message: 'the JWT was refused: it has expired' });
    expect(await refusal(as(await jwt({ tenant: 'research' }, { audience: 'someone-else' })).whoAmI())).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('"aud" claim') });
    expect(await refusal(as(await jwt({ tenant: 'research' }, { signer: stranger })).whoAmI())).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('signature') });
    expect(await refusal(as(await jwt({ autoglm_role: 'admin' })).whoAmI())).toEqual({ code: 'UNAUTHENTICATED', message: 'the JWT has no "tenant" claim naming the tenant it acts for' });
    expect(await refusal(as(await jwt({ tenant: 'research', autoglm_role: 'root' })).whoAmI())).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('autoglm_role') });
  });
});
