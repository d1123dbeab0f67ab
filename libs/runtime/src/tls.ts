import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { z } from 'zod';
import { PermissionDeniedError } from '@autoglm/core';

/**
 * Transport security between the services and on the public endpoint. Each
 * service holds a certificate of the mesh's CA whose subject says its role
 * (OU: decision, parser, monitor, agent, admin) and name (CN: the service,
 * or an agent's node id). Internal servers require a client certificate of
 * the same CA and authorize each call by the role it names (mutual TLS);
 * the parser's public endpoint requires none (clients prove who they are with
 * API tokens).
 */

/** A certificate's role and name, as a server sees its caller. */
export interface PeerIdentity {
  role: string;
  name: string;
}

/** PEM contents of the CA, this service's certificate and its key. */
export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The TLS settings every service's configuration has (files; all three or none). */
export const tlsConfigShape = {
  /** The mesh CA's certificate (PEM): peers must present certificates it signed. */
  tlsCa: z.string().min(1).optional(),
  /** This service's certificate (PEM), signed by the CA. */
  tlsCert: z.string().min(1).optional(),
  /** This service's private key (PEM). */
  tlsKey: z.string().min(1).optional(),
};

export const TLS_ENV = { tlsCa: 'AUTOGLM_TLS_CA', tlsCert: 'AUTOGLM_TLS_CERT', tlsKey: 'AUTOGLM_TLS_KEY' } as const;

/** The files read, or undefined when none is set; throws naming what is missing when only some are. */
export function loadTls(config: { tlsCa?: string; tlsCert?: string; tlsKey?: string }): TlsMaterial | undefined {
  const { tlsCa, tlsCert, tlsKey } = config;
  if (tlsCa === undefined && tlsCert === undefined && tlsKey === undefined) return undefined;
  const missing = Object.entries(TLS_ENV)
    .filter(([k]) => config[k as keyof typeof TLS_ENV] === undefined)
    .map(([, env]) => env);
  if (missing.length > 0) throw new Error(`TLS needs ${Object.values(TLS_ENV).join(', ')} together; ${missing.join(', ')} not set`);
  return { ca: readFileSync(tlsCa!), cert: readFileSync(tlsCert!), key: readFileSync(tlsKey!) };
}

/** Credentials for a server: TLS with this service's certificate, requiring a CA-signed client certificate unless public. */
export function serverCredentials(tls: TlsMaterial | undefined, requireClientCertificate: boolean): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], requireClientCertificate);
}

/** Credentials for a client of another service: the CA to trust, and this service's certificate to present. */
export function clientCredentials(tls: TlsMaterial | undefined): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  return credentials.createSsl(tls.ca, tls.key, tls.cert);
}

/** The caller's identity from its certificate (undefined without one). */
export function identityOf(certificate: PeerCertificate | undefined): PeerIdentity | undefined {
  if (!certificate?.subject) return undefined;
  const pick = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);
  const role = pick(certificate.subject.OU);
  const name = pick(certificate.subject.CN);
  return role && name ? { role, name } : undefined;
}

/**
 * On a server with mutual TLS, refuses (PERMISSION_DENIED) a caller whose
 * certificate's role is not one of `roles`; on a plaintext server, lets
 * every caller through (there is no identity to check).
 */
export function requireRole(ctx: { mutualTls: boolean; identity: PeerIdentity | undefined }, roles: readonly string[], what: string): void {
  if (!ctx.mutualTls) return;
  const who = ctx.identity;
  if (who && roles.includes(who.role)) return;
  throw new PermissionDeniedError(`${what} is for ${roles.join(' or ')}; the caller's certificate is ${who ? `${who.role} "${who.name}"` : 'without a role'}`);
}

/**
 * The handlers of a service, each refusing callers whose certificate's role
 * is not among those `roles` names for its method (see requireRole).
 */
export function withRoles<H extends Record<string, (...args: never[]) => unknown>>(service: string, handlers: H, roles: { readonly [K in keyof H]: readonly string[] }): H {
  const guarded: Record<string, (...args: unknown[]) => unknown> = {};
  for (const [method, handler] of Object.entries(handlers)) {
    const allowed = roles[method as keyof H];
    guarded[method] = (...args: unknown[]) => {
      // The call context is every handler's last argument.
      const ctx = args[args.length - 1] as { mutualTls: boolean; identity: PeerIdentity | undefined };
      try {
        requireRole(ctx, allowed, `${service}.${method[0]!.toUpperCase()}${method.slice(1)}`);
      } catch (err) {
        return Promise.reject(err);
      }
      return (handler as (...a: unknown[]) => unknown)(...args);
    };
  }
  return guarded as unknown as H;
}

/**
 * Channel options for TLS to `address`: when it is an IP literal, the name
 * checked (and sent as SNI, which may not be an IP) is "localhost", which
 * every certificate of a local mesh names besides its addresses (the
 * certificate must still come from the mesh's CA).
 */
export function tlsChannelOptions(address: string): { 'grpc.ssl_target_name_override'?: string } {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return isIP(host) ? { 'grpc.ssl_target_name_override': 'localhost' } : {};
}
