import type { Metadata } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { Role, type ApiToken } from '@autoglm/proto';
import { apiTokenSecret, bearerCredential, looksLikeJwt, looksLikeToken, principalOf, requireAccess, tokenHash, UnauthenticatedError, type Access, type Principal } from '@autoglm/core';
import type { OidcVerifier } from './oidc';
import { isServiceError } from '@autoglm/runtime';
import { TENANT_METADATA } from './tenant';

/** How the parser knows who calls: API tokens (the default), or not at all (a trusted network, a test). */
export type AuthMode = 'tokens' | 'none';

/** Lookups remembered at most this many secrets' worth (oldest forgotten first). */
const MAX_CACHED = 10_000;

interface Cached {
  token: ApiToken | undefined;
  atMs: number;
}

/**
 * Turns a call's metadata into its Principal. With tokens, the bearer token's
 * SHA-256 is looked up in decision's token store; answers (found or not) are
 * kept `cacheMs`, so a revocation takes at most that long to bite and a
 * burst of calls costs one lookup. Without authentication, every caller is
 * an admin acting for the tenant its request or x-autoglm-tenant names.
 */
export class Authenticator {
  private readonly cache = new Map<string, Cached>();
  private readonly inFlight = new Map<string, Promise<ApiToken | undefined>>();

  constructor(
    readonly mode: AuthMode,
    private readonly lookUp: (secretSha256: string) => Promise<ApiToken | undefined>,
    private readonly cacheMs: number,
    private readonly clock: () => number = Date.now,
    /** JWTs of an OpenID Connect issuer, besides API tokens. */
    private readonly oidc?: OidcVerifier,
  ) {}

  async principal(metadata: Metadata): Promise<Principal> {
    if (this.mode === 'none') {
      const named = metadata.get(TENANT_METADATA)[0];
      return { tenant: named === undefined ? '' : String(named), role: Role.ADMIN, tokenId: '' };
    }
    const raw = metadata.get('authorization')[0];
    const credential = bearerCredential(raw === undefined ? undefined : String(raw));
    if (this.oidc && !looksLikeToken(credential) && looksLikeJwt(credential)) return this.oidc.verify(credential);
    const secret = apiTokenSecret(credential);
    const token = await this.find(tokenHash(secret));
    if (!token) throw new UnauthenticatedError('the bearer token is not known here (mistyped, or made for another mesh): ask an admin for one (autoglm tokens create)');
    return principalOf(token, this.clock());
  }

  /** The caller, once its role is checked to allow `what` (PERMISSION_DENIED otherwise). */
  async authorize(metadata: Metadata, access: Access, what: string): Promise<Principal> {
    const who = await this.principal(metadata);
    requireAccess(who, access, what);
    return who;
  }

  /** Forgets every cached answer (after a revocation made through this parser: it bites at once here). */
  forget(): void {
    this.cache.clear();
  }

  private async find(hash: string): Promise<ApiToken | undefined> {
    const now = this.clock();
    const cached = this.cache.get(hash);
    if (cached && now - cached.atMs < this.cacheMs) return cached.token;
    let pending = this.inFlight.get(hash);
    if (!pending) {
      pending = this.lookUp(hash).finally(() => this.inFlight.delete(hash));
      this.inFlight.set(hash, pending);
    }
    const token = await pending;
    this.cache.delete(hash);
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(hash, { token, atMs: now });
    return token;
  }
}

/** A lookup through decision: NOT_FOUND is "no such token"; anything else (decision down) propagates. */
export async function lookUpOrUndefined(call: () => Promise<ApiToken>): Promise<ApiToken | undefined> {
  try {
    return await call();
  } catch (err) {
    if (isServiceError(err) && err.code === status.NOT_FOUND) return undefined;
    throw err;
  }
}
