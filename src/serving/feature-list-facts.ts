import { invalid } from "../errors/index.ts";
import type { FeatureRef } from "../registry/index.ts";

/** What a lookup plan needs to know about its feature list, worked out once per list. */
export interface FeatureListFacts {
  /** Values one entity row answers: each feature counts 1, an embedding its dimensions (what bounds an answer's size). */
  readonly valuesPerRow: number;
  /** The first position whose `view:feature` appeared before it, or -1. */
  readonly repeatedRef: number;
  /** The first position whose bare feature name appeared before it (another view's, or the same ref again), or -1. */
  readonly repeatedName: number;
}

/**
 * Refs arrays are shared by identity (a feature service's, and recent lists:
 * resolve-features.ts), so their facts are kept by identity too; the last one
 * asked is checked first, as lookups tend to repeat their list.
 */
const known = new WeakMap<readonly FeatureRef[], FeatureListFacts>();
let lastRefs: readonly FeatureRef[] | undefined;
let lastFacts: FeatureListFacts | undefined;

export function featureListFacts(refs: readonly FeatureRef[]): FeatureListFacts {
  if (refs === lastRefs && lastFacts !== undefined) return lastFacts;
  let facts = known.get(refs);
  if (facts === undefined) {
    facts = computeFacts(refs);
    known.set(refs, facts);
  }
  lastRefs = refs;
  lastFacts = facts;
  return facts;
}

function computeFacts(refs: readonly FeatureRef[]): FeatureListFacts {
  let valuesPerRow = 0;
  let repeatedRef = -1;
  let repeatedName = -1;
  const fullNames = new Set<string>();
  const names = new Set<string>();
  for (let i = 0; i < refs.length; i++) {
    const f = refs[i]!.feature;
    valuesPerRow += f.type.kind === "embedding" ? f.type.dim : 1;
    if (fullNames.has(f.fullName)) {
      if (repeatedRef < 0) repeatedRef = i;
    } else fullNames.add(f.fullName);
    if (names.has(f.name)) {
      if (repeatedName < 0) repeatedName = i;
    } else names.add(f.name);
  }
  return { valuesPerRow, repeatedRef, repeatedName };
}

/**
 * Refuses a list whose answer would name two columns alike, as Feast does
 * (FeatureNameCollisionError): the same `view:feature` twice, or, without full
 * feature names, one bare name from two views. A client reading the answer
 * into a map kept one of them and never knew.
 */
export function checkColumnNames(refs: readonly FeatureRef[], facts: FeatureListFacts, fullFeatureNames: boolean, field: string, fullNamesField: string): void {
  if (facts.repeatedRef >= 0) {
    const ref = refs[facts.repeatedRef]!;
    const first = refs.find((r) => r.feature.fullName === ref.feature.fullName)!;
    if (first.feature.ref === ref.feature.ref) throw invalid("feature_name_collision", `${field}[${facts.repeatedRef}]`, `"${ref.feature.ref}" is asked for twice; each feature may be named once`);
    // Two features whose full names meet (view "a__b" feature "c", view "a" feature "b__c"): answered as two columns
    // "a__b__c", a map kept one.
    if (fullFeatureNames) {
      throw invalid(
        "feature_name_collision",
        `${field}[${facts.repeatedRef}]`,
        `"${ref.feature.ref}" and "${first.feature.ref}" would both answer a column "${ref.feature.fullName}" with full feature names; ask for one of them at a time`,
      );
    }
  }
  if (!fullFeatureNames && facts.repeatedName >= 0) {
    const ref = refs[facts.repeatedName]!;
    const first = refs.findIndex((r) => r.feature.name === ref.feature.name);
    throw invalid(
      "feature_name_collision",
      `${field}[${facts.repeatedName}]`,
      `"${ref.feature.ref}" and "${refs[first]!.feature.ref}" would both answer a column "${ref.feature.name}": set ${fullNamesField} to true to name columns "<view>__<feature>"`,
    );
  }
}

/**
 * Refuses a feature column named like an entity column the answer echoes
 * (Feast routes answer join keys and features side by side): view u's
 * feature "did" beside view v's join key "did" answered two columns "did", and
 * a Feast client's dictionary kept the feature's value as the entity id.
 */
export function checkEchoedKeyNames(refs: readonly FeatureRef[], keyNames: readonly string[], fullFeatureNames: boolean, field: string): void {
  if (keyNames.length === 0) return;
  for (let i = 0; i < refs.length; i++) {
    const column = fullFeatureNames ? refs[i]!.feature.fullName : refs[i]!.feature.name;
    if (keyNames.includes(column)) throw invalid("feature_name_collision", `${field}[${i}]`, `"${refs[i]!.feature.ref}" would answer a column "${column}", the name of an entity column the answer echoes`);
  }
}
