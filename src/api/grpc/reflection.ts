import type { Server } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";

/** The indexes @grpc/reflection 1.0's implementations keep (private there): fully qualified name → file, service. */
interface ReflectionIndex {
  readonly symbols: Record<string, unknown>;
  readonly services: Record<string, unknown>;
}

/**
 * Server reflection (v1 and v1alpha) for `definition`, with package-less
 * names spelled as protobuf spells them. @grpc/reflection keys symbols of a
 * file without a package with a leading dot: it listed `.GrpcFeatureServer`
 * (Feast's Python push service), and `file_containing_symbol` found neither
 * `GrpcFeatureServer` nor `PushRequest`, so grpcurl, Postman or grpcui could
 * not resolve that service. Its indexes are given the plain names too (the
 * services listed by them alone). Throws at start-up if the library's
 * indexes change shape, rather than serving the old spelling unnoticed.
 */
export function addReflection(server: Server, definition: PackageDefinition): void {
  const service = new ReflectionService(definition);
  const versions = service as unknown as { readonly v1?: Partial<ReflectionIndex>; readonly v1Alpha?: Partial<ReflectionIndex> };
  for (const index of [versions.v1, versions.v1Alpha]) {
    if (typeof index?.symbols !== "object" || typeof index.services !== "object") throw new Error("@grpc/reflection: its symbol index changed shape (src/api/grpc/reflection.ts reads it)");
    plainNames(index as ReflectionIndex);
  }
  service.addToServer(server);
}

function plainNames(index: ReflectionIndex): void {
  for (const [name, file] of Object.entries(index.symbols)) {
    if (name.startsWith(".")) index.symbols[name.slice(1)] ??= file;
  }
  for (const [name, service] of Object.entries(index.services)) {
    if (!name.startsWith(".")) continue;
    delete index.services[name];
    index.services[name.slice(1)] = service;
  }
}
