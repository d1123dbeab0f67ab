import { ApiToken, type Role } from '@autoglm/proto';
import { timestampToMillis, toTimestamp } from '@autoglm/core';
import type { SqlQueryable } from './sql-engine';

interface TokenRow {
  id: string;
  tenant: string;
  role: number;
  name: string;
  prefix: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

const COLUMNS = 'id, tenant, role, name, prefix, created_at, expires_at, revoked_at';

/**
 * API tokens, in the task store's database: their hashes, tenants and roles.
 * Secrets are never stored; a token is found by its secret's SHA-256. Writes
 * are single idempotent statements.
 */
export class TokenStore {
  constructor(private readonly engine: SqlQueryable) {}

  /** Stores a token under its id; storing the same id again changes nothing and returns what is stored. */
  async insert(token: ApiToken, secretSha256: string): Promise<ApiToken> {
    await this.engine.query(
      `INSERT INTO api_tokens (id, secret_sha256, tenant, role, name, prefix, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (id) DO NOTHING`,
      [token.id, secretSha256, token.tenant, token.role, token.name, token.prefix, millis(token.createdAt) ?? Date.now(), millis(token.expiresAt) ?? null],
    );
    const stored = await this.get(token.id);
    if (!stored) throw new Error(`token ${token.id} was neither inserted nor found`);
    return stored;
  }

  async get(id: string): Promise<ApiToken | undefined> {
    const { rows } = await this.engine.query<TokenRow>(`SELECT ${COLUMNS} FROM api_tokens WHERE id = $1`, [id]);
    return rows[0] ? rowToToken(rows[0]) : undefined;
  }

  async bySecretHash(secretSha256: string): Promise<ApiToken | undefined> {
    const { rows } = await this.engine.query<TokenRow>(`SELECT ${COLUMNS} FROM api_tokens WHERE secret_sha256 = $1`, [secretSha256]);
    return rows[0] ? rowToToken(rows[0]) : undefined;
  }

  /** Newest first; inactive ones (revoked or expired at `nowMs`) only when asked. */
  async list(filter: { tenant?: string; includeInactive: boolean; nowMs: number }): Promise<ApiToken[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tenant) {
      params.push(filter.tenant);
      where.push(`tenant = $${params.length}`);
    }
    if (!filter.includeInactive) {
      params.push(filter.nowMs);
      where.push(`revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $${params.length})`);
    }
    const { rows } = await this.engine.query<TokenRow>(
      `SELECT ${COLUMNS} FROM api_tokens ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC`,
      params,
    );
    return rows.map(rowToToken);
  }

  /** Marks the token revoked (the first revocation's time stays); undefined when there is no such token. */
  async revoke(id: string, atMs: number): Promise<ApiToken | undefined> {
    await this.engine.query(`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`, [id, atMs]);
    return this.get(id);
  }

  /** Whether any token that is not revoked has this role. */
  async anyActive(role: Role): Promise<boolean> {
    const { rows } = await this.engine.query(`SELECT 1 FROM api_tokens WHERE role = $1 AND revoked_at IS NULL LIMIT 1`, [role]);
    return rows.length > 0;
  }
}

function millis(t: ApiToken['createdAt']): number | undefined {
  return t ? timestampToMillis(t) : undefined;
}

function rowToToken(r: TokenRow): ApiToken {
  return ApiToken.fromPartial({
    id: r.id,
    tenant: r.tenant,
    role: Number(r.role),
    name: r.name,
    prefix: r.prefix,
    createdAt: toTimestamp(Number(r.created_at)),
    expiresAt: r.expires_at === null ? undefined : toTimestamp(Number(r.expires_at)),
    revokedAt: r.revoked_at === null ? undefined : toTimestamp(Number(r.revoked_at)),
  });
}
