import type { Issue } from "../errors/index.ts";
import type { CompiledView, Registry } from "./registry.ts";

/**
 * What a registry reload would do to rows already stored, as issues naming
 * each view that keeps its version but changes its stored layout.
 *
 * A row is its view's feature values in declaration order under
 * `<view>@<version>/` (README, "Storage layout"), so under one version a
 * feature list may only grow at its end: the stored rows, shorter, read the
 * new features as null. Reordering, retyping, renaming or removing a feature
 * would have every stored row read as the wrong features (a float64 answered
 * for another float64, a string answered as an int64's value) with status
 * PRESENT. Such a change needs a new version, whose rows start empty.
 */
export function layoutConflicts(before: Registry, after: Registry): Issue[] {
  const issues: Issue[] = [];
  after.definition.featureViews.forEach((def, i) => {
    const old = before.views.get(def.name);
    const next = after.views.get(def.name);
    if (old === undefined || next === undefined || old.version !== next.version) return;
    const change = firstChange(old, next);
    if (change === undefined) return;
    issues.push({
      path: `featureViews[${i}].features`,
      message:
        `view "${next.name}" keeps version ${next.version} but ${change}: its stored rows are values in the old order, ` +
        `and would be read as the wrong features; bump its version (rows then start empty under ${next.name}@${next.version + 1}) ` +
        "or only append features",
    });
  });
  return issues;
}

/** The first way `next`'s feature list departs from `old`'s other than growing at its end. */
function firstChange(old: CompiledView, next: CompiledView): string | undefined {
  for (let i = 0; i < old.features.length; i++) {
    const a = old.features[i]!;
    const b = next.features[i];
    if (b === undefined) return `drops "${a.name}" (${a.typeName}), feature ${i} of ${old.features.length}`;
    if (a.name !== b.name) return `has "${b.name}" (${b.typeName}) where "${a.name}" (${a.typeName}) was, feature ${i}`;
    if (a.typeName !== b.typeName) return `changes "${a.name}" (feature ${i}) from ${a.typeName} to ${b.typeName}`;
  }
  return undefined;
}
