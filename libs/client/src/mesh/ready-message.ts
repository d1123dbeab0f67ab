/** What a service sends over IPC once it is listening. */
export interface ReadyMessage {
  type: 'ready';
  /** The service's own name ("decision", "executor-agent", ...). */
  service: string;
  /** host:port its gRPC server is bound to. */
  grpcAddress: string;
  /** host:port of its HTTP server, for services that have one (monitor). */
  httpAddress?: string;
}

/** Whether an IPC message is a well-formed ready message. */
export function isReadyMessage(message: unknown): message is ReadyMessage {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Record<string, unknown>;
  return (
    m.type === 'ready' &&
    typeof m.service === 'string' &&
    typeof m.grpcAddress === 'string' &&
    (m.httpAddress === undefined || typeof m.httpAddress === 'string')
  );
}

/** The port of a "host:port" or "[v6]:port" address; undefined when there is none. */
export function portOf(address: string): number | undefined {
  const match = /:(\d+)$/.exec(address);
  if (!match?.[1]) return undefined;
  const port = Number(match[1]);
  return port > 0 && port < 65536 ? port : undefined;
}

/**
 * The address peers should dial for a service asked to listen on `requested`
 * that reported `reported`: the requested host (services may report a wildcard
 * such as 0.0.0.0 or [::]) with the port actually bound.
 */
export function boundAddress(requested: string, reported: string | undefined): string {
  const port = reported === undefined ? undefined : portOf(reported);
  if (port === undefined) return requested;
  const host = requested.slice(0, requested.lastIndexOf(':'));
  return `${host}:${port}`;
}
