import * as path from 'node:path';

/** Directory holding the `.proto` sources (for proto-loader and server reflection). */
export const PROTO_ROOT = path.resolve(__dirname, '../../../proto');

/** The contract's files, relative to {@link PROTO_ROOT}. */
export const PROTO_FILES = [
  'autoglm/v1/task.proto',
  'autoglm/v1/cluster.proto',
  'autoglm/v1/decision.proto',
  'autoglm/v1/executor.proto',
  'autoglm/v1/monitor.proto',
  'autoglm/v1/schedule.proto',
  'autoglm/v1/auth.proto',
] as const;
