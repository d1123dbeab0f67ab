import * as path from 'node:path';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { seededRandom } from '@autoglm/core';
import { PROTO_FILES, PROTO_ROOT, TaskState } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';

/**
 * Random and malformed messages, built from the contract's descriptors, sent
 * to every public RPC: each call must end with a clear status (never a crash,
 * never INTERNAL or UNKNOWN for a message that parses), the services must go
 * on serving, and every submission they accepted must still be there.
 */

const PUBLIC_SERVICES = ['autoglm.v1.TaskService', 'autoglm.v1.ClusterService', 'autoglm.v1.ScheduleService', 'autoglm.v1.AuthService'];
const MESSAGES_PER_METHOD = 30;
/** Statuses a well-formed (if senseless) request may end with. */
const CLEAR = new Set<number>([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
  status.RESOURCE_EXHAUSTED,
  status.DEADLINE_EXCEEDED,
  status.CANCELLED,
  status.OUT_OF_RANGE,
]);

function loadContract(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('google/') ? target : path.join(PROTO_ROOT, target));
  root.loadSync([...PROTO_FILES]);
  root.resolveAll();
  return root;
}

type Random = () => number;

const STRINGS = ['', 'a', 'glm-4-9b', 'default', 'contract', '6f1d2c1e-0000-4000-8000-000000000000', '\u0000', '../../etc/passwd', 'é漢字🙂', '*/5 * * * *', 'UTC', '-1', 'x'.repeat(300)];

function randomValue(field: protobuf.Field, random: Random, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  if (field.resolvedType instanceof protobuf.Enum) return pick([...Object.values(field.resolvedType.values), 999, -1]);
  if (field.resolvedType instanceof protobuf.Type) return depth > 3 ? {} : randomMessage(field.resolvedType, random, depth + 1);
  switch (field.type) {
    case 'string':
      return random() < 0.8 ? pick(STRINGS) : String.fromCharCode(...Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 0xd7ff)));
    case 'bytes':
      return Buffer.from(Array.from({ length: Math.floor(random() * 16) }, () => Math.floor(random() * 256)));
    case 'bool':
      return random() < 0.5;
    case 'double':
    case 'float':
      return pick([0, -1, 1.5, 1e300, -1e300, Number.NaN, Number.POSITIVE_INFINITY]);
    default:
      // Integers of every width, signed and not.
      return pick([0, 1, -1, 7, 1000, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, Number.MAX_SAFE_INTEGER]);
  }
}

function randomMessage(type: protobuf.Type, random: Random, depth = 0): Record<string, unknown> {
  const message: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    if (random() < 0.4) continue;
    if (field.map) {
      const entries: Record<string, unknown> = {};
      for (let i = 0; i < Math.floor(random() * 3); i++) entries[STRINGS[Math.floor(random() * STRINGS.length)]!] = randomValue(field, random, depth);
      message[field.name] = entries;
    } else if (field.repeated) {
      message[field.name] = Array.from({ length: Math.floor(random() * 4) }, () => randomValue(field, random, depth));
    } else {
      message[field.name] = randomValue(field, random, depth);
    }
  }
  return message;
}

/** Encodes what protobufjs accepts of a random message (values it cannot encode are dropped). */
function encode(type: protobuf.Type, message: Record<string, unknown>): Buffer {
  try {
    return Buffer.from(type.encode(type.fromObject(message)).finish());
  } catch {
    return Buffer.from(type.encode(type.create({})).finish());
  }
}

/** Bytes that are not a valid message: random, or a valid encoding cut short. */
function malformed(valid: Buffer, random: Random): Buffer {
  if (valid.length > 2 && random() < 0.5) return valid.subarray(0, Math.max(1, Math.floor(valid.length * random())));
  return Buffer.from(Array.from({ length: 1 + Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
}

interface Outcome {
  code: number;
  details: string;
  reply?: Buffer;
}

describe('random and malformed messages to every public RPC', () => {
  let mesh: InProcessMesh;
  let raw: Client;
  const contract = loadContract();
  const random = seededRandom(20261207);

  beforeAll(async () => {
    mesh = await startInProcessMesh({ parser: { streamStartTimeoutMs: 300 }, monitor: {} });
    raw = new Client(mesh.parser.grpcAddress, credentials.createInsecure());
  }, 60_000);
  afterAll(async () => {
    raw?.close();
    await mesh?.stop();
  }, 30_000);

  const auth = (withToken: boolean) => {
    const md = new Metadata();
    if (withToken) md.set('authorization', `Bearer ${mesh.adminToken}`);
    return md;
  };
  const identity = (b: Buffer) => b;

  function unary(pathName: string, body: Buffer, md: Metadata): Promise<Outcome> {
    return new Promise((resolve) => {
      raw.makeUnaryRequest(pathName, identity, identity, body, md, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, reply?: Buffer) =>
        resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: '', reply }),
      );
    });
  }

  function stream(pathName: string, body: Buffer, md: Metadata, bidi: boolean): Promise<Outcome> {
    return new Promise((resolve) => {
      const options = { deadline: Date.now() + 5_000 };
      const call = bidi ? raw.makeBidiStreamRequest(pathName, identity, identity, md, options) : raw.makeServerStreamRequest(pathName, identity, identity, body, md, options);
      if (bidi) (call as unknown as { write(b: Buffer): void }).write(body);
      call.on('data', () => undefined);
      call.on('error', (err: ServiceError) => resolve({ code: err.code, details: err.details }));
      call.on('status', (s: { code: number; details: string }) => {
        if (s.code === status.OK) resolve({ code: s.code, details: s.details });
      });
      // A stream still open at its deadline ends DEADLINE_EXCEEDED (a clear status too).
    });
  }

  it('answers every call with a clear status, keeps serving, and loses nothing it accepted', async () => {
    const unclear: string[] = [];
    const accepted: string[] = [];
    const SubmitTaskResponse = contract.lookupType('autoglm.v1.SubmitTaskResponse');
    for (const serviceName of PUBLIC_SERVICES) {
      const service = contract.lookupService(serviceName);
      for (const method of service.methodsArray) {
        method.resolve();
        const requestType = method.resolvedRequestType!;
        const pathName = `/${serviceName}/${method.name}`;
        for (let i = 0; i < MESSAGES_PER_METHOD; i++) {
          const valid = encode(requestType, randomMessage(requestType, random));
          const isMalformed = i % 5 === 4;
          const body = isMalformed ? malformed(valid, random) : valid;
          const md = auth(i % 7 !== 3);
          const outcome = method.responseStream
            ? await stream(pathName, body, md, method.requestStream === true)
            : await unary(pathName, body, md);
          // A body that does not parse may be refused by grpc-js itself (INTERNAL, saying so); anything else must be clear.
          const parseRefusal = isMalformed && outcome.code === status.INTERNAL && /deserializ|parse|decode/i.test(outcome.details);
          if (!CLEAR.has(outcome.code) && !parseRefusal) unclear.push(`${pathName} → ${status[outcome.code]}: ${outcome.details}`);
          if (pathName.endsWith('/SubmitTask') && outcome.code === status.OK && outcome.reply) {
            const reply = SubmitTaskResponse.decode(outcome.reply) as unknown as { task?: { id: string } };
            if (reply.task?.id) accepted.push(reply.task.id);
          }
        }
      }
    }
    expect(unclear).toEqual([]);
    // Still serving, and every accepted submission is there.
    const { task } = await mesh.client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 0 } } } });
    expect(task!.state).not.toBe(TaskState.UNSPECIFIED);
    for (const id of accepted) expect((await mesh.client.get(id)).id).toBe(id);
  }, 120_000);
});
