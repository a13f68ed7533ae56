import { ratio } from "../lib/results.ts";
import type { Check } from "../lib/results.ts";
import { getScript } from "../lib/wrk-lua.ts";
import { generator, startBareServer, wrk } from "./measure.ts";
import type { GenMeasure, WrkMeasure } from "./measure.ts";
import type { Suite } from "./suite.ts";

const CONNECTIONS = [16, 64];

/**
 * Is the generator fast enough not to be the bottleneck? Its closed-loop rate on
 * one core against a bare Bun.serve, next to wrk's on the same core and server;
 * then an open-loop run at half that rate to show it holds a schedule.
 */
export const loadgenSuite: Suite = {
  name: "loadgen",
  file: "loadgen.json",
  unavailable: async () => null,
  async run(ctx) {
    const server = await startBareServer(ctx, "bare Bun.serve", 13);
    const gens: GenMeasure[] = [];
    const wrks: WrkMeasure[] = [];
    let open: GenMeasure | null = null;
    try {
      for (const c of CONNECTIONS) {
        gens.push(await generator(ctx, server, `loadgen-closed-c${c}`, { scenario: "get", path: "/", mode: "closed", connections: c, duration: `${ctx.throughputSeconds}s`, warmup: "1s" }));
        const w = await wrk(ctx, server, `loadgen-wrk-c${c}`, getScript("/"), c);
        if (w !== null) wrks.push(w);
      }
      const best = Math.max(...gens.map((g) => g.run.rate.achieved));
      open = await generator(ctx, server, "loadgen-open-half", { scenario: "get", path: "/", mode: "open", rate: Math.round(best * 0.5), connections: 128, duration: `${ctx.seconds}s`, warmup: "1s" });
    } finally {
      await server.stop();
    }
    const bestGen = gens.reduce((a, b) => (b.run.rate.achieved > a.run.rate.achieved ? b : a));
    const bestWrk = wrks.length > 0 ? wrks.reduce((a, b) => (b.run.requestsPerSec > a.run.requestsPerSec ? b : a)) : null;
    const genRate = bestGen.run.rate.achieved;
    const wrkRate = bestWrk?.run.requestsPerSec ?? null;
    const checks: Check[] = [
      { name: "max rate on one core, closed loop, GET 13 B (baseline: wrk)", unit: "req/s", baseline: wrkRate, measured: genRate, ratio: ratio(genRate, wrkRate), target: ">= 0.8 × wrk", pass: wrkRate === null ? null : genRate >= 0.8 * wrkRate },
      {
        name: "open loop at half that rate: achieved rate",
        unit: "req/s",
        baseline: open.run.rate.target,
        measured: open.run.rate.achieved,
        ratio: ratio(open.run.rate.achieved, open.run.rate.target),
        target: ">= 0.98 × target",
        pass: open.run.rate.achieved >= 0.98 * (open.run.rate.target ?? 0),
      },
      { name: "open loop at half: generator send lag p99", unit: "ms", baseline: null, measured: open.run.sendLagMs.p99, ratio: null, target: "info", pass: null },
    ];
    const notes = [
      `Best of ${CONNECTIONS.join(" and ")} connections for each tool; wrk with 1 thread; both pinned to core ${ctx.driverCpu}, server to core ${ctx.serverCpu}.`,
      `Server core busy during the best runs: generator ${fmtBusy(bestGen.serverCpu)}, wrk ${fmtBusy(bestWrk?.serverCpu ?? null)} (near 100% means the server, not the driver, set the rate).`,
      `Generator CPU in its best closed-loop run: ${Math.round(bestGen.run.cpu.utilization * 100)}% of its core.`,
    ];
    if (ctx.wrk.note !== "") notes.push(ctx.wrk.note);
    return {
      suite: "loadgen",
      title: "Load generator: own max rate vs wrk (same server, same cores)",
      date: new Date().toISOString(),
      machine: ctx.machine(),
      checks,
      baseline: { wrk: wrks.map((w) => ({ connections: w.run.connections, requestsPerSec: w.run.requestsPerSec, serverCpu: w.serverCpu, errors: w.run.errors + w.run.non2xx })) },
      measured: {
        generatorClosedLoop: gens.map((g) => ({ connections: g.run.options["connections"], requestsPerSec: g.run.rate.achieved, generatorCpu: g.run.cpu.utilization, serverCpu: g.serverCpu, errors: g.run.requests.errors })),
        generatorOpenLoop: { target: open.run.rate.target, achieved: open.run.rate.achieved, latencyMs: open.run.latencyMs, sendLagMs: open.run.sendLagMs },
      },
      targets: { ratioToWrk: ">= 0.8" },
      notes,
    };
  },
};

function fmtBusy(x: number | null): string {
  return x === null ? "n/a" : `${Math.round(x * 100)}%`;
}
