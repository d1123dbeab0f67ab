import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { Role } from '@autoglm/proto';
import { DomainError, parseRole, parseTenant, UnauthenticatedError, UnavailableError, type Principal } from '@autoglm/core';

/** What a JWT must be, and where its tenant and role are. */
export interface OidcOptions {
  issuer: string;
  audience: string;
  /** The issuer's JSON Web Key Set (its `jwks_uri`). */
  jwksUrl: string;
  /** The claim naming the tenant (required in every token). */
  tenantClaim: string;
  /** The claim naming the role: viewer, submitter or admin. */
  roleClaim: string;
  /** The role of a token without the role claim. */
  defaultRole: Role;
}

/**
 * OpenID Connect ID or access tokens as credentials: a JWT signed by a key
 * of the issuer's JWKS (fetched and cached by `jose`, refetched when a
 * token names a key it does not know), with the configured issuer and
 * audience, not expired, naming a tenant (and optionally a role).
 */
export class OidcVerifier {
  private readonly keys: JWTVerifyGetKey;

  constructor(
    private readonly o: OidcOptions,
    keys?: JWTVerifyGetKey,
  ) {
    this.keys = keys ?? createRemoteJWKSet(new URL(o.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  }

  async verify(jwt: string): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(jwt, this.keys, { issuer: this.o.issuer, audience: this.o.audience, clockTolerance: 5 }));
    } catch (err) {
      // The issuer's keys out of reach is not the caller's fault: retry.
      if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError)) throw new UnavailableError(`the identity provider's keys (${this.o.jwksUrl}) could not be fetched; retry`, { cause: err });
      throw new UnauthenticatedError(`the JWT was refused: ${reason(err)}`);
    }
    const tenant = payload[this.o.tenantClaim];
    if (typeof tenant !== 'string' || tenant === '') throw new UnauthenticatedError(`the JWT has no "${this.o.tenantClaim}" claim naming the tenant it acts for`);
    const role = payload[this.o.roleClaim];
    try {
      return {
        tenant: parseTenant(tenant),
        role: role === undefined ? this.o.defaultRole : parseRole(String(role), this.o.roleClaim),
        tokenId: `oidc:${typeof payload.sub === 'string' ? payload.sub : ''}`,
      };
    } catch (err) {
      throw new UnauthenticatedError(`the JWT's claims are not usable: ${err instanceof DomainError ? err.message : String(err)}`);
    }
  }
}

function reason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'it has expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `its "${err.claim}" claim is not what this mesh accepts (${err.reason})`;
  if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey) return "its signature is not by a key of the issuer's JWKS";
  return (err as Error).message;
}
