/**
 * Hosts PGlite in a worker thread. PGlite runs PostgreSQL as WebAssembly,
 * synchronously on whatever thread calls it; in decision's main thread every
 * commit would stall gRPC for its whole duration. Here it runs beside the
 * event loop, on the machine's other core.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

interface Request {
  id: number;
  sql: string;
  params?: unknown[];
}

const port = parentPort!;
const { dataDir } = workerData as { dataDir?: string };
const db = new PGlite(dataDir);

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
