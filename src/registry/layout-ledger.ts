import type { Issue } from "../errors/index.ts";
import { LAYOUT_LINE, type LayoutMismatch, type ViewLayout } from "../kv/layout-ledger.ts";
import type { Registry } from "./registry.ts";

/**
 * The ledger field of a view version's join keys (`<view>@<version>#keys` → `name:type` joined by ","): a row's
 * storage key spells its join keys with their types (`driver_id=i1001` / `driver_id=s4:1001`, kv/keys.ts), so a
 * join key retyped, renamed, added or moved under one version finds none of the stored rows (every entity
 * NOT_FOUND, while pods on the older file write and read the other keys). With no line separator, only the same
 * keys are compatible: neither appending nor cutting back applies.
 */
export const KEYS_FIELD_SUFFIX = "#keys";

/** Every view's layout in `registry`: its features, and its join keys under their own field. */
export function registryLayouts(registry: Registry): ViewLayout[] {
  const layouts: ViewLayout[] = [];
  for (const v of registry.views.values()) {
    layouts.push({ field: `${v.name}@${v.version}`, layout: v.features.map((f) => `${f.name}:${f.typeName}`).join(LAYOUT_LINE) });
    layouts.push({ field: `${v.name}@${v.version}${KEYS_FIELD_SUFFIX}`, layout: keysLayout(v.joinKeys) });
  }
  return layouts;
}

function keysLayout(keys: readonly { readonly name: string; readonly type: string }[]): string {
  return keys.map((k) => `${k.name}:${k.type}`).join(",");
}

/** Mismatches as issues on the registry file's views, one per view (the first place that reported it). */
export function mismatchIssues(mismatches: readonly LayoutMismatch[], registry: Registry): Issue[] {
  const issues: Issue[] = [];
  const seen = new Set<string>();
  for (const m of mismatches) {
    if (seen.has(m.field)) continue;
    seen.add(m.field);
    const keys = m.field.endsWith(KEYS_FIELD_SUFFIX);
    const field = keys ? m.field.slice(0, -KEYS_FIELD_SUFFIX.length) : m.field;
    const at = field.lastIndexOf("@");
    const name = field.slice(0, at);
    const view = registry.views.get(name);
    const index = registry.definition.featureViews.findIndex((v) => v.name === name);
    if (keys) {
      issues.push({
        path: `featureViews[${index}].entities`,
        message:
          `the store (${m.where}) keeps rows of ${field} under the join keys [${m.stored.split(",").join(", ")}], and this view's join keys are ` +
          `[${keysLayout(view?.joinKeys ?? []).split(",").join(", ")}]: its stored rows would not be found (every entity NOT_FOUND); ` +
          `bump the view's version (rows then start empty under ${name}@${(view?.version ?? 0) + 1}) or keep its entities' join keys`,
      });
      continue;
    }
    const stored = m.stored.split(LAYOUT_LINE);
    issues.push({
      path: `featureViews[${index}].features`,
      message:
        `the store (${m.where}) keeps rows of ${m.field} laid out as [${stored.join(", ")}], and this feature list ${firstDifference(stored, view?.features ?? [])}: ` +
        `its rows would be read as the wrong features; under one version a feature list may only grow at its end: bump the view's version ` +
        `(rows then start empty under ${name}@${(view?.version ?? 0) + 1}) or keep that order`,
    });
  }
  return issues;
}

/** Where `features` first departs from the stored `name:type` lines (it is no prefix of them, nor they of it). */
function firstDifference(stored: readonly string[], features: readonly { readonly name: string; readonly typeName: string }[]): string {
  for (let i = 0; i < stored.length && i < features.length; i++) {
    const line = stored[i]!;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    const type = line.slice(colon + 1);
    const f = features[i]!;
    if (f.name !== name) return `has "${f.name}" (${f.typeName}) where "${name}" (${type}) is stored, feature ${i}`;
    if (f.typeName !== type) return `makes "${name}" (feature ${i}) ${f.typeName} where ${type} is stored`;
  }
  return "differs";
}
