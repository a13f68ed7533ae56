import net from "node:net";

/**
 * A gRPC client over a raw HTTP/2 connection that sends the messages of one
 * streaming call and never reads the answers: it grants no flow-control
 * window (no WINDOW_UPDATE), as a client whose application stopped reading
 * does, so the server can send it at most the initial 64 KiB. It keeps to the
 * server's windows when sending (what a real client does), so how much it
 * managed to send says whether the server went on reading. grpc-js on Bun
 * cannot play this part: its client keeps reading into memory while paused.
 * Only what the test needs: no HPACK table, no padding, no priorities.
 */
export interface StalledCall {
  /** Message bytes (without gRPC framing) the server has let this client send so far. */
  readonly sentMessages: () => number;
  /** DATA bytes the server sent on the stream. */
  readonly receivedBytes: () => number;
  close(): void;
}

const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
const DEFAULT_WINDOW = 65_535;
const MAX_FRAME = 16_384;

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** An HPACK literal header field without indexing, with a literal name (lengths under 127, no Huffman). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

export async function stalledStreamingCall(port: number, path: string, messages: readonly Uint8Array[]): Promise<StalledCall> {
  const sock = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  sock.on("error", () => {});
  // The whole call as bytes: each message with gRPC's 5-byte prefix.
  const body = Buffer.concat(
    messages.map((m) => {
      const p = Buffer.alloc(5);
      p.writeUInt32BE(m.length, 1);
      return Buffer.concat([p, m]);
    }),
  );
  const ends = new Int32Array(messages.length);
  for (let i = 0, at = 0; i < messages.length; i++) ends[i] = at += 5 + messages[i]!.length;
  let sent = 0;
  let connWindow = DEFAULT_WINDOW;
  let streamWindow = DEFAULT_WINDOW;
  let received = 0;
  let closed = false;
  const pump = () => {
    while (!closed && sent < body.length) {
      const n = Math.min(MAX_FRAME, body.length - sent, connWindow, streamWindow);
      if (n <= 0) return;
      sock.write(frame(FRAME.DATA, 0, 1, body.subarray(sent, sent + n)));
      sent += n;
      connWindow -= n;
      streamWindow -= n;
    }
  };
  let buf = Buffer.alloc(0);
  sock.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      const flags = buf[4]!;
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === FRAME.SETTINGS && (flags & 1) === 0) {
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          // INITIAL_WINDOW_SIZE moves every open stream's window by the difference.
          if (payload.readUInt16BE(i) === 4) streamWindow += payload.readUInt32BE(i + 2) - DEFAULT_WINDOW;
        }
        sock.write(frame(FRAME.SETTINGS, 1, 0, new Uint8Array()));
      } else if (type === FRAME.WINDOW_UPDATE) {
        const inc = payload.readUInt32BE(0) & 0x7fffffff;
        if (stream === 0) connWindow += inc;
        else if (stream === 1) streamWindow += inc;
      } else if (type === FRAME.PING && (flags & 1) === 0) {
        sock.write(frame(FRAME.PING, 1, 0, payload));
      } else if (type === FRAME.DATA && stream === 1) {
        received += len;
      } else if (type === FRAME.GOAWAY || (type === FRAME.RST_STREAM && stream === 1)) {
        closed = true;
      }
    }
    pump();
  });
  sock.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  sock.write(frame(FRAME.SETTINGS, 0, 0, new Uint8Array()));
  const headers = Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table)
    literal(":path", path),
    literal(":authority", `127.0.0.1:${port}`),
    literal("content-type", "application/grpc"),
    literal("te", "trailers"),
  ]);
  sock.write(frame(FRAME.HEADERS, 0x4, 1, headers)); // END_HEADERS; the stream stays open
  pump();
  return {
    sentMessages: () => {
      let n = 0;
      while (n < ends.length && ends[n]! <= sent) n++;
      return n;
    },
    receivedBytes: () => received,
    close: () => {
      closed = true;
      sock.destroy();
    },
  };
}
