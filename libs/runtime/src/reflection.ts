import * as path from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type DescriptorProto, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { loadPackageDefinition, type Server, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** What a reflection request asks (proto-loader shape, keepCase). */
interface ReflectionRequest {
  host?: string;
  message_request?: 'file_by_filename' | 'file_containing_symbol' | 'file_containing_extension' | 'all_extension_numbers_of_type' | 'list_services';
  file_by_filename?: string;
  file_containing_symbol?: string;
}

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha; the protocol files come
 * from @grpc/reflection) over the contract's
 * real FileDescriptorSet, so `buf curl` and grpcurl can call any method
 * without the .proto files. Each answer carries the file and every file it
 * imports, as the protocol expects.
 */
export class Reflection {
  private readonly files = new Map<string, FileDescriptorProto>();
  private readonly fileOfSymbol = new Map<string, string>();
  private readonly encoded = new Map<string, Buffer>();

  constructor(descriptorSet: Uint8Array, private readonly services: () => string[]) {
    for (const file of fromBinary(FileDescriptorSetSchema, descriptorSet).file) {
      this.files.set(file.name, file);
      const prefix = file.package ? `${file.package}.` : '';
      const addMessages = (messages: DescriptorProto[], scope: string) => {
        for (const m of messages) {
          this.fileOfSymbol.set(`${scope}${m.name}`, file.name);
          for (const e of m.enumType) this.fileOfSymbol.set(`${scope}${m.name}.${e.name}`, file.name);
          addMessages(m.nestedType, `${scope}${m.name}.`);
        }
      };
      addMessages(file.messageType, prefix);
      for (const e of file.enumType) this.fileOfSymbol.set(`${prefix}${e.name}`, file.name);
      for (const s of file.service) {
        this.fileOfSymbol.set(`${prefix}${s.name}`, file.name);
        for (const m of s.method) this.fileOfSymbol.set(`${prefix}${s.name}.${m.name}`, file.name);
      }
    }
  }

  addToServer(server: Pick<Server, 'addService'>): void {
    for (const version of ['v1', 'v1alpha'] as const) {
      const file = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto', 'grpc', 'reflection', version, 'reflection.proto');
      const pkg = loadPackageDefinition(protoLoader.loadSync(file, { keepCase: true, oneofs: true, defaults: false })) as unknown as {
        grpc: { reflection: Record<string, { ServerReflection: { service: ServiceDefinition } }> };
      };
      server.addService(pkg.grpc.reflection[version]!.ServerReflection.service, {
        ServerReflectionInfo: (call: ServerDuplexStream<ReflectionRequest, unknown>) => {
          call.on('data', (req: ReflectionRequest) => call.write(this.answer(req)));
          call.on('end', () => call.end());
          call.on('error', () => undefined);
        },
      });
    }
  }

  private answer(req: ReflectionRequest): Record<string, unknown> {
    const base = { valid_host: req.host ?? '', original_request: req };
    const notFound = (what: string) => ({ ...base, error_response: { error_code: 5, error_message: `${what} not found` } });
    switch (req.message_request) {
      case 'list_services':
        return { ...base, list_services_response: { service: this.services().map((name) => ({ name })) } };
      case 'file_by_filename': {
        const name = req.file_by_filename ?? '';
        return this.files.has(name) ? { ...base, file_descriptor_response: { file_descriptor_proto: this.withImports(name) } } : notFound(`file ${name}`);
      }
      case 'file_containing_symbol': {
        const symbol = (req.file_containing_symbol ?? '').replace(/^\./, '');
        const file = this.fileOfSymbol.get(symbol);
        return file ? { ...base, file_descriptor_response: { file_descriptor_proto: this.withImports(file) } } : notFound(`symbol ${symbol}`);
      }
      default:
        // The contract declares no extensions.
        return { ...base, error_response: { error_code: 12, error_message: `${req.message_request ?? 'request'} is not supported` } };
    }
  }

  /** The file and, transitively, every file it imports. */
  private withImports(name: string): Buffer[] {
    const out: Buffer[] = [];
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const fd = this.files.get(file);
      if (!fd) return;
      let bytes = this.encoded.get(file);
      if (!bytes) this.encoded.set(file, (bytes = Buffer.from(toBinary(FileDescriptorProtoSchema, fd))));
      out.push(bytes);
      fd.dependency.forEach(visit);
    };
    visit(name);
    return out;
  }
}
