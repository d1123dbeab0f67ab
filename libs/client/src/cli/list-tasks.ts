import type { Task, TaskState } from '@autoglm/proto';
import type { AutoglmClient } from '../sdk/client';
import { collectPages } from './pages';

/** Up to `limit` of a tenant's tasks in `states` (all when empty) that `keep` accepts, newest first, fetched page by page. */
export async function listTasks(
  client: AutoglmClient,
  query: { tenant: string; states: TaskState[]; limit: number; keep?: (task: Task) => boolean },
): Promise<Task[]> {
  return collectPages(async (pageSize, pageToken) => {
    const page = await client.list({ tenant: query.tenant, states: query.states, pageSize, pageToken });
    return { items: query.keep ? page.tasks.filter(query.keep) : page.tasks, nextPageToken: page.nextPageToken };
  }, query.limit);
}
