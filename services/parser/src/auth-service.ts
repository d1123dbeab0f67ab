import { randomUUID } from 'node:crypto';
import { ApiToken, type AuthServiceService, type DecisionAuthServiceClient } from '@autoglm/proto';
import { newTokenSecret, parseTokenRequest, toTimestamp, tokenHash, tokenPrefix } from '@autoglm/core';
import { callUnary, type ServiceHandlers } from '@autoglm/runtime';
import type { Authenticator } from './authenticate';

export interface AuthDeps {
  auth: Authenticator;
  tokens: DecisionAuthServiceClient;
  decisionTimeoutMs: number;
}

/**
 * The public AuthService. Secrets are made here and shown once; decision
 * stores their SHA-256 only. Managing tokens takes an admin token.
 */
export function authServiceHandlers(deps: AuthDeps): ServiceHandlers<typeof AuthServiceService> {
  const { auth, tokens } = deps;
  const opts = (signal: AbortSignal) => ({ deadlineMs: deps.decisionTimeoutMs, signal });
  return {
    createToken: async (req, ctx) => {
      await auth.authorize(ctx.metadata, 'admin', 'CreateToken');
      const now = Date.now();
      const wanted = parseTokenRequest(req, now);
      const secret = newTokenSecret();
      const token = ApiToken.fromPartial({
        id: randomUUID(),
        tenant: wanted.tenant,
        role: wanted.role,
        name: wanted.name,
        prefix: tokenPrefix(secret),
        createdAt: toTimestamp(now),
        expiresAt: wanted.expiresAtMs === undefined ? undefined : toTimestamp(wanted.expiresAtMs),
      });
      const stored = await callUnary(tokens.storeToken.bind(tokens), { token, secretSha256: tokenHash(secret) }, opts(ctx.signal));
      return { token: stored, secret };
    },
    listTokens: async (req, ctx) => {
      await auth.authorize(ctx.metadata, 'admin', 'ListTokens');
      return callUnary(tokens.listTokens.bind(tokens), req, opts(ctx.signal));
    },
    revokeToken: async (req, ctx) => {
      await auth.authorize(ctx.metadata, 'admin', 'RevokeToken');
      const revoked = await callUnary(tokens.revokeToken.bind(tokens), req, opts(ctx.signal));
      // Refused here at once; other parsers forget it within their cache time.
      auth.forget();
      return revoked;
    },
    whoAmI: async (_req, ctx) => {
      const who = await auth.principal(ctx.metadata);
      return { tenant: who.tenant, role: who.role, tokenId: who.tokenId, authentication: auth.mode !== 'none' };
    },
  };
}
