import type { Quiver } from "../../src/app.ts";

/** One lookup of the first `count` demo drivers' conv_rate (ids 1001…), its statuses counted: `{PRESENT: n, NOT_FOUND: m}`. */
export async function driverStatuses(q: Quiver, count: number): Promise<Record<string, number>> {
  const entities = Array.from({ length: count }, (_, i) => ({ driver_id: 1001 + i }));
  const res = await q.http.app.request("/v1/lookup", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities }),
  });
  const counts: Record<string, number> = {};
  for (const row of ((await res.json()) as { rows: { statuses: string[] }[] }).rows) counts[row.statuses[0]!] = (counts[row.statuses[0]!] ?? 0) + 1;
  return counts;
}
