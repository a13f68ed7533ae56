import { invalid, unknownName } from "../errors/index.ts";
import type { KvEntry } from "../kv/kv-node.ts";
import { type CompiledPushSource, type CompiledView, describeValue, type Registry } from "../registry/index.ts";
import { ColumnEntities, type EntityInput, MessageRow, parseEntities } from "./entity-input.ts";
import type { PushService } from "./push-service.ts";

/**
 * How one API spells a push: the field naming the target, the field holding
 * the data and its form (a list of row objects, or Feast's columnar frame).
 */
export interface PushDialect {
  /** Field naming the feature view (or push source). */
  readonly view: string;
  /** Field holding the rows. */
  readonly data: string;
  /** A list of row objects, Feast's columnar frame, or one row an edge built from a message (a `MessageRow`). */
  readonly form: "rows" | "frame" | "message";
  /** Accept a push source name, `<view>_push_source`, as Feast's push clients send. */
  readonly pushSources: boolean;
  /** Resolve the name as a declared push source (registry `pushSources:`) first, fanning out to its views: Feast's push. */
  readonly declaredSources: boolean;
  /** Feast's `to` field (online / offline / online_and_offline), when the API has one. */
  readonly to: string | undefined;
}

/** Quiver's own push (HTTP /v1/push and quiver.v1 over gRPC). */
export const QUIVER_PUSH: PushDialect = { view: "featureView", data: "rows", form: "rows", pushSources: false, declaredSources: false, to: undefined };

/** Feast's POST /push. */
export const FEAST_PUSH: PushDialect = { view: "push_source_name", data: "df", form: "frame", pushSources: true, declaredSources: true, to: "to" };

/** Feast's POST /write-to-online-store: it names a feature view, never a declared push source. */
export const FEAST_WRITE: PushDialect = { view: "feature_view_name", data: "df", form: "frame", pushSources: true, declaredSources: false, to: undefined };

/**
 * Request → validated rows for one view, or for every view of a declared push
 * source: checks the target, the data's shape, every column name and every
 * value against its feature's type, so nothing is written unless all of it is
 * good. Throws a QuiverError naming the field.
 */
export function planPush(registry: Registry, push: PushService, body: Readonly<Record<string, unknown>>, dialect: PushDialect, maxRows: number): KvEntry[] {
  if (dialect.to !== undefined) checkTarget(body[dialect.to], dialect.to);
  const source = dialect.declaredSources ? declaredSource(registry, body[dialect.view]) : undefined;
  const view = source === undefined ? resolveView(registry, body[dialect.view], dialect) : undefined;
  const data = body[dialect.data];
  const { input, columns } = dialect.form === "rows" ? rowsInput(data, dialect.data, maxRows) : dialect.form === "frame" ? frameInput(data, dialect.data, maxRows) : messageInput(data, dialect.data);
  return view !== undefined ? push.prepare(view, input, columns) : push.prepareSource(source!, input, columns, dialect.data);
}

/** A declared push source of that name: it wins over a view's name or `<view>_push_source` (the registry makes a view's own name list that view). */
export function declaredSource(registry: Registry, name: unknown): CompiledPushSource | undefined {
  return typeof name === "string" ? registry.pushSources.get(name) : undefined;
}

function checkTarget(to: unknown, path: string): void {
  const target = to ?? "online";
  if (target === "offline") throw invalid("invalid_request", path, 'Quiver is an online store; use "online" (or "online_and_offline", of which Quiver performs the online part)');
  if (target !== "online" && target !== "online_and_offline") throw invalid("invalid_request", path, `expected "online", "offline" or "online_and_offline", got ${describeValue(target)}`);
}

function resolveView(registry: Registry, name: unknown, dialect: PushDialect): CompiledView {
  if (!dialect.pushSources) {
    if (typeof name !== "string") throw invalid("invalid_request", dialect.view, `expected a feature view name, got ${describeValue(name)}`);
    const view = registry.views.get(name);
    if (!view) throw unknownName("unknown_feature_view", dialect.view, `unknown feature view "${name}"`);
    return view;
  }
  if (typeof name !== "string") throw invalid("invalid_request", dialect.view, `expected a name, got ${describeValue(name)}`);
  // A push source is addressed by its view's name (or `<view>_push_source`, Feast's usual naming).
  const view = registry.views.get(name) ?? registry.views.get(name.replace(/_push_source$/, ""));
  if (!view && registry.pushSources.has(name)) {
    throw unknownName("unknown_feature_view", dialect.view, `"${name}" is a push source, not a feature view: push to it with /push (push_source_name); this names one feature view`);
  }
  if (!view) throw unknownName("unknown_feature_view", dialect.view, `unknown feature view or push source "${name}"`);
  return view;
}

interface PushInput {
  readonly input: EntityInput;
  /** Every column present with where it sits, so an unknown name is caught even when one row has it. */
  readonly columns: Iterable<{ readonly name: string; readonly path: string }>;
}

function rowsInput(rows: unknown, path: string, maxRows: number): PushInput {
  if (!Array.isArray(rows)) throw invalid("invalid_request", path, `expected a list of rows, got ${describeValue(rows)}`);
  if (rows.length === 0) throw invalid("invalid_request", path, "must hold at least one row");
  const input = parseEntities(rows, path, maxRows);
  return { input, columns: columnsOfRows(rows as Record<string, unknown>[], path) };
}

function frameInput(df: unknown, path: string, maxRows: number): PushInput {
  if (df === null || typeof df !== "object" || Array.isArray(df)) throw invalid("invalid_request", path, `expected a columnar map of column to values, got ${describeValue(df)}`);
  const input = parseEntities(df, path, maxRows);
  if (!(input instanceof ColumnEntities) || input.rowCount === 0) throw invalid("invalid_request", path, "must hold at least one row");
  return { input, columns: columnsOfFrame(df as Record<string, unknown>, path) };
}

function messageInput(row: unknown, path: string): PushInput {
  if (!(row instanceof MessageRow)) throw new Error(`push: ${path} must be a MessageRow built by the edge`);
  if (row.keyNames.length === 0) throw invalid("invalid_request", path, "must hold at least one column");
  return { input: row, columns: row.keyNames.map((name) => ({ name, path: row.pathOf(0, name) })) };
}

function* columnsOfRows(rows: readonly Record<string, unknown>[], base: string): Generator<{ name: string; path: string }> {
  const seen = new Set<string>();
  for (let r = 0; r < rows.length; r++) {
    for (const name of Object.keys(rows[r]!)) {
      if (seen.has(name)) continue;
      seen.add(name);
      yield { name, path: `${base}[${r}].${name}` };
    }
  }
}

function* columnsOfFrame(df: Readonly<Record<string, unknown>>, base: string): Generator<{ name: string; path: string }> {
  for (const name of Object.keys(df)) yield { name, path: `${base}.${name}` };
}
