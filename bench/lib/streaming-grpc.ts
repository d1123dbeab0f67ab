import type { AutoglmClient } from '@autoglm/client';
import type { StreamRequest } from './streaming-request';
import type { StreamTiming } from './streaming-measures';

/** One stream through the public gRPC door: the SDK's `infer` (TaskService.Infer), timed per chunk as the caller iterates. */
export async function streamGrpc(client: AutoglmClient, request: StreamRequest): Promise<StreamTiming> {
  const timing: StreamTiming = { startedAt: performance.now(), tokenAt: [] };
  try {
    const stream = client.infer({
      model: request.model,
      input: { messages: request.messages, params: { maxTokens: request.maxTokens } },
    });
    for await (const message of stream) {
      const at = performance.now();
      if (message.kind?.$case === 'accepted') timing.acceptedAt = at;
      if (message.kind?.$case !== 'chunk') continue;
      for (let i = 0; i < message.kind.chunk.tokenCount; i++) timing.tokenAt.push(at);
    }
  } catch (error) {
    timing.error = error instanceof Error ? error.message : String(error);
  }
  return timing;
}
