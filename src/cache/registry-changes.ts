import type { Registry } from "../registry/index.ts";

/**
 * Views whose cached rows a registry reload makes wrong: removed views, and
 * views whose version or feature list (names, order, types) changed. Rows are
 * value arrays in declaration order, so a reordered or retyped feature list
 * under the same version would be misread from any cache.
 */
export function viewsToInvalidate(before: Registry, after: Registry): string[] {
  const out: string[] = [];
  for (const [name, old] of before.views) {
    const next = after.views.get(name);
    if (next === undefined || next.version !== old.version || next.features.length !== old.features.length) {
      out.push(name);
      continue;
    }
    for (let i = 0; i < old.features.length; i++) {
      const a = old.features[i]!;
      const b = next.features[i]!;
      if (a.name !== b.name || a.typeName !== b.typeName) {
        out.push(name);
        break;
      }
    }
  }
  return out;
}
