import { type ClusterState, isOurRedis } from "./cluster-state.ts";
import { info, sentinelMaster } from "./redis-probe.ts";

/** One redis-server's replication state as `shards:status` shows it. */
export interface NodeStatus {
  readonly shard: string;
  readonly address: string;
  readonly pid: number;
  readonly running: boolean;
  readonly role: "primary" | "replica" | "down";
  readonly offset: number | null;
  /** Bytes behind the shard's current primary; 0 for the primary. */
  readonly lagBytes: number | null;
  /** Replica link to its primary (`up`/`down`); null for a primary. */
  readonly link: string | null;
}

export interface SentinelStatus {
  readonly address: string;
  readonly pid: number;
  readonly running: boolean;
  /** master name -> current primary address, as this Sentinel sees it. */
  readonly masters: Record<string, string>;
}

export interface ClusterStatus {
  readonly nodes: NodeStatus[];
  readonly sentinels: SentinelStatus[];
}

/** Asks every recorded process for its role and offsets (INFO replication); unreachable ones show as down. */
export async function clusterStatus(state: ClusterState): Promise<ClusterStatus> {
  const nodes: NodeStatus[] = [];
  for (const shard of state.shards) {
    const seen = await Promise.all(
      shard.nodes.map(async (n) => {
        const address = `${n.host}:${n.port}`;
        try {
          return { n, address, repl: await info(address, "replication", 500) };
        } catch {
          return { n, address, repl: undefined };
        }
      }),
    );
    const primaryOffset = seen.map((s) => s.repl).find((r) => r?.["role"] === "master")?.["master_repl_offset"];
    for (const { n, address, repl } of seen) {
      const role = repl === undefined ? "down" : repl["role"] === "master" ? "primary" : "replica";
      const offset = repl === undefined ? null : Number(role === "primary" ? repl["master_repl_offset"] : repl["slave_repl_offset"]);
      const lagBytes = offset === null || primaryOffset === undefined ? null : Math.max(0, Number(primaryOffset) - offset);
      nodes.push({ shard: shard.name, address, pid: n.pid, running: isOurRedis(n), role, offset, lagBytes, link: role === "replica" ? (repl?.["master_link_status"] ?? null) : null });
    }
  }
  const sentinels = await Promise.all(
    state.sentinels.map(async (s): Promise<SentinelStatus> => {
      const address = `${s.host}:${s.port}`;
      const masters: Record<string, string> = {};
      for (const shard of state.shards) {
        try {
          const m = await sentinelMaster(address, shard.masterName);
          masters[shard.masterName] = `${m["ip"]}:${m["port"]}${String(m["flags"]).includes("down") ? " (down)" : ""}`;
        } catch {
          masters[shard.masterName] = "?";
        }
      }
      return { address, pid: s.pid, running: isOurRedis(s), masters };
    }),
  );
  return { nodes, sentinels };
}

/** Plain-text table for the terminal. */
export function formatStatus(status: ClusterStatus): string {
  const rows = [["SHARD", "ADDRESS", "PID", "ROLE", "OFFSET", "LAG(B)", "LINK"]];
  for (const n of status.nodes) {
    rows.push([n.shard, n.address, String(n.pid), n.running ? n.role : "stopped", String(n.offset ?? "-"), String(n.lagBytes ?? "-"), n.link ?? "-"]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd());
  lines.push("", "SENTINELS");
  for (const s of status.sentinels) {
    const masters = Object.entries(s.masters).map(([name, addr]) => `${name}=${addr}`).join(" ");
    lines.push(`${s.address}  pid ${s.pid}  ${s.running ? "running" : "stopped"}  ${masters}`);
  }
  return lines.join("\n");
}
