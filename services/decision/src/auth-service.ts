import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiToken, Role, type DecisionAuthServiceService } from '@autoglm/proto';
import { InvalidArgumentError, looksLikeToken, newTokenSecret, NotFoundError, toTimestamp, tokenHash, tokenPrefix } from '@autoglm/core';
import type { TokenStore } from '@autoglm/store';
import type { Logger, ServiceHandlers } from '@autoglm/runtime';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** DecisionAuthService: the token store, for the parser (which makes secrets and checks callers). */
export function authHandlers(tokens: TokenStore): ServiceHandlers<typeof DecisionAuthServiceService> {
  return {
    storeToken: async (req) => {
      const token = req.token;
      if (!token || !UUID.test(token.id)) throw new InvalidArgumentError('token.id', 'a UUID is required');
      if (!SHA256_HEX.test(req.secretSha256)) throw new InvalidArgumentError('secret_sha256', 'the lowercase hex SHA-256 of the secret is required');
      return tokens.insert(token, req.secretSha256);
    },
    lookUpToken: async (req) => {
      const found = SHA256_HEX.test(req.secretSha256) ? await tokens.bySecretHash(req.secretSha256) : undefined;
      if (!found) throw new NotFoundError('no such token');
      return found;
    },
    listTokens: async (req) => ({ tokens: await tokens.list({ tenant: req.tenant || undefined, includeInactive: req.includeInactive, nowMs: Date.now() }) }),
    revokeToken: async (req) => {
      if (!UUID.test(req.tokenId)) throw new InvalidArgumentError('token_id', 'a token id (UUID, as "autoglm tokens list" shows) is required');
      const revoked = await tokens.revoke(req.tokenId, Date.now());
      if (!revoked) throw new NotFoundError(`token ${req.tokenId} not found`);
      return revoked;
    },
  };
}

/**
 * The first admin token, kept in a file only its owner can read: read when
 * the file exists (and stored again if the database is new), else made,
 * stored and written (mode 0600, directory 0700). The local mesh passes
 * `<data dir>/admin-token`, which the CLI on the same machine reads.
 */
export async function ensureBootstrapToken(tokens: TokenStore, file: string, logger: Logger): Promise<void> {
  let secret: string | undefined;
  if (fs.existsSync(file)) {
    secret = fs.readFileSync(file, 'utf8').trim();
    if (!looksLikeToken(secret)) throw new Error(`${file} does not hold an Open-AutoGLM token; delete it to have a new one made`);
    fs.chmodSync(file, 0o600);
  }
  const made = secret === undefined;
  secret ??= newTokenSecret();
  const hash = tokenHash(secret);
  const known = await tokens.bySecretHash(hash);
  if (!known) {
    await tokens.insert(ApiToken.fromPartial({ id: randomUUID(), tenant: 'default', role: Role.ADMIN, name: 'bootstrap admin (local mesh)', prefix: tokenPrefix(secret), createdAt: toTimestamp(Date.now()) }), hash);
  } else if (known.revokedAt) {
    logger.warn({ file, token: known.id }, 'the bootstrap admin token in this file was revoked; delete the file to have a new one made');
  }
  if (made) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Written to a private name first, then renamed: never readable by others, never half-written.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
    logger.info({ file }, 'made the bootstrap admin token');
  }
}
