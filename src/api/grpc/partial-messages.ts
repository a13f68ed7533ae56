import http2 from "node:http2";
import type { ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor } from "@grpc/grpc-js";

/**
 * Bytes of request messages received in part, every call's, against one cap.
 * grpc-js buffers a message's frames (its StreamDecoder) until the message is
 * whole, up to --max-body-bytes a call, and a connection may hold 100 calls:
 * one connection that started 100 Lookups of 4 MiB and sent all but the last
 * byte of each took a server from 91 to 504 MB RSS, held for as long as the
 * connection stayed open (keepalive pings answered: for good); a second
 * connection would pass a 1 GB pod's limit. held-messages.ts counts messages
 * once whole; this counts them while they arrive. A call whose frame takes
 * the bytes past the cap is answered RESOURCE_EXHAUSTED (grpc-js's answer to a
 * decoder that throws) and its bytes are given back; so are a message's once
 * it is whole, or its call's when the call ends first.
 *
 * Only a message spread over several frames (over ~16 KiB, or a slow client)
 * is counted; a lookup's message arrives in one frame and costs its call one
 * property write (`write` of its decoder), no allocation.
 *
 * This reads grpc-js's (1.14) decoder state: `readState` 2 (READING_MESSAGE),
 * `readMessageSize`, `readMessageRemaining` and `readPartialMessage`, on the
 * call the first interceptor is given. test/grpc-partial-messages.test.ts fails if an
 * upgrade moves them.
 */
export class PartialMessages {
  private used = 0;
  /** Each server call's decoder gets this as its `write`: grpc-js's own, then the count. */
  private readonly write: (this: Decoder, data: Buffer) => Buffer[];
  readonly interceptor: ServerInterceptor;

  /**
   * `warn` is told once if grpc-js's decoder is not the one this reads (an upgrade moved it): the count is then
   * off (no call refused for it), not every call broken.
   */
  constructor(
    private readonly capBytes: number,
    warn: (message: string) => void = console.warn,
  ) {
    if (!(capBytes > 0)) throw new Error(`the partial message budget must be positive, got ${capBytes}`);
    const budget = this;
    let original: ((this: Decoder, data: Buffer) => Buffer[]) | undefined;
    // Checked on the first call: undefined until then, then whether this grpc-js's decoder reads as expected.
    let usable: boolean | undefined;
    this.write = function write(this: Decoder, data: Buffer): Buffer[] {
      const out = original!.call(this, data);
      const partial = this.readState === READING_MESSAGE ? this.readMessageSize - this.readMessageRemaining : 0;
      const counted = this.partialCounted ?? 0;
      if (partial !== counted) budget.recount(this, counted, partial);
      return out;
    };
    this.interceptor = (_method, call: ServerInterceptingCallInterface): ServerInterceptingCall => {
      const base = call as unknown as { decoder?: Decoder; stream?: CallStream };
      const decoder = base.decoder;
      if (usable === undefined) {
        usable = decoderAsExpected(decoder, base.stream);
        if (!usable) {
          warn(
            "quiver: gRPC: this @grpc/grpc-js's call decoder is not the one partial-messages.ts reads (1.14's); messages received in part are not counted (no cap on them)",
          );
        }
      }
      if (usable && decoder !== undefined && base.stream !== undefined) {
        original ??= Object.getPrototypeOf(decoder).write;
        decoder.write = this.write;
        decoder.stream = base.stream;
      }
      // grpc-js chains whatever an interceptor returns; the call itself is the no-op.
      return call as ServerInterceptingCall;
    };
  }

  /** Bytes of messages received in part now. */
  get inUse(): number {
    return this.used;
  }

  /** `decoder` holds `partial` bytes of a message where `counted` were counted; throws past the cap. */
  private recount(decoder: Decoder, counted: number, partial: number): void {
    this.used += partial - counted;
    decoder.partialCounted = partial;
    if (decoder.closeHooked !== true) {
      // First bytes held by this call: give back whatever it holds if it ends before its message is whole.
      decoder.closeHooked = true;
      const stream = decoder.stream!;
      stream.once("close", () => {
        this.used -= decoder.partialCounted ?? 0;
        decoder.partialCounted = 0;
      });
      // The server ended the call (its answer sent: a deadline passed, an error) while this message was arriving:
      // grpc-js reads no more of it, yet kept its frames, counted, for as long as the client kept the stream open
      // (a deadline-exceeded Lookup whose client sent 300 KB and then nothing held them until the connection closed).
      stream.once("finish", () => {
        if ((decoder.partialCounted ?? 0) === 0) return;
        this.used -= decoder.partialCounted!;
        decoder.partialCounted = 0;
        decoder.readPartialMessage = [];
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
      });
    }
    if (this.used > this.capBytes) {
      this.used -= partial;
      decoder.partialCounted = 0;
      // grpc-js answers the call and reads no more of it, but its decoder kept the bytes, and the call was kept
      // while its client kept the stream open: drop them now, and once the answer is on its way reset the stream
      // (NO_ERROR: RFC 9113 §8.1, the response is complete, stop sending), so it ends whatever the client does.
      decoder.readPartialMessage = [];
      const stream = decoder.stream!;
      queueMicrotask(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
      throw new Error(
        `messages_in_flight: the server is receiving as many message bytes at once as it holds (${this.capBytes}); retry shortly`,
      );
    }
  }
}

/** grpc-js's StreamDecoder state read here (build/src/stream-decoder.js). */
const READING_MESSAGE = 2;

/**
 * Does `decoder` (and its call's `stream`) work as grpc-js 1.14's does? A fresh decoder of its class is given
 * 3 bytes of a 10-byte message and must say so in the fields read here. Without this, a grpc-js whose decoder
 * kept `write` elsewhere made the replacement throw on every data frame: every call RESOURCE_EXHAUSTED.
 */
function decoderAsExpected(decoder: unknown, stream: unknown): boolean {
  try {
    if (typeof decoder !== "object" || decoder === null || Object.hasOwn(decoder, "write")) return false;
    const proto = Object.getPrototypeOf(decoder) as { write?: unknown; constructor: new (max: number) => Decoder };
    if (typeof proto.write !== "function") return false;
    const s = stream as Partial<CallStream> | undefined;
    if (typeof s?.once !== "function" || typeof s.close !== "function") return false;
    const probe = new proto.constructor(-1);
    probe.write(Buffer.from([0, 0, 0, 0, 10, 1, 2, 3]));
    return probe.readState === READING_MESSAGE && probe.readMessageSize === 10 && probe.readMessageRemaining === 7 && Array.isArray(probe.readPartialMessage);
  } catch {
    return false;
  }
}

interface Decoder {
  readState: number;
  readMessageSize: number;
  readMessageRemaining: number;
  /** The frames of the message in progress. */
  readPartialMessage: Buffer[];
  write(data: Buffer): Buffer[];
  /** Set here: bytes of the message in progress counted in the budget. */
  partialCounted?: number;
  /** Set here: the call's stream, whose close gives its bytes back. */
  stream?: CallStream;
  /** Set here once that close is listened for (a stream of many large messages listens once). */
  closeHooked?: boolean;
}

interface CallStream {
  once(event: "close" | "finish", listener: () => void): unknown;
  close(code: number): void;
}
