import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../../src/app.ts";
import { loadConfig } from "../../src/config/config.ts";
import { type Clients, connect } from "./grpc-client.ts";

/** The fake "now" every gRPC test server runs at (demo rows are stamped NOW - 1 s). */
export const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);

export interface GrpcFixture {
  readonly quiver: Quiver;
  readonly clients: Clients;
  readonly address: string;
  readonly clock: { now: number };
  close(): Promise<void>;
}

/** A real Quiver (example registry, demo data) with its gRPC edge on an ephemeral port and a grpc-js client. */
export async function startGrpcFixture(flags: string[] = []): Promise<GrpcFixture> {
  const dir = mkdtempSync(join(tmpdir(), "quiver-grpc-"));
  const registryPath = join(dir, "registry.yaml");
  copyFileSync("src/registry/example-registry.yaml", registryPath);
  const clock = { now: NOW };
  const quiver = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "200", "--max-rows", "500", "--max-body-bytes", "65536", ...flags], {}), {
    clock: () => clock.now,
  });
  const grpc = quiver.grpc;
  if (grpc === undefined) throw new Error("the gRPC edge was not built (--grpc-port -1?)");
  const port = await grpc.listen("127.0.0.1", 0);
  const address = `127.0.0.1:${port}`;
  const clients = connect(address);
  return {
    quiver,
    clients,
    address,
    clock,
    close: async () => {
      clients.close();
      await grpc.drain(2000);
      await quiver.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
