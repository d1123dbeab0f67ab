import type { Task, TaskState } from '@autoglm/proto';
import type { AutoglmClient } from '../sdk/client';

/** Up to `limit` of a tenant's tasks in `states` (all when empty) that `keep` accepts, newest first, fetched page by page. */
export async function listTasks(
  client: AutoglmClient,
  query: { tenant: string; states: TaskState[]; limit: number; keep?: (task: Task) => boolean },
): Promise<Task[]> {
  const found: Task[] = [];
  let pageToken = '';
  do {
    const page = await client.list({ tenant: query.tenant, states: query.states, pageSize: Math.min(1000, Math.max(1, query.limit - found.length)), pageToken });
    found.push(...(query.keep ? page.tasks.filter(query.keep) : page.tasks));
    pageToken = page.nextPageToken;
  } while (pageToken !== '' && found.length < query.limit);
  return found.slice(0, query.limit);
}
