/**
 * Deterministic demo claims for the example registry's `claims` view: topical
 * clusters of five claims each, where the five are paraphrase-like copies of
 * one base claim (reworded, prefixed, truncated, misspelt) — how a false
 * claim actually spreads. The cluster id is stored with each claim, so
 * matching has a ground truth: a claim's nearest neighbours should be the
 * other four of its cluster. Claim ids are 1..N; claim i is in cluster
 * floor((i - 1) / 5).
 */
export const CLAIMS_PER_CLUSTER = 5;

interface Topic {
  readonly subjects: readonly string[];
  readonly predicates: readonly string[];
  readonly objects: readonly string[];
}

const TOPICS: readonly Topic[] = [
  {
    subjects: ["The new flu vaccine", "Drinking hot lemon water", "Garlic supplements", "The measles shot", "Vitamin C megadoses", "Fluoride in tap water", "Colloidal silver", "The nasal spray vaccine"],
    predicates: ["causes infertility in", "cures cancer in", "rewrites the DNA of", "was secretly tested on", "kills most", "cures diabetes in"],
    objects: ["young women", "children under five", "people over sixty", "pregnant mothers", "nursing home residents", "teenage athletes"],
  },
  {
    subjects: ["5G towers", "Smart electricity meters", "Wind turbines", "Home wifi routers", "Electric car batteries", "Solar farms", "Cell phone chargers", "Contactless card readers"],
    predicates: ["are spreading the virus among", "cause brain tumours in", "are poisoning the water of", "drain the blood oxygen of", "were banned in Europe for harming", "cause insomnia in"],
    objects: ["city dwellers", "farm animals", "school children", "migrating birds", "elderly neighbours", "newborn babies"],
  },
  {
    subjects: ["The mayor", "The election commission", "The governor", "Postal workers", "The opposition party", "Foreign hackers", "The city council", "Voting machine vendors"],
    predicates: ["deleted thousands of ballots from", "paid cash for votes from", "blocked polling stations for", "counted dead voters among", "flipped the results for", "shredded the mail-in votes of"],
    objects: ["rural districts", "military families", "overseas voters", "university students", "retired teachers", "first-time voters"],
  },
  {
    subjects: ["The central bank", "A secret government plan", "The finance ministry", "Big supermarket chains", "The tax office", "Global investment funds", "Private banks", "The pension agency"],
    predicates: ["will seize the savings of", "is cancelling cash for", "plans to double taxes on", "will freeze the accounts of", "is tracking every purchase of", "will stop pensions for"],
    objects: ["small business owners", "pensioners", "farmers", "homeowners", "single parents", "gig workers"],
  },
  {
    subjects: ["Chemtrails from airliners", "Cloud seeding planes", "The weather agency", "A military radar project", "Geoengineering firms", "Crop dusters", "The space agency", "Lab-made storms"],
    predicates: ["caused the floods that hit", "are blocking the sun over", "created the drought ruining", "steered the hurricane toward", "are spraying metals over", "faked the heatwave reported in"],
    objects: ["the coastal towns", "the northern farms", "the capital", "the wine region", "the mountain villages", "the river delta"],
  },
  {
    subjects: ["A famous actor", "The football champion", "A pop star", "The former president", "A tech billionaire", "The royal family", "A news anchor", "The olympic swimmer"],
    predicates: ["was arrested for smuggling with", "secretly funded riots by", "died and was replaced by a double of", "confessed to lying to", "is buying all the farmland of", "was cloned in a lab run by"],
    objects: ["foreign agents", "a criminal gang", "the secret service", "a religious cult", "an offshore company", "the mafia"],
  },
];
const PLACES = ["in Lagos", "in Ohio", "in Manila", "in Lisbon", "in Jakarta", "in Texas", "in Nairobi", "in Bavaria", "in Sao Paulo", "in Kerala"];
const YEARS = ["this spring", "last week", "in 2019", "since January", "this year", "after the summit", "during the lockdown", "before the vote"];
const SWAPS: readonly [RegExp, string][] = [
  [/\bsecretly\b/, "quietly"],
  [/\bcauses\b/, "leads to"],
  [/\bcause\b/, "lead to"],
  [/\bchildren\b/, "kids"],
  [/\bpeople\b/, "folks"],
  [/\bthousands of\b/, "many"],
  [/\bwill\b/, "is going to"],
  [/^The /, "Officials confirm the "],
];
const VERDICTS = ["false", "false", "false", "misleading", "misleading", "unproven", "true"];
const SOURCES = ["twitter", "facebook", "whatsapp", "telegram", "tiktok", "youtube"];
const LANGUAGES = ["en", "en", "en", "en", "es", "pt", "fr"];

/** A small deterministic hash of an integer to [0, 1) (same family as demo-data.ts). */
function unit(n: number, salt: number): number {
  let h = Math.imul(n ^ Math.imul(salt, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[], n: number, salt: number): T => xs[Math.floor(unit(n, salt) * xs.length)]!;

export function clusterOfClaim(id: number): number {
  return Math.floor((id - 1) / CLAIMS_PER_CLUSTER);
}

/**
 * The base claim of a cluster: a topic's subject, predicate and object (in
 * mixed radix, so the first 1,728 clusters — 8,640 claims — never repeat a
 * triple), plus a place and a time.
 */
export function baseClaim(cluster: number): string {
  const t = TOPICS[cluster % TOPICS.length]!;
  const r = Math.floor(cluster / TOPICS.length);
  const subject = t.subjects[r % t.subjects.length]!;
  const predicate = t.predicates[Math.floor(r / t.subjects.length) % t.predicates.length]!;
  const object = t.objects[Math.floor(r / (t.subjects.length * t.predicates.length)) % t.objects.length]!;
  return `${subject} ${predicate} ${object} ${pick(PLACES, cluster, 4)} ${pick(YEARS, cluster, 5)}`;
}

/** Claim `id`'s text: the base claim of its cluster, or one of four paraphrase-like variants of it. */
export function claimText(id: number): string {
  const cluster = clusterOfClaim(id);
  const base = baseClaim(cluster);
  switch ((id - 1) % CLAIMS_PER_CLUSTER) {
    case 0:
      return `${base}.`;
    case 1:
      return `BREAKING: ${base}!! share`;
    case 2: {
      let s = base;
      for (const [from, to] of SWAPS) s = s.replace(from, to);
      return `${s}, media silent.`;
    }
    case 3: {
      const words = base.split(" ");
      words.splice(1 + Math.floor(unit(id, 6) * (words.length - 2)), 1);
      return `Reports say ${words.join(" ").toLowerCase()}`;
    }
    default:
      return `${typo(base, id)}?? wow`;
  }
}

/** Swaps two adjacent letters in two of the words, like a hurried re-post. */
function typo(text: string, id: number): string {
  const words = text.split(" ");
  for (let t = 0; t < 2; t++) {
    const w = Math.floor(unit(id, 10 + t) * words.length);
    const word = words[w]!;
    if (word.length < 4) continue;
    const i = 1 + Math.floor(unit(id, 20 + t) * (word.length - 3));
    words[w] = word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2);
  }
  return words.join(" ");
}

/** The claim's scalar features: text, verdict, source, language, first-seen time, cluster (in the view's order after text). */
export function claimAttributes(id: number, now: number): { text: string; verdict: string; source: string; language: string; firstSeen: number; cluster: number } {
  const cluster = clusterOfClaim(id);
  return {
    text: claimText(id),
    verdict: pick(VERDICTS, cluster, 30),
    source: pick(SOURCES, id, 31),
    language: pick(LANGUAGES, id, 32),
    firstSeen: now - Math.floor(unit(id, 33) * 90) * 86_400_000,
    cluster,
  };
}
