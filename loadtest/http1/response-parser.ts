/**
 * Incremental HTTP/1.1 response parser for one in-flight request per connection.
 * It only extracts what a load generator needs (status, framing, keep-alive) and
 * never decodes the body, so a response costs a header scan and a length check.
 */

/** Thrown for bytes that are not a valid HTTP/1.1 response. */
export class ProtocolError extends Error {
  readonly kind = "protocol";
}

const CR = 13;
const LF = 10;
enum Body {
  Headers = 0,
  Length = 1,
  ChunkSize = 2,
  ChunkData = 3,
  ChunkDataEnd = 4,
  Trailer = 5,
  UntilClose = 6,
}

export class ResponseParser {
  private head: Uint8Array | null = null;
  private state: Body = Body.Headers;
  private remaining = 0;
  private status = 0;
  private lineLen = 0;
  private chunkSize = 0;
  private sawSizeDigit = false;
  /** True when the last completed response asked to close the connection. */
  closeAfter = false;

  /** Clears state for a fresh connection. */
  reset(): void {
    this.head = null;
    this.state = Body.Headers;
    this.remaining = 0;
    this.status = 0;
    this.closeAfter = false;
  }

  /** True while a close-delimited body is being read; the close completes it. */
  get readsUntilClose(): boolean {
    return this.state === Body.UntilClose;
  }

  /** Status of a close-delimited response once the peer has closed. */
  finishOnClose(): number {
    const s = this.status;
    this.reset();
    return s;
  }

  /** Feeds bytes; returns the status code when a response completed, else 0. */
  push(chunk: Uint8Array): number {
    let buf = chunk;
    let pos = 0;
    if (this.state === Body.Headers) {
      if (this.head !== null) {
        const joined = new Uint8Array(this.head.length + chunk.length);
        joined.set(this.head, 0);
        joined.set(chunk, this.head.length);
        buf = joined;
        this.head = null;
      }
      const end = findHeaderEnd(buf);
      if (end < 0) {
        if (buf.length > 65536) throw new ProtocolError("response header over 64 KiB");
        this.head = buf === chunk ? chunk.slice() : buf;
        return 0;
      }
      this.parseHead(buf, end);
      pos = end + 4;
    }
    return this.consumeBody(buf, pos);
  }

  private parseHead(buf: Uint8Array, end: number): void {
    // "HTTP/1.x SSS ..."
    if (end < 12 || buf[0] !== 72 || buf[4] !== 47) throw new ProtocolError("not an HTTP response");
    const d0 = (buf[9] ?? 0) - 48;
    const d1 = (buf[10] ?? 0) - 48;
    const d2 = (buf[11] ?? 0) - 48;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ProtocolError("bad status line");
    this.status = d0 * 100 + d1 * 10 + d2;
    this.closeAfter = buf[7] === 48; // HTTP/1.0 closes unless told otherwise
    let length = -1;
    let chunked = false;
    let line = indexOfCrlf(buf, 0, end) + 2;
    while (line < end + 2) {
      const eol = indexOfCrlf(buf, line, end + 2);
      const lineEnd = eol < 0 ? end : eol;
      const c = (buf[line] ?? 0) | 0x20;
      if (c === 99 /* c */) {
        if (nameIs(buf, line, lineEnd, "content-length")) length = parseDecimal(buf, line + 15, lineEnd);
        else if (nameIs(buf, line, lineEnd, "connection")) this.closeAfter = valueHas(buf, line + 11, lineEnd, "close");
      } else if (c === 116 /* t */ && nameIs(buf, line, lineEnd, "transfer-encoding")) {
        chunked = valueHas(buf, line + 18, lineEnd, "chunked");
      }
      line = lineEnd + 2;
    }
    if (this.status < 200 || this.status === 204 || this.status === 304) {
      this.state = Body.Length;
      this.remaining = 0;
    } else if (chunked) {
      this.state = Body.ChunkSize;
      this.chunkSize = 0;
      this.sawSizeDigit = false;
    } else if (length >= 0) {
      this.state = Body.Length;
      this.remaining = length;
    } else {
      this.state = Body.UntilClose;
    }
  }

  private consumeBody(buf: Uint8Array, start: number): number {
    let pos = start;
    const len = buf.length;
    while (true) {
      switch (this.state) {
        case Body.Length: {
          const take = Math.min(this.remaining, len - pos);
          this.remaining -= take;
          pos += take;
          if (this.remaining > 0) return 0;
          return this.complete(pos, len);
        }
        case Body.UntilClose:
          return 0;
        case Body.ChunkSize: {
          while (pos < len) {
            const b = buf[pos++] ?? 0;
            if (b === LF) {
              if (!this.sawSizeDigit) throw new ProtocolError("bad chunk size");
              this.state = this.chunkSize === 0 ? Body.Trailer : Body.ChunkData;
              this.remaining = this.chunkSize;
              this.lineLen = 0;
              break;
            }
            const h = hexValue(b);
            if (h >= 0 && this.lineLen === 0) {
              this.chunkSize = this.chunkSize * 16 + h;
              this.sawSizeDigit = true;
            } else if (b !== CR) this.lineLen = 1; // chunk extension: ignored
          }
          if (this.state === Body.ChunkSize) return 0;
          break;
        }
        case Body.ChunkData: {
          const take = Math.min(this.remaining, len - pos);
          this.remaining -= take;
          pos += take;
          if (this.remaining > 0) return 0;
          this.state = Body.ChunkDataEnd;
          this.remaining = 2;
          break;
        }
        case Body.ChunkDataEnd: {
          const take = Math.min(this.remaining, len - pos);
          this.remaining -= take;
          pos += take;
          if (this.remaining > 0) return 0;
          this.state = Body.ChunkSize;
          this.chunkSize = 0;
          this.sawSizeDigit = false;
          this.lineLen = 0;
          break;
        }
        case Body.Trailer: {
          // Lines until an empty one; lineLen counts bytes of the current line.
          while (pos < len) {
            const b = buf[pos++] ?? 0;
            if (b === LF) {
              if (this.lineLen === 0) return this.complete(pos, len);
              this.lineLen = 0;
            } else if (b !== CR) this.lineLen++;
          }
          return 0;
        }
        default:
          throw new ProtocolError("unexpected parser state");
      }
    }
  }

  private complete(pos: number, len: number): number {
    if (pos !== len) throw new ProtocolError("bytes after the response (unsolicited data)");
    const s = this.status;
    this.state = Body.Headers;
    this.head = null;
    return s;
  }
}

function findHeaderEnd(buf: Uint8Array): number {
  const n = buf.length - 3;
  for (let i = 0; i < n; i++) {
    if (buf[i] === CR && buf[i + 1] === LF && buf[i + 2] === CR && buf[i + 3] === LF) return i;
  }
  return -1;
}

function indexOfCrlf(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to - 1; i++) if (buf[i] === CR && buf[i + 1] === LF) return i;
  return -1;
}

/** Case-insensitive "name:" match at the start of a header line. */
function nameIs(buf: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start <= name.length || buf[start + name.length] !== 58) return false;
  for (let i = 0; i < name.length; i++) if (((buf[start + i] ?? 0) | 0x20) !== name.charCodeAt(i)) return false;
  return true;
}

function valueHas(buf: Uint8Array, start: number, end: number, token: string): boolean {
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode((buf[i] ?? 0) | 0x20);
  return s.includes(token);
}

function parseDecimal(buf: Uint8Array, start: number, end: number): number {
  let v = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i] ?? 0;
    if (b >= 48 && b <= 57) {
      v = v * 10 + (b - 48);
      digits++;
    } else if (b !== 32 && b !== 9) throw new ProtocolError("bad content-length");
  }
  if (digits === 0) throw new ProtocolError("empty content-length");
  return v;
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  const l = b | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}
