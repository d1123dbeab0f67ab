import { webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import type * as X509 from '@peculiar/x509';

/**
 * The local mesh's own certificate authority and one certificate per
 * service: what `autoglm up` makes on first start (under `<data dir>/tls`,
 * keys 0600 in a 0700 directory) and reuses after. Each certificate's
 * subject names a role (OU) and a name (CN: the service, or an agent's node
 * id), which the services authorize calls by (libs/runtime/src/tls.ts).
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

let library: Promise<typeof X509> | undefined;
/**
 * The X.509 library, loaded on first use: it needs the global
 * reflect-metadata polyfill, which an SDK user importing this package
 * should not get unless a mesh is started.
 */
function loadX509(): Promise<typeof X509> {
  library ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as never);
    return x509;
  })();
  return library;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
const LEAF_DAYS = 825;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Who a certificate is for. */
export interface MeshIdentity {
  /** decision, parser, monitor, agent or admin. */
  role: string;
  /** The service, or an agent's node id: also its files' name. */
  name: string;
}

/** A certificate's files. */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/**
 * The CA and a certificate for each identity, made where missing. `hosts`:
 * the names and addresses the services are reached at (localhost and the
 * loopback addresses always).
 */
export async function ensureMeshPki(dir: string, identities: readonly MeshIdentity[], hosts: readonly string[] = []): Promise<Map<string, TlsFiles>> {
  const x509 = await loadX509();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const caFile = path.join(dir, 'ca.pem');
  const caKeyFile = path.join(dir, 'ca-key.pem');
  let ca: { cert: X509.X509Certificate; key: CryptoKey };
  if (existsSync(caFile) && existsSync(caKeyFile)) {
    ca = { cert: new x509.X509Certificate(readFileSync(caFile, 'utf8')), key: await importKey(x509, readFileSync(caKeyFile, 'utf8')) };
  } else {
    const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: 'CN=Open-AutoGLM local mesh CA',
      notBefore: new Date(Date.now() - DAY_MS),
      notAfter: new Date(Date.now() + CA_DAYS * DAY_MS),
      keys: keys as CryptoKeyPair,
      signingAlgorithm: ALGORITHM,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    await writePrivate(caKeyFile, await exportKey(x509, keys.privateKey));
    writeFileSync(caFile, cert.toString('pem'), { mode: 0o644 });
    ca = { cert, key: keys.privateKey };
  }
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...hosts])];
  const files = new Map<string, TlsFiles>();
  for (const id of identities) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(id.name) || !/^[a-z]+$/.test(id.role)) throw new Error(`not a certificate identity: ${id.role}/${id.name}`);
    const cert = path.join(dir, `${id.name}.pem`);
    const key = path.join(dir, `${id.name}-key.pem`);
    if (!existsSync(cert) || !existsSync(key) || !issuedFor(x509, readFileSync(cert, 'utf8'), ca.cert, id)) {
      const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${id.name}, OU=${id.role}`,
        issuer: ca.cert.subject,
        notBefore: new Date(Date.now() - DAY_MS),
        notAfter: new Date(Date.now() + LEAF_DAYS * DAY_MS),
        signingKey: ca.key,
        publicKey: (keys as CryptoKeyPair).publicKey,
        signingAlgorithm: ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(false),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
          new x509.ExtendedKeyUsageExtension([SERVER_AUTH, CLIENT_AUTH]),
          new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
        ],
      });
      await writePrivate(key, await exportKey(x509, (keys as CryptoKeyPair).privateKey));
      writeFileSync(cert, leaf.toString('pem'), { mode: 0o644 });
    }
    files.set(id.name, { ca: caFile, cert, key });
  }
  return files;
}

/** Whether a certificate file is this CA's, for this identity, and not about to expire. */
function issuedFor(x509: typeof X509, pem: string, ca: X509.X509Certificate, id: MeshIdentity): boolean {
  try {
    const cert = new x509.X509Certificate(pem);
    return cert.issuer === ca.subject && cert.subject === `CN=${id.name}, OU=${id.role}` && cert.notAfter.getTime() > Date.now() + 30 * DAY_MS;
  } catch {
    return false;
  }
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}

async function exportKey(x509: typeof X509, key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importKey(x509: typeof X509, pem: string): Promise<CryptoKey> {
  return webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decode(pem)[0]!, ALGORITHM, true, ['sign']) as Promise<CryptoKey>;
}

/** Written 0600 under a temporary name, then renamed: never readable by others, never half-written. */
async function writePrivate(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
