import type { Issue } from "../errors/index.ts";
import { LAYOUT_LINE, type LayoutMismatch, type ViewLayout } from "../kv/layout-ledger.ts";
import type { Registry } from "./registry.ts";

/** Every view's layout in `registry`. */
export function registryLayouts(registry: Registry): ViewLayout[] {
  return [...registry.views.values()].map((v) => ({
    field: `${v.name}@${v.version}`,
    layout: v.features.map((f) => `${f.name}:${f.typeName}`).join(LAYOUT_LINE),
  }));
}

/** Mismatches as issues on the registry file's views, one per view (the first place that reported it). */
export function mismatchIssues(mismatches: readonly LayoutMismatch[], registry: Registry): Issue[] {
  const issues: Issue[] = [];
  const seen = new Set<string>();
  for (const m of mismatches) {
    if (seen.has(m.field)) continue;
    seen.add(m.field);
    const at = m.field.lastIndexOf("@");
    const name = m.field.slice(0, at);
    const view = registry.views.get(name);
    const index = registry.definition.featureViews.findIndex((v) => v.name === name);
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
