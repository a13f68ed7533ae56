import { describe, expect, test } from "bun:test";
import { breakdown, jsName, renameJitDump, top, total } from "./perf-jit.ts";

describe("renameJitDump", () => {
  test("rewrites JavaScriptCore's jit-<tid>-<pid>.dump to the jit-<pid>.dump perf reads, in place and same length", () => {
    const enc = new TextEncoder();
    const path = "/tmp/q/jit/jit-7537-7535.dump";
    const bytes = new Uint8Array([1, 2, 3, ...enc.encode(path), 0, 9, 9, ...enc.encode(path), 0, 7]);
    const r = renameJitDump(bytes);
    expect(r).not.toBeNull();
    expect(r!.from).toBe("jit-7537-7535.dump");
    expect(r!.to).toBe("jit-7535.dump");
    expect(r!.data.length).toBe(bytes.length);
    const text = new TextDecoder("latin1").decode(r!.data);
    // Both records renamed; padded with slashes, which a path reads as one.
    expect(text.split("/tmp/q/jit//////jit-7535.dump\0").length).toBe(3);
    expect(text).not.toContain("7537");
    // The input is left as it was.
    expect(new TextDecoder("latin1").decode(bytes)).toContain(path);
  });

  test("null when no JavaScriptCore dump is named", () => {
    expect(renameJitDump(new TextEncoder().encode("/tmp/perf-1.map\0/usr/lib/libc.so.6\0"))).toBeNull();
  });
});

describe("breakdown", () => {
  // `perf script -F tid,ip,sym,dso` with call graphs: a header line, then frames leaf first.
  const sample = (tid: number, frames: string[]) => [` ${tid} `, ...frames.map((f) => `\t    7f0000001000 ${f}`)].join("\n");
  const script = [
    sample(100, ["JSC-FTL: readRaw#D1bcUp (/tmp/q/jit/jitted-100-12.so)", "JSC-FTL: lookupRaw#CZ8FcG (/tmp/q/jit/jitted-100-9.so)"]),
    sample(100, ["JSC-FTL: readRaw#D1bcUp (/tmp/q/jit/jitted-100-12.so)"]),
    sample(100, ["pvm_irq_enable ([kernel.kallsyms])", "__send (/usr/lib/x86_64-linux-gnu/libc.so.6)"]),
    // Native code reached through a thunk and an inline cache: named by the first real function.
    sample(100, ["[unknown] (/work/node_modules/bun/bin/bun.exe)", "JSC-Thunk: CallTrampoline (/tmp/q/jit/jitted-100-3.so)", "JSC-FTL: answer#CX2jfI (/tmp/q/jit/jitted-100-40.so)"]),
    sample(100, ["[unknown] (/work/node_modules/bun/bin/bun.exe)", "JSC-InlineCache: GetById (/tmp/q/jit/jitted-100-5.so)"]),
    sample(100, ["[unknown] (/work/node_modules/bun/bin/bun.exe)", "[unknown] (/work/node_modules/bun/bin/bun.exe)"]),
    sample(100, ["JSC-FTL: #CP7mHb (/tmp/q/jit/jitted-100-7.so)"]),
    // Another thread (the JIT's): kept out unless asked for.
    sample(101, ["[unknown] (/work/node_modules/bun/bin/bun.exe)"]),
    "",
  ].join("\n\n");

  test("splits the serving thread's samples by kind, naming JavaScript functions without tier or hash", () => {
    const b = breakdown(script, (tid) => tid === 100);
    expect(b.samples).toBe(7);
    expect(b.kernel).toBe(1);
    expect(b.nativeAlone).toBe(1);
    expect(Object.fromEntries(b.js)).toEqual({ readRaw: 2, "(anonymous)": 1 });
    expect(Object.fromEntries(b.nativeUnderJs)).toEqual({ answer: 1, "(thunk)": 1 });
    expect(total(b.js) + total(b.nativeUnderJs) + b.kernel + b.nativeAlone).toBe(b.samples);
    expect(top(b.js, 1)).toEqual([["readRaw", 2]]);
  });

  test("the other threads apart", () => {
    const b = breakdown(script, (tid) => tid !== 100);
    expect(b.samples).toBe(1);
    expect(b.nativeAlone).toBe(1);
  });

  test("jsName keeps what names the function", () => {
    expect(jsName("JSC-FTL: readRaw#D1bcUp")).toBe("readRaw");
    expect(jsName("JSC-DFG: #CP7mHb")).toBe("(anonymous)");
    expect(jsName("JSC-Baseline: get admittedCount#ED70RL")).toBe("get admittedCount");
  });
});
