import type { Metadata } from '@grpc/grpc-js';

/** Metadata key a client may use to name its tenant instead of the request field. */
export const TENANT_METADATA = 'x-autoglm-tenant';

/** The tenant of a request: the field when set, else the metadata. */
export function tenantOf(field: string, metadata: Metadata): string {
  if (field) return field;
  const fromMetadata = metadata.get(TENANT_METADATA)[0];
  return fromMetadata === undefined ? '' : String(fromMetadata);
}
