import type { HistoryEvent } from '@autoglm/core';
import { TaskStore } from '@autoglm/store';

/**
 * Every event a run recorded, read back from its store after the mesh has
 * stopped (PGlite's directory is single-process), for the history checker.
 */
export async function readHistory(where: { dataDir: string } | { databaseUrl: string }): Promise<HistoryEvent[]> {
  const store = await TaskStore.open(where);
  try {
    const events: HistoryEvent[] = [];
    for await (const page of store.allEvents()) {
      for (const e of page) events.push({ taskId: e.taskId, sequence: e.sequence, state: e.state, previousState: e.previousState, final: e.final });
    }
    return events;
  } finally {
    await store.close();
  }
}
