// The public API of @autoglm/client, listed by name.
export {
  AutoglmClient,
  type AutoglmClientOptions,
  type InferOptions,
  MAX_MESSAGE_BYTES,
  type RequestOptions,
  type WatchOptions,
} from './sdk/client';
export {
  AutoglmError,
  type AutoglmErrorOptions,
  isRetryable,
  RETRY_AFTER_TRAILER,
  RETRYABLE_CODES,
  type StatusName,
  statusName,
} from './sdk/errors';
export { type RetryOptions } from './sdk/backoff';
export { type MessageInit } from './sdk/message-init';
export { type Mesh, type MeshProcess, startMesh } from './mesh/start-mesh';
export { ensureMeshPki, type MeshIdentity, type TlsFiles } from './mesh/pki';
export { defaultServiceEntry, type MeshOptions, type MeshServiceName } from './mesh/mesh-options';
export { MeshStartError } from './mesh/mesh-start-error';
export { type ReadyMessage } from './mesh/ready-message';
export { run as runCli } from './cli/main';
export { type CliIo } from './cli/io';
