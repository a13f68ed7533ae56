import type { Progress } from "../engine/run-load.ts";
import { fmtInt, fmtMs } from "./table.ts";

/**
 * A live progress line on stderr: rewritten in place on a TTY, one line per
 * second otherwise (only when asked, so CI logs stay clean).
 */
export function progressPrinter(prefix: string, stream: NodeJS.WriteStream = process.stderr): (p: Progress) => void {
  const tty = stream.isTTY === true;
  return (p) => {
    const line = `${prefix}${(p.elapsedMs / 1000).toFixed(0)}s  ${fmtInt(p.intervalRate)} req/s  done ${fmtInt(p.completed)}  errors ${fmtInt(p.errors)}  in flight ${p.inFlight}  backlog ${fmtInt(p.backlog)}  p99 ${fmtMs(p.p99Ms)} ms`;
    stream.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  };
}

/** Ends an in-place progress line so the next output starts on a fresh line. */
export function endProgress(stream: NodeJS.WriteStream = process.stderr): void {
  if (stream.isTTY === true) stream.write("\r\x1b[2K");
}
