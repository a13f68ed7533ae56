import { loadSqlite } from "../runtime/sqlite.ts";
import { answerCalls } from "../runtime/worker-answers.ts";
import { RowsFile } from "./durable-rows.ts";
import type { DurableCall, RowsPage } from "./durable-thread.ts";

/**
 * The durable store's SQLite thread (durable-thread.ts): holds every durable
 * file of the process, handles one call at a time in the order they came.
 * answerCalls installs the message handler before SQLite is loaded (nothing
 * that arrives meanwhile is lost) and answers every failure as an error.
 */

/** A page of rows sent at open: as many rows, or as many bytes, whichever comes first. */
const PAGE_ROWS = 4096;
const PAGE_BYTES = 1 << 20;

const files = new Map<number, RowsFile>();
let crashNext = false;
/** Test hook (DurableThread.holdAfterCommitForTest): the next write or delete, once committed, waits on this gate before it answers. */
let holdAfterCommit: Int32Array | undefined;

answerCalls(loadSqlite(), (sqlite, body, progress) => {
  const call = body as DurableCall;
  if (crashNext) {
    // Test hook (DurableThread.crashForTest): an uncaught error, this call never answered.
    queueMicrotask(() => {
      throw new Error("the durable store's SQLite thread crashed (a test asked it to)");
    });
    return new Promise(() => {});
  }
  switch (call.op) {
    case "open": {
      const file = RowsFile.open(call.file, sqlite, call.options);
      try {
        if (call.load) sendRows((visit) => file.load(visit), (page) => progress(page, [page.bytes.buffer as ArrayBuffer, page.ends.buffer as ArrayBuffer]));
      } catch (e) {
        file.close();
        throw e;
      }
      files.set(call.handle, file);
      return undefined;
    }
    case "write": {
      const rows: Uint8Array[] = new Array(call.keys.length);
      for (let i = 0, start = 0; i < rows.length; i++) {
        rows[i] = call.bytes.subarray(start, call.ends[i]!);
        start = call.ends[i]!;
      }
      const taken = fileOf(call.handle).write(call.keys, call.ts, rows);
      heldAfterCommit();
      return taken;
    }
    case "read": {
      const file = fileOf(call.handle);
      sendRows((visit) => file.read(call.keys, visit), (page) => progress(page, [page.bytes.buffer as ArrayBuffer, page.ends.buffer as ArrayBuffer]));
      return undefined;
    }
    case "delete":
      fileOf(call.handle).delete(call.keys);
      heldAfterCommit();
      return undefined;
    case "close":
      fileOf(call.handle).close();
      files.delete(call.handle);
      return undefined;
    case "hold": {
      // Short waits, not one: a thread parked in a single Atomics.wait may not notice it is being terminated.
      const gate = new Int32Array(call.gate);
      while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0, 10);
      return undefined;
    }
    case "holdAfterCommit":
      holdAfterCommit = new Int32Array(call.gate);
      return undefined;
    case "crash":
      crashNext = true;
      return undefined;
  }
});

/** Test hook: a write or delete just committed says so (gate[1]), then waits (short waits, as "hold") until released or terminated. */
function heldAfterCommit(): void {
  const gate = holdAfterCommit;
  if (gate === undefined) return;
  holdAfterCommit = undefined;
  Atomics.store(gate, 1, 1);
  Atomics.notify(gate, 1);
  while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0, 10);
}

function fileOf(handle: number): RowsFile {
  const file = files.get(handle);
  if (file === undefined) throw Object.assign(new Error(`durable file #${handle} is not open`), { code: "not_open" });
  return file;
}

/** The rows `rows` visits, in pages, each page's bytes in one buffer. */
function sendRows(rows: (visit: (key: string, row: Uint8Array) => void) => void, send: (page: RowsPage) => void): void {
  let keys: string[] = [];
  let found: Uint8Array[] = [];
  let bytes = 0;
  const flush = (): void => {
    const ends = new Uint32Array(found.length);
    const packed = new Uint8Array(bytes);
    for (let i = 0, at = 0; i < found.length; i++) {
      packed.set(found[i]!, at);
      ends[i] = at += found[i]!.length;
    }
    send({ keys, bytes: packed, ends });
    keys = [];
    found = [];
    bytes = 0;
  };
  rows((key, row) => {
    keys.push(key);
    found.push(row);
    bytes += row.length;
    if (keys.length >= PAGE_ROWS || bytes >= PAGE_BYTES) flush();
  });
  if (keys.length > 0) flush();
}
