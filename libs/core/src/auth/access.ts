import { createHash, randomBytes } from 'node:crypto';
import { Role, type ApiToken, type Duration } from '@autoglm/proto';
import { durationToMillis, timestampToMillis } from '../time';
import { DomainError, InvalidArgumentError, NotFoundError } from '../errors';
import { parseTenant } from '../catalog/submission-fields';

/**
 * Who a call to the public API comes from, as its credential says: the
 * tenant it acts for and what its role lets it do. The parser builds one per
 * call (services/parser/src/authenticate.ts) and asks these functions what
 * it may do; decision trusts what the parser forwards.
 */
export interface Principal {
  tenant: string;
  role: Role;
  /** The token it presented; empty when authentication is off. */
  tokenId: string;
}

/** What a call needs its role to be at least. */
export type Access = 'read' | 'submit' | 'admin';

const NEEDED: Record<Access, Role> = { read: Role.VIEWER, submit: Role.SUBMITTER, admin: Role.ADMIN };

const ROLE_NAMES: ReadonlyMap<Role, string> = new Map([
  [Role.VIEWER, 'viewer'],
  [Role.SUBMITTER, 'submitter'],
  [Role.ADMIN, 'admin'],
]);

/** The credential was missing, malformed, unknown, revoked or expired. */
export class UnauthenticatedError extends DomainError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

/** The caller is known but its role or tenant does not allow the call. */
export class PermissionDeniedError extends DomainError {
  constructor(message: string) {
    super('PERMISSION_DENIED', message);
  }
}

/** "viewer", "submitter", "admin" (what the CLI takes and prints). */
export function roleName(role: Role): string {
  return ROLE_NAMES.get(role) ?? 'none';
}

/** The role a name (or ROLE_… constant name) stands for; throws naming the field otherwise. */
export function parseRole(text: string, field = 'role'): Role {
  const name = text.toLowerCase().replace(/^role_/, '');
  for (const [role, n] of ROLE_NAMES) if (n === name) return role;
  throw new InvalidArgumentError(field, `${JSON.stringify(text.slice(0, 40))} is not a role: use viewer, submitter or admin`);
}

/** Throws PERMISSION_DENIED unless the principal's role reaches what `access` needs. */
export function requireAccess(principal: Principal, access: Access, what: string): void {
  if (principal.role >= NEEDED[access]) return;
  throw new PermissionDeniedError(`${what} needs a ${roleName(NEEDED[access])} token; this one is ${roleName(principal.role)} for tenant "${principal.tenant}"`);
}

/**
 * The tenant a call acts for: the one it names (request field or
 * x-autoglm-tenant), else the credential's. Only an admin may name another
 * tenant than its own.
 */
export function actingTenant(principal: Principal, named: string): string {
  if (named === '' || named === principal.tenant) return principal.tenant;
  if (principal.role === Role.ADMIN) return parseTenant(named);
  throw new PermissionDeniedError(`tenant: this token acts for tenant "${principal.tenant}", not "${named.slice(0, 64)}"; leave tenant empty or use a token of that tenant`);
}

/**
 * The tenant a listing is limited to: an admin's choice (empty: all), anyone
 * else's own tenant (naming another is refused as in actingTenant).
 */
export function listingTenant(principal: Principal, named: string): string {
  if (principal.role === Role.ADMIN) return named === '' ? '' : parseTenant(named);
  return actingTenant(principal, named);
}

/**
 * Whether the principal may see something of `tenant`. Another tenant's task
 * or schedule is answered as not found: its existence is not told either.
 */
export function requireVisible(principal: Principal, tenant: string, notFound: string): void {
  if (principal.role === Role.ADMIN || principal.tenant === tenant) return;
  throw new NotFoundError(notFound);
}

// ---- tokens ------------------------------------------------------------------

/** Prefix of every token: easy to spot in a leaked file (secret scanners key on such prefixes). */
export const TOKEN_PREFIX = 'agl_';
/** 32 random bytes: guessing is hopeless, so one fast hash (SHA-256) is what the store keeps. */
const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^agl_[A-Za-z0-9_-]{43}$/;

/** A new bearer token's secret. */
export function newTokenSecret(): string {
  return TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
}

/** What the store keeps of a secret (lowercase hex SHA-256). */
export function tokenHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** The first characters of a secret, to tell tokens apart in a listing. */
export function tokenPrefix(secret: string): string {
  return secret.slice(0, TOKEN_PREFIX.length + 6);
}

/** Whether text is shaped like a token (checked before any lookup, so junk costs nothing). */
export function looksLikeToken(text: string): boolean {
  return TOKEN_PATTERN.test(text);
}

/**
 * The token in an `authorization` metadata value. Throws UNAUTHENTICATED
 * with what to send when it is missing or not a bearer token.
 */
export function bearerToken(authorization: string | undefined): string {
  return apiTokenSecret(bearerCredential(authorization));
}

/** A credential that must be an API token's secret; UNAUTHENTICATED otherwise. */
export function apiTokenSecret(credential: string): string {
  if (!looksLikeToken(credential)) throw new UnauthenticatedError('the bearer token is not an Open-AutoGLM token (they start with "agl_" and are 47 characters long)');
  return credential;
}

/** The credential in an `authorization: Bearer …` value, whatever its kind (API token or JWT). */
export function bearerCredential(authorization: string | undefined): string {
  const fix = 'send "authorization: Bearer <token>" (autoglm: --token or AUTOGLM_TOKEN; an admin makes one with "autoglm tokens create")';
  if (authorization === undefined || authorization === '') throw new UnauthenticatedError(`no credential: ${fix}`);
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) throw new UnauthenticatedError(`the authorization metadata is not a bearer token: ${fix}`);
  return match[1]!;
}

/** Whether text is shaped like a JWT (three base64url parts). */
export function looksLikeJwt(text: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(text) && text.length < 16_384;
}

/** The principal a stored token stands for, now; UNAUTHENTICATED when it is revoked or expired. */
export function principalOf(token: ApiToken, nowMs: number): Principal {
  if (token.revokedAt) throw new UnauthenticatedError(`token ${token.prefix}… was revoked: ask an admin for a new one`);
  if (token.expiresAt && timestampToMillis(token.expiresAt) <= nowMs) throw new UnauthenticatedError(`token ${token.prefix}… expired: ask an admin for a new one`);
  return { tenant: token.tenant, role: token.role, tokenId: token.id };
}

/** A validated CreateTokenRequest. */
export interface TokenRequest {
  tenant: string;
  role: Role;
  name: string;
  /** Undefined: it does not expire. */
  expiresAtMs: number | undefined;
}

const MAX_TOKEN_NAME = 200;
const MAX_TTL_MS = 10 * 365 * 24 * 3600_000;

/** Checks a CreateTokenRequest, naming the field and the fix on bad input. */
export function parseTokenRequest(req: { tenant: string; role: Role; name: string; ttl?: Duration | undefined }, nowMs: number): TokenRequest {
  const tenant = parseTenant(req.tenant);
  if (!ROLE_NAMES.has(req.role)) throw new InvalidArgumentError('role', 'required: ROLE_VIEWER, ROLE_SUBMITTER or ROLE_ADMIN');
  if ([...req.name].length > MAX_TOKEN_NAME) throw new InvalidArgumentError('name', `at most ${MAX_TOKEN_NAME} characters`);
  if (/[\u0000-\u001f\u007f]/.test(req.name)) throw new InvalidArgumentError('name', 'control characters are not allowed');
  const ttlMs = req.ttl ? durationToMillis(req.ttl) : 0;
  if (!Number.isFinite(ttlMs) || ttlMs < 0 || ttlMs > MAX_TTL_MS) throw new InvalidArgumentError('ttl', 'must be between 0 (never expires) and 10 years');
  return { tenant, role: req.role, name: req.name, expiresAtMs: ttlMs > 0 ? nowMs + ttlMs : undefined };
}
