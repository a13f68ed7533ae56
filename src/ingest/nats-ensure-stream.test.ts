import { expect, test } from "bun:test";
import { ensureStream, type StreamAdmin } from "./nats-stream-source.ts";

/**
 * A stream's subject list as JetStream keeps it: `info` answers what it held
 * when asked, `update` writes the whole list. Each answers a turn later, so
 * callers that start together both read before either writes (as two
 * consumers started together did against a real server).
 */
class FakeStreams {
  subjects: string[] | undefined;
  /** Called after each update: another pod's write landing right after ours. */
  afterUpdate: ((subjects: string[]) => void) | undefined;
  constructor(subjects?: string[]) {
    this.subjects = subjects;
  }
  async info(_name: string) {
    const held = this.subjects === undefined ? undefined : [...this.subjects];
    await Promise.resolve();
    if (held === undefined) throw new Error("stream not found");
    return { config: { subjects: held } };
  }
  async add(config: { subjects?: string[] }) {
    await Promise.resolve();
    this.subjects = [...(config.subjects ?? [])];
    return { config };
  }
  async update(_name: string, config: { subjects?: string[] }) {
    await Promise.resolve();
    this.subjects = [...(config.subjects ?? [])];
    this.afterUpdate?.(this.subjects);
    return { config };
  }
}

const adminOf = (streams: FakeStreams) => ({ streams }) as unknown as StreamAdmin;

test("sources of one process adding their subjects to a shared stream at once: every subject is kept", async () => {
  const streams = new FakeStreams(["shared.base"]);
  await Promise.all(["a", "b", "c"].map((n) => ensureStream(adminOf(streams), "SHARED_AT_ONCE", [`shared.${n}`])));
  expect(streams.subjects?.sort()).toEqual(["shared.a", "shared.b", "shared.base", "shared.c"]);
});

test("a stream made by the first of several sources starting at once takes every source's subject", async () => {
  const streams = new FakeStreams();
  await Promise.all(["a", "b"].map((n) => ensureStream(adminOf(streams), "SHARED_NEW", [`shared.${n}`])));
  expect(streams.subjects?.sort()).toEqual(["shared.a", "shared.b"]);
});

test("another pod's update written from a stale read drops our subject: it is read again and added again", async () => {
  const streams = new FakeStreams(["shared.base"]);
  let overwritten = false;
  streams.afterUpdate = (subjects) => {
    if (overwritten) return;
    overwritten = true;
    // The other pod read ["shared.base"] before our write and writes its own subject onto that.
    expect(subjects).toContain("shared.mine");
    streams.subjects = ["shared.base", "shared.other"];
  };
  await ensureStream(adminOf(streams), "SHARED_PODS", ["shared.mine"]);
  expect(streams.subjects?.sort()).toEqual(["shared.base", "shared.mine", "shared.other"]);
});

test("a failed update is the caller's error and does not block the next caller on the same stream", async () => {
  const streams = new FakeStreams(["shared.base"]);
  const update = streams.update.bind(streams);
  let fail = true;
  streams.update = async (name, config) => {
    if (fail) {
      fail = false;
      throw new Error("timeout");
    }
    return update(name, config);
  };
  const first = ensureStream(adminOf(streams), "SHARED_FAIL", ["shared.a"]);
  const second = ensureStream(adminOf(streams), "SHARED_FAIL", ["shared.b"]);
  await expect(first).rejects.toThrow("timeout");
  await second;
  expect(streams.subjects?.sort()).toEqual(["shared.b", "shared.base"]);
});

test("limits the server refuses leave the stream its own: the subjects are still added and the call does not fail", async () => {
  const streams = new FakeStreams(["dead.base"]);
  const update = streams.update.bind(streams);
  const tried: Array<Record<string, unknown>> = [];
  streams.update = async (name, config) => {
    tried.push({ ...config });
    if ("max_msgs" in config) throw new Error("stream configuration update can not change discard policy");
    return update(name, config);
  };
  const logged: string[] = [];
  const error = console.error;
  console.error = (line: string) => logged.push(line);
  try {
    await ensureStream(adminOf(streams), "DEAD_REFUSING", ["dead.mine"], { maxMessages: 10, maxAgeMs: 600_000 });
  } finally {
    console.error = error;
  }
  expect(streams.subjects?.sort()).toEqual(["dead.base", "dead.mine"]);
  expect(tried.map((c) => "max_msgs" in c)).toEqual([true, false]);
  expect(logged).toEqual([expect.stringContaining('stream "DEAD_REFUSING": its limits (max_msgs 10, max_age 600000 ms) were refused')]);
});
