// Used by the tests only (not exported from the package): a real grpc-js
// server on 127.0.0.1:0 with whatever fake handlers a test supplies.
import { Server, ServerCredentials, type UntypedServiceImplementation } from '@grpc/grpc-js';
import {
  type ClusterServiceServer,
  ClusterServiceService,
  type TaskServiceServer,
  TaskServiceService,
} from '@autoglm/proto';

/** A running test server. */
export interface TestServer {
  /** host:port to dial. */
  address: string;
  /**
   * Waits until every call and connection is closed. Rejects when something is
   * still open after `timeoutMs`: a stream leaked by the client under test.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Starts a server with the given handlers; the missing ones answer UNIMPLEMENTED. */
export async function startTestServer(
  tasks: Partial<TaskServiceServer>,
  cluster: Partial<ClusterServiceServer> = {},
): Promise<TestServer> {
  const server = new Server();
  server.addService(TaskServiceService, tasks as UntypedServiceImplementation);
  server.addService(ClusterServiceService, cluster as UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return {
    address: `127.0.0.1:${port}`,
    shutdown: (timeoutMs = 2000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          reject(new Error(`server still had open calls or connections after ${timeoutMs} ms`));
        }, timeoutMs);
        server.tryShutdown((error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        });
      }),
  };
}
