import { FILE_DESCRIPTOR_SET, TaskServiceService } from '@autoglm/proto';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { credentials, loadPackageDefinition, type Client, type ClientDuplexStream, type ServiceClientConstructor } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import pino from 'pino';
import { GrpcServer } from './grpc-server';

describe('server reflection', () => {
  const server = new GrpcServer({ logger: pino({ level: 'silent' }) });
  let address: string;
  let client: Client & { ServerReflectionInfo(): ClientDuplexStream<unknown, Record<string, unknown>> };

  beforeAll(async () => {
    const unimplemented = async () => {
      throw new Error('not used');
    };
    server.addService(TaskServiceService, {
      submitTask: unimplemented,
      submitWorkflow: unimplemented,
      getTask: unimplemented,
      listTasks: unimplemented,
      cancelTask: unimplemented,
      explainTask: unimplemented,
      watchTask: unimplemented,
      infer: unimplemented,
      requeueDeadLetters: unimplemented,
      purgeDeadLetters: unimplemented,
    });
    address = await server.listen('127.0.0.1:0');
    const file = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = loadPackageDefinition(protoLoader.loadSync(file, { keepCase: true, oneofs: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: ServiceClientConstructor } } };
    };
    client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure()) as unknown as typeof client;
  });

  afterAll(async () => {
    client.close();
    await server.shutdown();
  });

  function ask(request: Record<string, unknown>): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const call = client.ServerReflectionInfo();
      call.on('data', (r) => {
        resolve(r);
        call.end();
      });
      call.on('error', reject);
      call.write(request);
    });
  }

  it('lists the services the server serves', async () => {
    const r = await ask({ list_services: '' });
    expect(r.list_services_response).toEqual({ service: [{ name: 'autoglm.v1.TaskService' }] });
  });

  it('answers a symbol with its file and every file that file imports', async () => {
    const r = (await ask({ file_containing_symbol: 'autoglm.v1.TaskService' })) as { file_descriptor_response: { file_descriptor_proto: Buffer[] } };
    const names = r.file_descriptor_response.file_descriptor_proto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
    expect(names[0]).toBe('autoglm/v1/task.proto');
    expect(names).toEqual(expect.arrayContaining(['google/protobuf/timestamp.proto', 'google/protobuf/duration.proto']));
    expect(FILE_DESCRIPTOR_SET.length).toBeGreaterThan(1000);
  });

  it('says NOT_FOUND for an unknown symbol', async () => {
    const r = (await ask({ file_containing_symbol: 'nope.Nothing' })) as { error_response: { error_code: number } };
    expect(r.error_response.error_code).toBe(5);
  });
});
