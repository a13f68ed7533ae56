/**
 * Where a server's CPU goes, from `perf record -g` with JavaScriptCore's
 * JIT dump (BUN_JSC_useJITDump): the pure parts of bench/profile.ts.
 *
 * Two things perf does not do on its own here:
 * - JavaScriptCore names its dump `jit-<tid>-<pid>.dump`, while
 *   `perf inject --jit` only reads a mapped file named `jit-<pid>.dump`
 *   (perf's jit_detect). `renameJitDump` rewrites the path in perf.data's
 *   mmap record in place, same length (slashes pad it: `//jit-<pid>.dump`),
 *   so the injected data names the JIT's functions.
 * - `perf report` sorts by symbol; the question here is per request and by
 *   kind: JavaScript (by function), Bun's native code reached from
 *   JavaScript (by the nearest JavaScript frame: `new Response`, a header
 *   read), native code with no JavaScript above it (the HTTP server, the
 *   collector), the kernel. `breakdown` reads `perf script` text into that.
 */

/** perf.data with the dump's path rewritten, and the name the dump must be copied to beside it; null when no JSC dump is named in it. */
export function renameJitDump(perfData: Uint8Array): { readonly data: Uint8Array; readonly from: string; readonly to: string } | null {
  const text = new TextDecoder("latin1").decode(perfData);
  const m = /\/(jit-(\d+)-(\d+)\.dump)\0/.exec(text);
  if (m === null) return null;
  const from = m[1]!;
  // jit-<tid>-<pid>: the process's id is the second number (the thread that opened the file, first).
  const to = `jit-${m[3]}.dump`;
  const padded = "/".repeat(from.length - to.length) + to;
  const out = Buffer.from(perfData);
  const fromBytes = Buffer.from(from);
  const toBytes = Buffer.from(padded);
  for (let at = out.indexOf(fromBytes); at >= 0; at = out.indexOf(fromBytes, at + fromBytes.length)) out.set(toBytes, at);
  return { data: out, from, to };
}

/** One sample's stack, leaf first: symbol and the object it is in. */
interface Frame {
  readonly sym: string;
  readonly dso: string;
}

/** Samples by kind, over the samples of the threads kept. */
export interface Breakdown {
  /** Samples kept (the threads asked for). */
  readonly samples: number;
  /** Leaf in the kernel. */
  readonly kernel: number;
  /** Leaf in JIT-compiled JavaScript, by function (tier suffix and hash dropped). */
  readonly js: ReadonlyMap<string, number>;
  /** Leaf in native code with JavaScript further up the stack, by the nearest named JavaScript function. */
  readonly nativeUnderJs: ReadonlyMap<string, number>;
  /** Leaf in native code with no JavaScript frame in the stack (the HTTP server's own work, the collector, timers). */
  readonly nativeAlone: number;
}

const isKernel = (f: Frame) => f.dso === "[kernel.kallsyms]" || f.dso.startsWith("[kernel");
const isJs = (f: Frame) => f.sym.startsWith("JSC-") || /jitted-\d+-\d+\.so/.test(f.dso);

/** The function a JIT symbol names: `JSC-FTL: readRaw#D1bcUp` → `readRaw`; thunks and inline caches keep their kind. */
export function jsName(sym: string): string {
  const body = sym.replace(/^JSC-[A-Za-z]+: /, "");
  const name = body.replace(/#[A-Za-z0-9]+$/, "");
  return name === "" ? "(anonymous)" : name;
}

/** Is this JIT symbol a real function (not a thunk, trampoline or inline-cache stub)? */
function isNamedFunction(sym: string): boolean {
  return /^JSC-(FTL|DFG|Baseline|LLInt|Interpreter): /.test(sym);
}

/**
 * Reads `perf script -F tid,ip,sym,dso` output (samples separated by blank
 * lines; a header line with the thread id, then one line per frame, leaf
 * first) into a Breakdown of the samples whose thread `keep` accepts.
 */
export function breakdown(script: string, keep: (tid: number) => boolean): Breakdown {
  let samples = 0;
  let kernel = 0;
  let nativeAlone = 0;
  const js = new Map<string, number>();
  const nativeUnderJs = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const block of script.split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((l) => l.trim() !== "");
    if (lines.length < 2) continue;
    const tid = Number(/^\s*(\d+)/.exec(lines[0]!)?.[1] ?? Number.NaN);
    if (!keep(tid)) continue;
    const frames = lines.slice(1).map(parseFrame);
    const leaf = frames[0];
    if (leaf === undefined) continue;
    samples++;
    if (isKernel(leaf)) kernel++;
    else if (isJs(leaf)) bump(js, jsName(leaf.sym));
    else {
      const named = frames.find((f) => isJs(f) && isNamedFunction(f.sym));
      if (named !== undefined) bump(nativeUnderJs, jsName(named.sym));
      else if (frames.some(isJs)) bump(nativeUnderJs, "(thunk)");
      else nativeAlone++;
    }
  }
  return { samples, kernel, js, nativeUnderJs, nativeAlone };
}

/** `   7f12ab34 JSC-FTL: readRaw#D1bcUp (/tmp/jitted-1-2.so)` → sym, dso. */
function parseFrame(line: string): Frame {
  const m = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(line);
  if (m === null) return { sym: line.trim(), dso: "" };
  return { sym: m[1]!, dso: m[2]! };
}

/** Sum of a map's counts. */
export function total(m: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

/** The `n` largest entries, largest first. */
export function top(m: ReadonlyMap<string, number>, n: number): [string, number][] {
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
}
