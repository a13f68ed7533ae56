import { readdirSync, readFileSync } from "node:fs";

/** One thread of a Linux process, as /proc shows it. */
export interface ThreadInfo {
  readonly tid: number;
  readonly name: string;
  readonly nice: number;
  /** The process's first thread (tid = pid): the one that runs JavaScript. */
  readonly main: boolean;
}

/** The threads of process `pid` with their names and nice values (Linux only: /proc/<pid>/task). */
export function threadsOf(pid: number): ThreadInfo[] {
  return readdirSync(`/proc/${pid}/task`).map((entry) => {
    const tid = Number(entry);
    const stat = readFileSync(`/proc/${pid}/task/${entry}/stat`, "utf8");
    // Fields after the parenthesised name: state is field 3, nice field 19, so index 16 of the rest.
    const nice = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
    return { tid, name: readFileSync(`/proc/${pid}/task/${entry}/comm`, "utf8").trim(), nice, main: tid === pid };
  });
}
