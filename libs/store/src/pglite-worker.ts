/**
 * Hosts PGlite in a worker thread. PGlite runs PostgreSQL as WebAssembly,
 * synchronously on whatever thread calls it; in decision's main thread every
 * commit would stall gRPC for its whole duration. Here it runs beside the
 * event loop, on the machine's other core.
 */
import './private-files';
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

interface Request {
  id: number;
  sql: string;
  params?: unknown[];
}

const port = parentPort!;
const { dataDir, sharedBuffers } = workerData as { dataDir?: string; sharedBuffers?: string };
/** PGlite's own start parameters (single-user mode and the rest), which startParams replaces rather than extends. */
const defaults = (PGlite as unknown as { defaultStartParams: string[] }).defaultStartParams;
if (sharedBuffers && !Array.isArray(defaults)) throw new Error('this PGlite version has no defaultStartParams: shared_buffers cannot be set');
const db = new PGlite(dataDir, sharedBuffers ? { startParams: [...defaults, '-c', `shared_buffers=${sharedBuffers}`] } : {});

db.waitReady.then(
  () => port.postMessage({ ready: true }),
  (err: unknown) => port.postMessage({ ready: false, error: String((err as Error)?.message ?? err) }),
);

port.on('message', (req: Request | 'close') => {
  if (req === 'close') {
    db.close().then(
      () => port.postMessage({ closed: true }),
      () => port.postMessage({ closed: true }),
    );
    return;
  }
  db.query(req.sql, req.params).then(
    (res) => port.postMessage({ id: req.id, rows: res.rows }),
    (err: unknown) => {
      const e = err as { message?: string; code?: string };
      port.postMessage({ id: req.id, error: e?.message ?? String(err), code: e?.code });
    },
  );
});
