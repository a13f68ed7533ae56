/**
 * Duplicate object keys in JSON text. JSON.parse keeps the last of a key given
 * twice in one object without a word (RFC 8259 leaves it to the parser), so a
 * push row `{"driver_id": 1001, "driver_id": 1002, ...}` wrote entity 1002, and
 * a proxy or client library that keeps the first read it as 1001: which entity
 * a write lands on depended on who parsed it. MessagePack bodies refuse such a
 * map (msgpack-reader.ts); JSON writes do too with this check.
 */

/**
 * The path (`rows[0].driver_id`) of the first key that appears twice in one
 * object of `s`, or undefined when every object's keys are distinct. `s` must
 * be JSON that JSON.parse has accepted; keys are compared as the parse reads
 * them (`"a"` and `"\u0061"` are one key). One pass, strings skipped with
 * indexOf. Rows of a push repeat one another's keys in order: an object whose
 * keys so far are, in order, those of the last object that closed at its depth
 * (distinct) is compared with them in place, no string or Set made; one that
 * departs from them gets a Set. 10k push rows (1.4 MB): 2.3-3.9 ms, where a Set
 * of sliced keys per object took 6.5 ms (JSON.parse of the text: 2.2-2.5 ms).
 */
export function duplicateKeyPath(s: string): string | undefined {
  // Per open container, by depth: is it an object; the last closed object's keys there (distinct); how many of them
  // this one has matched in order (-1: it departed, and its keys are in `sets`/`lists`); where the scan is in it.
  const isObject: boolean[] = [];
  const template: string[][] = [];
  const matched: number[] = [];
  const sets: (Set<string> | undefined)[] = [];
  const lists: string[][] = [];
  const at: (string | number)[] = [];
  let depth = 0;
  let backslash = -1;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      const start = i + 1;
      let end = s.indexOf('"', start);
      while (escaped(s, end)) end = s.indexOf('"', end + 1);
      i = end;
      // In an object, a string followed by ":" is a key (a value is followed by "," or "}").
      if (depth === 0 || !isObject[depth - 1] || !colonAfter(s, end + 1)) continue;
      const d = depth - 1;
      // The next backslash at or after `start`, found once per stretch (not a search to the end per key).
      if (backslash !== n && backslash < start) {
        backslash = s.indexOf("\\", start);
        if (backslash < 0) backslash = n;
      }
      const plain = backslash >= end;
      const m = matched[d]!;
      if (m >= 0) {
        const t = template[d]!;
        const expected = t[m];
        if (plain && expected !== undefined && expected.length === end - start && s.startsWith(expected, start)) {
          matched[d] = m + 1;
          at[d] = expected;
          continue;
        }
        lists[d] = t.slice(0, m);
        sets[d] = m > SMALL_OBJECT ? new Set(lists[d]) : undefined;
        matched[d] = -1;
      }
      const raw = s.slice(start, end);
      const key = plain ? raw : (JSON.parse(`"${raw}"`) as string);
      at[d] = key;
      const list = lists[d]!;
      const set = sets[d];
      if (set === undefined) {
        // A small object's keys are searched in its list, no Set made: 100k two-key objects whose keys differ from
        // their neighbours' took 18-23 ms to scan with a Set each, 12-13 ms so.
        if (list.includes(key)) return pathOf(at, depth);
        list.push(key);
        if (list.length > SMALL_OBJECT) sets[d] = new Set(list);
      } else {
        if (set.has(key)) return pathOf(at, depth);
        set.add(key);
        list.push(key);
      }
    } else if (c === 0x7b || c === 0x5b) {
      isObject[depth] = c === 0x7b;
      if (template[depth] === undefined) template[depth] = [];
      matched[depth] = 0;
      at[depth++] = c === 0x7b ? "" : 0;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (matched[depth] === -1) {
        template[depth] = lists[depth]!;
        sets[depth] = undefined;
      }
    } else if (c === 0x2c && !isObject[depth - 1]) {
      at[depth - 1] = (at[depth - 1] as number) + 1;
    }
  }
  return undefined;
}

/** Keys an object may have before its keys are kept in a Set too (fewer are searched in their list). */
const SMALL_OBJECT = 8;

/** Is the quote at `q` escaped (an odd number of backslashes before it)? */
function escaped(s: string, q: number): boolean {
  let b = q - 1;
  while (s.charCodeAt(b) === 0x5c) b--;
  return (q - 1 - b) % 2 === 1;
}

/** Is the next character after `from` that is not JSON whitespace a colon? */
function colonAfter(s: string, from: number): boolean {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x3a) return true;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return false;
}

/** Longest path named (characters); a deeper one keeps its end, where the key is. */
const MAX_PATH = 200;

/**
 * `rows[0].driver_id` from the scan's position in each open container. Past
 * MAX_PATH characters, `…` and the path's last ones: 324k nested objects made
 * a 650 KB path, echoed whole in the 400.
 */
function pathOf(at: readonly (string | number)[], depth: number): string {
  let path = "";
  for (let d = 0; d < depth; d++) {
    const p = at[d]!;
    path += typeof p === "number" ? `[${p}]` : path === "" ? p : `.${p}`;
  }
  return path.length > MAX_PATH ? `…${path.slice(path.length - MAX_PATH)}` : path;
}
