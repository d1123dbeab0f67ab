import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';

/**
 * A fetch that trusts `ca` (a mesh's CA), for HTTP clients such as OpenAI's
 * SDK that accept a fetch: Node's built-in fetch takes a CA only through
 * undici's Agent, which is not a dependency here. No connection is kept
 * alive past its request, so nothing outlives a test.
 */
export function fetchTrusting(ca: Buffer): typeof fetch {
  return async (input, init) => {
    const req = new Request(input, init);
    const body = req.body ? Buffer.from(await req.arrayBuffer()) : undefined;
    return new Promise<Response>((resolve, reject) => {
      const outgoing = httpsRequest(req.url, { method: req.method, headers: Object.fromEntries(req.headers), ca, agent: false, signal: init?.signal ?? undefined }, (res) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) for (const v of [value ?? []].flat()) headers.append(name, v);
        resolve(new Response(Readable.toWeb(res) as ReadableStream<Uint8Array>, { status: res.statusCode, headers }));
      });
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  };
}
