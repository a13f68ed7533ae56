import { encode } from "@msgpack/msgpack";
import type { Registry, ValueType } from "../registry/index.ts";
import type { CompiledSource } from "./compile-sources.ts";
import type { FieldRuleDef, MappingDef } from "./sources-definitions.ts";

/** Shares of deliberately bad events, each from 0 to 1. */
export interface EventMix {
  /** Exact re-sends of a recent event (same payload). */
  readonly duplicates: number;
  /** Events whose time is up to a minute in the past. */
  readonly late: number;
  /** Undecodable bytes or a wrongly typed field: dead letters. */
  readonly malformed: number;
}

export type EventKind = "fresh" | "duplicate" | "late" | "malformed";

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let cur = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]!;
    let next = cur[p];
    if (next === null || typeof next !== "object") {
      next = {};
      cur[p] = next;
    }
    cur = next as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

function formatTime(ms: number, format: MappingDef["eventTime"]["format"]): unknown {
  switch (format) {
    case "epoch_s":
      return Math.floor(ms / 1000);
    case "epoch_ms":
      return ms;
    case "epoch_us":
      return ms * 1000;
    case "rfc3339":
      return new Date(ms).toISOString();
  }
}

/**
 * Generates payloads in a source's own schema, from its mappings: join keys
 * over `entities` ids, feature values of the registry types (pre-divided by
 * any scale), the event time in the source's format, a fresh idempotency key
 * and the filter's value. For demos, the load test and the benchmark.
 */
export class EventGenerator {
  private seq = 0;
  private state: number;
  private readonly recent: Uint8Array[] = [];
  private readonly encodeObject: (v: unknown) => Uint8Array;
  private readonly text = new TextEncoder();
  readonly counts: Record<EventKind, number> = { fresh: 0, duplicate: 0, late: 0, malformed: 0 };

  constructor(
    private readonly source: CompiledSource,
    private readonly registry: Registry,
    private readonly options: { readonly entities: number; readonly mix: EventMix; readonly seed?: number; readonly clock?: () => number },
  ) {
    this.state = options.seed ?? 1;
    this.encodeObject = source.format === "msgpack" ? (v) => encode(v) : (v) => this.text.encode(JSON.stringify(v));
  }

  private random(): number {
    this.state = (this.state * 1103515245 + 12345) & 0x7fffffff;
    return this.state / 0x80000000;
  }

  /** The next payload and what kind of event it is. */
  next(): { readonly payload: Uint8Array; readonly kind: EventKind } {
    const { duplicates, late, malformed } = this.options.mix;
    const r = this.random();
    let kind: EventKind = "fresh";
    if (r < malformed) kind = "malformed";
    else if (r < malformed + duplicates && this.recent.length > 0) kind = "duplicate";
    else if (r < malformed + duplicates + late) kind = "late";
    this.counts[kind]++;
    if (kind === "duplicate") return { payload: this.recent[Math.floor(this.random() * this.recent.length)]!, kind };
    if (kind === "malformed" && this.random() < 0.5) return { payload: this.text.encode(`{"truncated": ${this.seq++}`), kind };
    const now = (this.options.clock ?? Date.now)();
    const time = kind === "late" ? now - 1000 - Math.floor(this.random() * 59_000) : now;
    const payload = this.encodeObject(this.object(time, kind === "malformed"));
    if (kind === "fresh") {
      if (this.recent.length < 1024) this.recent.push(payload);
      else this.recent[this.seq % 1024] = payload;
    }
    return { payload, kind };
  }

  /** One event object for every mapping of the source (fields of several mappings share the object). */
  object(timeMs: number, wrongType = false): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const id = Math.floor(this.random() * this.options.entities);
    this.seq++;
    for (const m of this.source.definition.mappings) {
      const view = this.registry.views.get(m.featureView)!;
      for (const key of view.joinKeys) {
        const path = m.keys[key.name];
        if (path !== undefined) setPath(out, path, key.type === "int64" ? 1001 + id : `${key.name[0]}${id}`);
      }
      let first = true;
      for (const [name, rule] of Object.entries(m.features) as [string, FieldRuleDef][]) {
        if (typeof rule !== "string" && "value" in rule) continue;
        const feature = view.featureIndex.get(name)!;
        const path = typeof rule === "string" ? rule : rule.path;
        const scale = typeof rule === "string" ? 1 : (rule.scale ?? 1);
        setPath(out, path, wrongType && first ? { not: "a value" } : this.value(feature.type, scale));
        first = false;
      }
      setPath(out, m.eventTime.path, formatTime(timeMs, m.eventTime.format));
      if (m.idempotencyKey) setPath(out, m.idempotencyKey, `${this.source.name}-${process.pid}-${this.seq}`);
      if (m.filter) setPath(out, m.filter.path, m.filter.equals);
    }
    return out;
  }

  private value(t: ValueType, scale: number): unknown {
    const r = this.random();
    switch (t.kind) {
      case "int64":
        return Math.round((r * 100) / scale);
      case "float64":
        return Math.round((r * 1000) / scale) / 100;
      case "bool":
        return r < 0.5;
      case "string":
        return `v${Math.floor(r * 20)}`;
      case "int64[]":
        return [Math.floor(r * 10), Math.floor(r * 100)];
      case "float64[]":
        return [r, r / 2];
      case "string[]":
        return [`s${Math.floor(r * 5)}`];
      case "embedding":
        return Array.from({ length: t.dim }, (_, i) => ((r + i) % 1) - 0.5);
    }
  }
}
