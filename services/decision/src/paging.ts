/** Ids and page tokens of decision's list calls (ListTasks, ListSchedules). */
import { InvalidArgumentError } from '@autoglm/core';

/** A task or schedule id: a UUID, in either case. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Rows per page: 100 when page_size is 0, at most 1000. */
export function pageLimit(pageSize: number): number {
  const limit = pageSize === 0 ? 100 : pageSize;
  if (limit > 1000) throw new InvalidArgumentError('page_size', `must be at most 1000, got ${pageSize}`);
  return limit;
}

/** The token of the page after the row (createdAtMs, id), newest first. */
export function encodePageToken(createdAtMs: number, id: string): string {
  return Buffer.from(`${createdAtMs}|${id}`).toString('base64url');
}

export function decodePageToken(token: string): { createdAtMs: number; id: string } {
  const [ms, id] = Buffer.from(token, 'base64url').toString().split('|');
  if (!ms || !id || !Number.isFinite(Number(ms)) || !UUID.test(id)) throw new InvalidArgumentError('page_token', 'is not a token from a previous page');
  return { createdAtMs: Number(ms), id };
}
