import { describe, expect, test } from "bun:test";
import { ringKeyOf, ringKeyStart } from "../kv/keys.ts";
import fc from "fast-check";
import { hash64, hash64Bytes } from "./hash64.ts";
import { HashRing, type RingMember } from "./ring.ts";

const nodes = (n: number, from = 0): RingMember[] => Array.from({ length: n }, (_, i) => ({ id: `node-${i + from}`, weight: 1 }));

/** Deterministic key stream (LCG) so the property runs are reproducible. */
function keys(count: number, seed: number): string[] {
  const out = new Array<string>(count);
  let x = seed | 0;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    out[i] = `driver_id=i${x >>> 0}${i}`;
  }
  return out;
}

const MILLION = keys(1_000_000, 42);

function ownersOf(ring: HashRing, ks: readonly string[]): string[] {
  return ks.map((k) => ring.owner(k)!.id);
}

describe("HashRing", () => {
  test("10 nodes x 160 vnodes balance 1M keys within max/mean 1.15", () => {
    const ring = new HashRing(nodes(10));
    const counts = new Map<string, number>();
    for (const k of MILLION) {
      const id = ring.owner(k)!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const mean = MILLION.length / 10;
    expect(counts.size).toBe(10);
    expect(Math.max(...counts.values()) / mean).toBeLessThanOrEqual(1.15);
  });

  test("adding an 11th node moves 0.8/11..1.2/11 of keys, all of them to the new node", () => {
    const before = new HashRing(nodes(10));
    const after = before.withMember({ id: "node-10", weight: 1 });
    const a = ownersOf(before, MILLION);
    const b = ownersOf(after, MILLION);
    let moved = 0;
    let movedBetweenOld = 0;
    for (let i = 0; i < MILLION.length; i++) {
      if (a[i] !== b[i]) {
        moved++;
        if (b[i] !== "node-10") movedBetweenOld++;
      }
    }
    const fraction = moved / MILLION.length;
    expect(fraction).toBeGreaterThanOrEqual(0.8 / 11);
    expect(fraction).toBeLessThanOrEqual(1.2 / 11);
    expect(movedBetweenOld).toBe(0);
  });

  test("removing a node moves only the keys it owned", () => {
    const before = new HashRing(nodes(10));
    const after = before.withoutMember("node-3");
    const sample = MILLION.slice(0, 200_000);
    const a = ownersOf(before, sample);
    const b = ownersOf(after, sample);
    for (let i = 0; i < sample.length; i++) {
      if (a[i] !== "node-3") expect(b[i]).toBe(a[i]);
      else expect(b[i]).not.toBe("node-3");
    }
  });

  test("membership changes move only the changed node's keys, for any node set (property)", () => {
    const sample = MILLION.slice(0, 2_000);
    fc.assert(
      fc.property(fc.uniqueArray(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { minLength: 2, maxLength: 12 }), fc.nat(), (ids, pick) => {
        const ring = new HashRing(
          ids.map((id) => ({ id, weight: 1 })),
          { vnodesPerNode: 40 },
        );
        const gone = ids[pick % ids.length]!;
        const smaller = ring.withoutMember(gone);
        for (const k of sample) {
          const o = ring.owner(k)!.id;
          if (o !== gone) expect(smaller.owner(k)!.id).toBe(o);
        }
      }),
      { numRuns: 50, seed: 7 },
    );
  });

  test("same configuration gives the same owners in any order of construction and any process", async () => {
    const a = new HashRing(nodes(5));
    const b = new HashRing([...nodes(5)].reverse());
    const sample = MILLION.slice(0, 10_000);
    expect(ownersOf(b, sample)).toEqual(ownersOf(a, sample));
    // A second process must agree: hash positions are pure functions of the input.
    const proc = Bun.spawnSync([
      process.execPath,
      "-e",
      `import { HashRing } from "${import.meta.dir}/ring.ts"; const r = new HashRing(${JSON.stringify(nodes(5))}); console.log(${JSON.stringify(sample.slice(0, 500))}.map((k) => r.owner(k).id).join(","));`,
    ]);
    expect(proc.stdout.toString().trim()).toBe(ownersOf(a, sample.slice(0, 500)).join(","));
  });

  test("owners found through the bucket index are those of a binary search over every vnode position", () => {
    const sample = MILLION.slice(0, 20_000);
    for (const count of [1, 3, 10, 70]) {
      for (const vnodes of [1, 7, 160]) {
        const members = nodes(count);
        const ring = new HashRing(members, { vnodesPerNode: vnodes });
        // The ring's positions, rebuilt as its constructor defines them, and the first at or after each key's hash.
        const points = members
          .flatMap((m, owner) => Array.from({ length: vnodes }, (_, v) => ({ pos: hash64(`${m.id}#${v}`), owner })))
          .sort((a, b) => a.pos - b.pos || (members[a.owner]!.id < members[b.owner]!.id ? -1 : 1));
        const positions = points.map((p) => p.pos);
        const firstAtOrAfter = (h: number) => {
          let lo = 0;
          let hi = positions.length;
          while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (positions[mid]! < h) lo = mid + 1;
            else hi = mid;
          }
          return lo === positions.length ? 0 : lo;
        };
        const expected = sample.map((k) => points[firstAtOrAfter(hash64(k))]!.owner);
        // Random keys, some past the last position (wrapping to the first).
        const got = sample.map((k) => ring.ownerIndexOf(k));
        expect(got).toEqual(expected);
      }
    }
  });

  test("hash64 is stable across releases (pinned values)", () => {
    // Changing these moves every key in every deployed cluster: don't, without a migration.
    expect([hash64("driver_id=i1001"), hash64("a"), hash64("b"), hash64("")]).toEqual([
      3774162298000557, 4192452177417807, 8770086492030062, 8375311628981141,
    ]);
    expect(hash64("driver_id=i1001")).toBeLessThan(2 ** 53);
  });

  test("a key held as ASCII bytes hashes and routes exactly as its string (property)", () => {
    const ring = new HashRing(nodes(7));
    const enc = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: 80 }), fc.nat(8), (key, pad) => {
        const bytes = enc.encode(`${"#".repeat(pad)}${key}`);
        const slash = key.indexOf("/") + 1;
        expect(hash64Bytes(bytes, pad, bytes.length)).toBe(hash64(key));
        expect(ring.ownerIndexOfBytes(bytes, pad + slash, bytes.length)).toBe(ring.ownerIndexOf(key, slash));
      }),
      { numRuns: 2000 },
    );
  });

  test("owners(key, n) returns n distinct physical nodes, owner first", () => {
    const ring = new HashRing(nodes(4));
    for (const k of MILLION.slice(0, 1000)) {
      const os = ring.owners(k, 3);
      expect(os.length).toBe(3);
      expect(new Set(os.map((o) => o.id)).size).toBe(3);
      expect(os[0]!.id).toBe(ring.owner(k)!.id);
    }
    expect(ring.owners("x", 10).length).toBe(4);
  });

  test("weights skew shares proportionally and shares sum to 1", () => {
    const ring = new HashRing([
      { id: "big", weight: 2 },
      { id: "small-a", weight: 1 },
      { id: "small-b", weight: 1 },
    ]);
    const shares = ring.shares();
    const total = [...shares.values()].reduce((s, v) => s + v, 0);
    expect(total).toBeCloseTo(1, 9);
    expect(shares.get("big")!).toBeGreaterThan(0.4);
    expect(shares.get("big")!).toBeLessThan(0.6);
  });

  test("rejects bad configuration with a message naming it", () => {
    expect(() => new HashRing([{ id: "a", weight: 1 }, { id: "a", weight: 1 }])).toThrow(/duplicate node id "a"/);
    expect(() => new HashRing([{ id: "a", weight: 0 }])).toThrow(/weight must be > 0/);
    expect(() => new HashRing(nodes(1), { vnodesPerNode: 0 })).toThrow(/vnodesPerNode/);
    expect(new HashRing([]).owner("k")).toBeUndefined();
  });
});

describe("hash64 from an offset", () => {
  test("hashes the suffix exactly as the suffix string, so routing is unchanged", () => {
    for (const key of ["driver_hourly_stats@1/driver_id=i1001", "v@2/a=s3:x/y;b=i-7", "noslash", "x@1/", "é@1/naïve=s5:héllo"]) {
      const from = ringKeyStart(key);
      expect(hash64(key, from)).toBe(hash64(ringKeyOf(key)));
    }
  });
});
