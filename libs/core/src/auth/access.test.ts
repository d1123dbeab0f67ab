import { ApiToken, Role } from '@autoglm/proto';
import { toTimestamp } from '../time';
import {
  actingTenant,
  bearerToken,
  listingTenant,
  newTokenSecret,
  parseRole,
  parseTokenRequest,
  principalOf,
  requireAccess,
  requireVisible,
  tokenHash,
  type Principal,
} from './access';

const viewer: Principal = { tenant: 'acme', role: Role.VIEWER, tokenId: 't1' };
const submitter: Principal = { ...viewer, role: Role.SUBMITTER };
const admin: Principal = { ...viewer, role: Role.ADMIN };

describe('roles', () => {
  it('lets each role do what the ones below it may, and no more', () => {
    expect(() => requireAccess(viewer, 'read', 'GetTask')).not.toThrow();
    expect(() => requireAccess(viewer, 'submit', 'SubmitTask')).toThrow(expect.objectContaining({ code: 'PERMISSION_DENIED', message: 'SubmitTask needs a submitter token; this one is viewer for tenant "acme"' }));
    expect(() => requireAccess(submitter, 'submit', 'SubmitTask')).not.toThrow();
    expect(() => requireAccess(submitter, 'admin', 'CreateToken')).toThrow(expect.objectContaining({ code: 'PERMISSION_DENIED' }));
    expect(() => requireAccess(admin, 'admin', 'CreateToken')).not.toThrow();
  });

  it('parses role names as the CLI and config write them', () => {
    expect(parseRole('viewer')).toBe(Role.VIEWER);
    expect(parseRole('ROLE_ADMIN')).toBe(Role.ADMIN);
    expect(() => parseRole('root')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('viewer, submitter or admin') }));
  });
});

describe('tenants', () => {
  it("acts for the token's tenant unless an admin names another", () => {
    expect(actingTenant(submitter, '')).toBe('acme');
    expect(actingTenant(submitter, 'acme')).toBe('acme');
    expect(() => actingTenant(submitter, 'globex')).toThrow(expect.objectContaining({ code: 'PERMISSION_DENIED' }));
    expect(actingTenant(admin, 'globex')).toBe('globex');
    expect(() => actingTenant(admin, 'not a tenant')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('lists every tenant only for an admin that names none', () => {
    expect(listingTenant(admin, '')).toBe('');
    expect(() => listingTenant(admin, 'a\u0000b')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'tenant' }));
    expect(listingTenant(viewer, '')).toBe('acme');
    expect(() => listingTenant(viewer, 'globex')).toThrow(expect.objectContaining({ code: 'PERMISSION_DENIED' }));
  });

  it("answers another tenant's things as not found", () => {
    expect(() => requireVisible(viewer, 'globex', 'task x does not exist')).toThrow(expect.objectContaining({ code: 'NOT_FOUND', message: 'task x does not exist' }));
    expect(() => requireVisible(admin, 'globex', 'task x does not exist')).not.toThrow();
  });
});

describe('tokens', () => {
  it('makes long random secrets and keeps only their hash', () => {
    const a = newTokenSecret();
    expect(a).toMatch(/^agl_[A-Za-z0-9_-]{43}$/);
    expect(newTokenSecret()).not.toBe(a);
    expect(tokenHash(a)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads a bearer token, and says what to send when there is none', () => {
    const secret = newTokenSecret();
    expect(bearerToken(`Bearer ${secret}`)).toBe(secret);
    expect(bearerToken(`bearer   ${secret} `)).toBe(secret);
    expect(() => bearerToken(undefined)).toThrow(expect.objectContaining({ code: 'UNAUTHENTICATED', message: expect.stringContaining('authorization: Bearer <token>') }));
    expect(() => bearerToken(`Basic ${secret}`)).toThrow(expect.objectContaining({ code: 'UNAUTHENTICATED' }));
    expect(() => bearerToken('Bearer s3cret')).toThrow(expect.objectContaining({ code: 'UNAUTHENTICATED', message: expect.stringContaining('agl_') }));
  });

  it('refuses a revoked or expired token', () => {
    const token = ApiToken.fromPartial({ id: 'id-1', tenant: 'acme', role: Role.SUBMITTER, prefix: 'agl_abcdef', expiresAt: toTimestamp(1000) });
    expect(principalOf(token, 999)).toEqual({ tenant: 'acme', role: Role.SUBMITTER, tokenId: 'id-1' });
    expect(() => principalOf(token, 1000)).toThrow(expect.objectContaining({ code: 'UNAUTHENTICATED', message: expect.stringContaining('expired') }));
    expect(() => principalOf({ ...token, revokedAt: toTimestamp(5) }, 0)).toThrow(expect.objectContaining({ code: 'UNAUTHENTICATED', message: expect.stringContaining('revoked') }));
  });

  it('checks a token request field by field', () => {
    expect(parseTokenRequest({ tenant: 'acme', role: Role.VIEWER, name: 'grafana', ttl: { seconds: 60, nanos: 0 } }, 1000)).toEqual({ tenant: 'acme', role: Role.VIEWER, name: 'grafana', expiresAtMs: 61_000 });
    expect(parseTokenRequest({ tenant: 'acme', role: Role.ADMIN, name: '' }, 0).expiresAtMs).toBeUndefined();
    expect(() => parseTokenRequest({ tenant: '', role: Role.VIEWER, name: '' }, 0)).toThrow(expect.objectContaining({ field: 'tenant' }));
    expect(() => parseTokenRequest({ tenant: 'acme', role: Role.UNSPECIFIED, name: '' }, 0)).toThrow(expect.objectContaining({ field: 'role' }));
    expect(() => parseTokenRequest({ tenant: 'acme', role: Role.VIEWER, name: 'x'.repeat(201) }, 0)).toThrow(expect.objectContaining({ field: 'name' }));
    expect(() => parseTokenRequest({ tenant: 'acme', role: Role.VIEWER, name: '', ttl: { seconds: -1, nanos: 0 } }, 0)).toThrow(expect.objectContaining({ field: 'ttl' }));
  });
});
