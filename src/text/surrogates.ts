/**
 * Index of the first lone surrogate in `s` (a UTF-16 unit in D800–DFFF not
 * part of a pair), or -1 when `s` is well-formed. JSON's "\ud800" escape lets
 * a client send one; UTF-8 cannot store it (it becomes U+FFFD), so values and
 * keys holding one would not read back as written.
 */
export function loneSurrogateAt(s: string): number {
  if (s.isWellFormed()) return -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) return i;
  }
  return -1;
}

/**
 * `s` cut to at most `max` UTF-16 units, ending in `mark` when cut, never
 * splitting a surrogate pair: a half pair quoted in an error message made the
 * message ill-formed, and grpc-js threw on it (URIError) while sending the
 * status, which ended the process.
 */
export function clipText(s: string, max: number, mark = "…"): string {
  if (s.length <= max) return s;
  let end = Math.max(0, max - mark.length);
  const c = s.charCodeAt(end - 1);
  if (end > 0 && c >= 0xd800 && c <= 0xdbff) end--;
  return `${s.slice(0, end)}${mark}`;
}
