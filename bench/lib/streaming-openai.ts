import type { IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { StreamRequest } from './streaming-request';
import type { StreamTiming } from './streaming-measures';

/** The tenant every stream is billed to, through either door. */
const TENANT = 'bench';

/** The OpenAI door's client side: HTTPS connections to the parser that trust the mesh's CA and are kept between requests. */
export interface OpenaiDoor {
  /** `https://host:port/v1`. */
  baseUrl: string;
  token: string;
  ca: Buffer | undefined;
  /** The connections of the current round (see `connect`). */
  agent: Agent;
}

/** A door whose connections are kept alive, as an OpenAI SDK's pooled client keeps them. */
export function openaiDoor(baseUrl: string, token: string, ca: Buffer | undefined): OpenaiDoor {
  return { baseUrl, token, ca, agent: keptAlive(ca) };
}

function keptAlive(ca: Buffer | undefined): Agent {
  return new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity, scheduling: 'lifo', ...(ca ? { ca } : {}) });
}

/**
 * Opens `count` new connections (TLS handshakes and all) with as many GET
 * /v1/models at once, so that a round's streams reuse them and their time to
 * first token is the request's, not the handshake's: the gRPC door's one
 * HTTP/2 connection is open before its round too. The last round's
 * connections are dropped first: the parser closes idle ones after Node's
 * 5 s keep-alive timeout, and reusing one it is closing fails with ECONNRESET.
 */
export async function connect(door: OpenaiDoor, count: number): Promise<void> {
  door.agent.destroy();
  door.agent = keptAlive(door.ca);
  await Promise.all(
    Array.from({ length: count }, () =>
      send(door, 'GET', '/models', undefined, (res, done) => {
        res.resume();
        res.on('end', done);
      }),
    ),
  );
}

/**
 * One stream through the OpenAI door: POST /v1/chat/completions with
 * `stream: true`, timed per `data:` event that carries content (the first
 * event, the assistant's role with no text, is not a token).
 */
export async function streamOpenai(door: OpenaiDoor, request: StreamRequest): Promise<StreamTiming> {
  const body = JSON.stringify({ model: request.model, messages: request.messages, max_tokens: request.maxTokens, stream: true });
  const timing: StreamTiming = { startedAt: performance.now(), tokenAt: [] };
  try {
    await send(door, 'POST', '/chat/completions', body, (res, done, fail) => {
      timing.acceptedAt = performance.now();
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => fail(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`)));
        return;
      }
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (data: string) => {
        const at = performance.now();
        buffered += data;
        let end: number;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
          let parsed: { error?: { message?: string }; choices?: Array<{ delta?: { content?: string } }> };
          try {
            parsed = JSON.parse(event.slice(6)) as typeof parsed;
          } catch {
            fail(new Error(`not JSON: ${event.slice(0, 100)}`));
            continue;
          }
          if (parsed.error) fail(new Error(parsed.error.message ?? 'error event'));
          else if (parsed.choices?.[0]?.delta?.content) timing.tokenAt.push(at);
        }
      });
      res.on('end', done);
    });
  } catch (error) {
    timing.error = error instanceof Error ? error.message : String(error);
  }
  return timing;
}

type Reader = (res: IncomingMessage, done: () => void, fail: (error: Error) => void) => void;

function send(door: OpenaiDoor, method: string, path: string, body: string | undefined, read: Reader): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const req = httpsRequest(
      `${door.baseUrl}${path}`,
      {
        method,
        agent: door.agent,
        headers: {
          authorization: `Bearer ${door.token}`,
          'x-autoglm-tenant': TENANT,
          ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        res.on('error', reject);
        read(res, () => resolve(), reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
