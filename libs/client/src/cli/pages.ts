/** One page of a listing: its items and the token of the next page ('' after the last). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

/**
 * Up to `limit` items, fetched page by page (at most 1000 a page) until the
 * listing ends or `limit` are found. `fetchPage` is asked for the page size
 * still wanted and the token of the page.
 */
export async function collectPages<T>(fetchPage: (pageSize: number, pageToken: string) => Promise<Page<T>>, limit: number): Promise<T[]> {
  const found: T[] = [];
  let pageToken = '';
  do {
    const page = await fetchPage(Math.min(1000, Math.max(1, limit - found.length)), pageToken);
    found.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken !== '' && found.length < limit);
  return found.slice(0, limit);
}
