/** Every field of every pushed row with where it sits, for unknown-field checks. */
export function* pushColumnsOfRows(rows: readonly Record<string, unknown>[], base: string): Generator<{ name: string; path: string }> {
  const seen = new Set<string>();
  for (let r = 0; r < rows.length; r++) {
    for (const name of Object.keys(rows[r]!)) {
      if (seen.has(name)) continue;
      seen.add(name);
      yield { name, path: `${base}[${r}].${name}` };
    }
  }
}

/** Columns of a Feast-style columnar frame (`df`). */
export function* pushColumnsOfFrame(df: Readonly<Record<string, unknown>>, base: string): Generator<{ name: string; path: string }> {
  for (const name of Object.keys(df)) yield { name, path: `${base}.${name}` };
}
