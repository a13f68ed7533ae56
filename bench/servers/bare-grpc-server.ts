/**
 * The gRPC baseline: a bare grpc-js server on Bun answering Quiver's two
 * lookup methods with precomputed response bytes (captured from Quiver's own
 * answers, so the same size and shape), no decoding, no work. Anything the
 * gRPC edge is compared with is this, on the same core, in the same run.
 * A tiny HTTP listener answers GET / with 200 for the bench's readiness check.
 * Usage: bun bench/servers/bare-grpc-server.ts --port 0 --ready-port 0 --lookup-body F --feast-body F
 */
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    port: { type: "string", default: "0" },
    "ready-port": { type: "string", default: "0" },
    "lookup-body": { type: "string" },
    "feast-body": { type: "string" },
  },
});

async function bytesOf(path: string | undefined): Promise<Buffer> {
  if (path === undefined) return Buffer.alloc(0);
  return Buffer.from(await Bun.file(path).arrayBuffer());
}

const identity = (b: Buffer): Buffer => b;
const server = new grpc.Server();
const answers: [string, Buffer][] = [
  ["/quiver.v1.FeatureService/Lookup", await bytesOf(values["lookup-body"])],
  ["/feast.serving.ServingService/GetOnlineFeatures", await bytesOf(values["feast-body"])],
];
for (const [path, answer] of answers) {
  server.register(path, (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, answer), identity, identity, "unary");
}
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync(`127.0.0.1:${values.port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
);
const ready = Bun.serve({ hostname: "127.0.0.1", port: Number(values["ready-port"]), fetch: () => new Response("ok") });
console.log(`bare gRPC server on 127.0.0.1:${port} (ready on ${ready.port})`);
const stop = () => {
  server.forceShutdown();
  void ready.stop(true);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
